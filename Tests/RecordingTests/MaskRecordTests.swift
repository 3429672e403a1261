import Foundation
import XCTest
@testable import Recording
import SSHCertificates

/// Mask records: which spans of stdout/stderr the agent saw masked, in the signed chain beside
/// the raw bytes. Written by position, read back, checked by verify.
final class MaskRecordTests: XCTestCase {
    private var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir = nil }

    private func record(_ body: (RecordingWriter) throws -> Void) throws -> String {
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(id: "masks-\(UUID().uuidString.prefix(6))"), signer: testSigner,
                                         clock: clock.read, options: noIndex())
        try body(writer)
        try writer.exit(status: 0)
        return try writer.finish().path
    }

    func testMasksAreReadBackAndVerifyWithTheirPositionsOrdered() throws {
        var positions: [UInt64] = []
        let out = Array("TOKEN=ghp_0123456789abcdef0123456789abcdef0123\n".utf8), err = Array("password: hunter22\n".utf8)
        let path = try record { w in
            // As the pump writes them: each mask just before the bytes it covers.
            positions.append(try w.mask(RecordedMask(stream: .stdout, offset: 6, length: 40, rule: "github-token")))
            positions.append(try w.append(.stdout, out))
            positions.append(try w.mask(RecordedMask(stream: .stderr, offset: 10, length: 8, rule: "secret-assignment")))
            positions.append(try w.append(.stderr, err))
        }
        // A mask moves the position, so bytes held for it wait for the batch that holds the mask.
        let o = UInt64(out.count), e = UInt64(err.count)
        XCTAssertEqual(positions, [1, 1 + o, 2 + o, 2 + o + e])
        let masks = try readAll(path).compactMap { if case .mask(let m) = $0.content { m } else { nil } }
        XCTAssertEqual(masks, [RecordedMask(stream: .stdout, offset: 6, length: 40, rule: "github-token"),
                               RecordedMask(stream: .stderr, offset: 10, length: 8, rule: "secret-assignment")])
        let report = RecordingVerifier.verify(path: path, trustedKeys: [testSigner.publicKey])
        XCTAssertTrue(report.isIntact, report.verdict)
        XCTAssertEqual(report.totals, StreamTotals(stdin: 0, stdout: o, stderr: e), "masks are not data")
    }

    func testAMaskBeyondTheRecordedBytesAfterTheDataOrOverlappingTheLastIsAProblem() throws {
        let beyond = try record { w in
            try w.mask(RecordedMask(stream: .stdout, offset: 2, length: 10, rule: "jwt"))
            try w.append(.stdout, Array("short\n".utf8))
        }
        let report = RecordingVerifier.verify(path: beyond, trustedKeys: [testSigner.publicKey])
        XCTAssertFalse(report.isIntact)
        XCTAssertEqual(report.problems.first?.kind, .malformedRecord)
        XCTAssertTrue(report.problems.first?.message.contains("past the 6 bytes recorded") ?? false, "\(report.problems)")

        let after = try record { w in
            try w.append(.stdout, Array("password=hunter22\n".utf8))
            try w.mask(RecordedMask(stream: .stdout, offset: 9, length: 8, rule: "secret-assignment"))
        }
        let late = RecordingVerifier.verify(path: after, trustedKeys: [testSigner.publicKey])
        XCTAssertFalse(late.isIntact)
        XCTAssertTrue(late.problems.first?.message.contains("a mask precedes the bytes it covers") ?? false, "\(late.problems)")

        let overlapping = try record { w in
            try w.mask(RecordedMask(stream: .stdout, offset: 10, length: 20, rule: "jwt"))
            try w.mask(RecordedMask(stream: .stdout, offset: 25, length: 5, rule: "jwt"))
            try w.append(.stdout, Array(repeating: UInt8(ascii: "x"), count: 100))
        }
        let second = RecordingVerifier.verify(path: overlapping, trustedKeys: [testSigner.publicKey])
        XCTAssertFalse(second.isIntact)
        XCTAssertTrue(second.problems.first?.message.contains("overlaps or precedes the previous mask") ?? false, "\(second.problems)")
    }

    func testMalformedMaskPayloadsAreRefusedByTheDecoder() {
        func payload(_ stream: UInt8, _ length: UInt32, _ rule: String) -> [UInt8] {
            var w = ByteWriter(); w.u8(stream); w.u64(0); w.u32(length); w.raw(Array(rule.utf8)); return w.bytes
        }
        XCTAssertNoThrow(try RecordedMask.decode(payload(RecordType.stdout.rawValue, 1, "aws-access-key-id")))
        for bad in [payload(RecordType.stdin.rawValue, 1, "jwt"), payload(0x7f, 1, "jwt"), payload(RecordType.stdout.rawValue, 0, "jwt"),
                    payload(RecordType.stdout.rawValue, 1, ""), payload(RecordType.stdout.rawValue, 1, "Rule With Spaces"),
                    payload(RecordType.stdout.rawValue, 1, String(repeating: "a", count: 65)), [0x03, 0, 0]] {
            XCTAssertThrowsError(try RecordedMask.decode(bad), "\(bad)")
        }
    }

    /// Export and the player rebuild what the agent saw from the raw bytes and the masks that
    /// precede them, from the start and after a seek; the original view is the raw bytes.
    func testExportAndThePlayerShowTheAgentViewAndTheOriginalOnRequest() throws {
        let token = "ghp_" + String(repeating: "a1B2", count: 9)
        var header = sampleHeader(id: "agentview-\(UUID().uuidString.prefix(6))")
        header.masking = HeaderMasking(record: "raw", view: "marker", rules: ["github-token", "secret-assignment"])
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: dir.path, header: header, signer: testSigner, clock: clock.read, options: noIndex())
        let first = "TOKEN=\(token)\n", second = "plain line\n", third = "pw=hunter2hunter2\n"
        try writer.mask(RecordedMask(stream: .stdout, offset: 6, length: UInt32(token.utf8.count), rule: "github-token"))
        try writer.append(.stdout, Array(first.utf8))
        clock.advance(seconds: 2)
        try writer.append(.stdout, Array(second.utf8))
        clock.advance(seconds: 1)
        let third0 = UInt64(first.utf8.count + second.utf8.count)
        try writer.mask(RecordedMask(stream: .stdout, offset: third0 + 3, length: 14, rule: "secret-assignment"))
        // The masked span arrives in two data records.
        try writer.append(.stdout, Array(third.utf8.prefix(8)))
        try writer.append(.stdout, Array(third.utf8.dropFirst(8)))
        try writer.exit(status: 0)
        let path = try writer.finish().path

        let agent = "TOKEN=[masked:github-token]\nplain line\npw=[masked:secret-assignment]\n"
        XCTAssertEqual(String(decoding: try RecordingExporter.export(path: path, format: .raw).bytes, as: UTF8.self), agent)
        XCTAssertEqual(String(decoding: try RecordingExporter.export(path: path, format: .raw, view: .original).bytes, as: UTF8.self), first + second + third)
        XCTAssertFalse(String(decoding: try RecordingExporter.export(path: path, format: .asciicastV3).bytes, as: UTF8.self).contains(token))

        let playback = try RecordingPlayback(path: path)
        var shown = ""
        while let event = try playback.next() { if case .output(_, let bytes) = event { shown += String(decoding: bytes, as: UTF8.self) } }
        XCTAssertEqual(shown, agent)
        // A seek resumes the masked view mid-recording (stream offsets recomputed at the resume point).
        let seeking = try RecordingPlayback(path: path)
        let redraw = String(decoding: try seeking.seek(to: 2_500_000), as: UTF8.self)
        XCTAssertFalse(redraw.contains(token), redraw)
        var after = ""
        while let event = try seeking.next() { if case .output(_, let bytes) = event { after += String(decoding: bytes, as: UTF8.self) } }
        XCTAssertEqual(after, "pw=[masked:secret-assignment]\n")
        let original = try RecordingPlayback(path: path, view: .original)
        var raw = ""
        while let event = try original.next() { if case .output(_, let bytes) = event { raw += String(decoding: bytes, as: UTF8.self) } }
        XCTAssertEqual(raw, first + second + third)
        XCTAssertTrue(RecordingVerifier.verify(path: path, trustedKeys: [testSigner.publicKey]).isIntact)
    }
}
