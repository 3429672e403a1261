import CertificateAuthority
import Crypto
import Foundation
import Recording
import XCTest
@testable import Bastion

/// Every byte of a live session lands in its recording, exactly, and the recording verifies.
final class SessionRecordingTests: SharedFixtureTestCase {


    func sha256(_ data: some DataProtocol) -> String { SHA256.hash(data: Data(data)).map { String(format: "%02x", $0) }.joined() }

    func recordingPath(forSession session: String) throws -> String {
        let directory = f.directory.appendingPathComponent("recordings").path
        let name = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasPrefix(session) && $0.hasSuffix(".ghrec") })
        return "\(directory)/\(name)"
    }

    func testEveryByteOfStdinStdoutAndStderrIsRecordedExactly() throws {
        // Every byte value, invalid UTF-8 included, in both output streams and in the input.
        var output = [UInt8]()
        for round in 0..<64 { for b in 0...255 { output.append(UInt8((b + round) & 0xff)) } }
        output += [0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80]
        let file = f.directory.appendingPathComponent("all-bytes.bin")
        try Data(output).write(to: file)
        let input = Data(output.reversed())
        let r = try f.ssh("web-01", ["sh", "-c", "'cat \(file.path); cat \(file.path) >&2; cat >/dev/null'"], stdin: input)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.stdout, Data(output))
        XCTAssertEqual(r.stderr, Data(output))
        let end = try XCTUnwrap(f.awaitAudit { $0.event.action == "session.end" && $0.event.details["bytes_stdin"] == String(input.count) })
        let path = try XCTUnwrap(end.event.details["recording"])
        XCTAssertFalse(path.isEmpty)
        let stdout = try RecordingExporter.export(path: path, format: .raw, stream: .stdout).bytes
        let stderr = try RecordingExporter.export(path: path, format: .raw, stream: .stderr).bytes
        let stdin = try RecordingExporter.export(path: path, format: .raw, stream: .stdin).bytes
        XCTAssertEqual(sha256(stdout), sha256(output))
        XCTAssertEqual(sha256(stderr), sha256(output))
        XCTAssertEqual(sha256(stdin), sha256(input))
        let report = RecordingVerifier.verify(path: path, trustedKeys: f.store.trustedPublicKeys(.recording))
        XCTAssertTrue(report.isIntact, "\(report.problems)")
        XCTAssertEqual(report.header?.target, "web-01")
        XCTAssertEqual(report.header?.certificateKeyID, "agent:test")
        XCTAssertEqual(report.finalHash, end.event.details["recording_hash"])
    }

    func testNoRecordingNoSession() throws {
        // The recordings directory becomes unwritable: new sessions are refused before the target is contacted.
        let directory = f.directory.appendingPathComponent("recordings").path
        let before = f.targetConnectionCount()
        let moved = directory + ".away"
        XCTAssertEqual(rename(directory, moved), 0)
        try "not a directory".write(toFile: directory, atomically: true, encoding: .utf8)
        defer { unlink(directory); rename(moved, directory) }
        let r = try f.ssh("web-01", ["echo", "unrecorded"])
        XCTAssertEqual(r.status, 255)
        XCTAssertEqual(r.out, "")
        XCTAssertTrue(r.err.contains("cannot be recorded"), r.err)
        XCTAssertTrue(f.waitForIdle())
        XCTAssertEqual(f.targetConnectionCount(), before, "nothing reached the target")
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.recording" && $0.event.outcome == .failure })
    }
}
