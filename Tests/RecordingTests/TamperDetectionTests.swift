import Foundation
import XCTest
@testable import Recording
import SSHCertificates

/// Each way of altering a finished recording gives its own precise verdict, located by record
/// number and byte offset. Records of the small recording:
/// 0 header, 1 stdout, 2 stdin, 3 resize, 4 stderr, 5 marker, 6 stdout, 7 checkpoint,
/// 8 stdout, 9 exit, 10 trailer.
final class TamperDetectionTests: XCTestCase {
    private var dir: TemporaryDirectory!
    private var path = ""
    private var original: [UInt8] = []
    private var frames: [(offset: Int, size: Int, type: UInt8, sequence: UInt64)] = []

    override func setUpWithError() throws {
        dir = try TemporaryDirectory()
        path = try makeSmallRecording(in: dir.path).path
        original = fileBytes(path)
        frames = frameMap(original)
        XCTAssertEqual(frames.count, 11)
        XCTAssertEqual(frames.map(\.type), [1, 3, 2, 5, 4, 6, 3, 9, 3, 7, 10])
    }

    // XCTest keeps test case instances alive to the end of the run: drop the directory now.
    override func tearDown() { dir = nil }

    private func verify(_ bytes: [UInt8], keys: [SSHPublicKey] = [testSigner.publicKey]) -> VerificationReport {
        writeBytes(bytes, to: path)
        return RecordingVerifier.verify(path: path, trustedKeys: keys)
    }

    private func assertSingleProblem(_ report: VerificationReport, _ kind: VerificationProblem.Kind, record: UInt64?, offset: Int?,
                                     contains fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(report.isIntact, file: file, line: line)
        XCTAssertEqual(report.problems.count, 1, "\(report.problems)", file: file, line: line)
        guard let problem = report.problems.first else { return }
        XCTAssertEqual(problem.kind, kind, problem.description, file: file, line: line)
        XCTAssertEqual(problem.record, record, problem.description, file: file, line: line)
        XCTAssertEqual(problem.offset, offset.map(UInt64.init), problem.description, file: file, line: line)
        XCTAssertTrue(problem.message.contains(fragment), "\"\(problem.message)\" lacks \"\(fragment)\"", file: file, line: line)
        XCTAssertTrue(report.verdict.hasPrefix("FAILED"), file: file, line: line)
    }

    func testUntouchedRecordingPasses() {
        let report = verify(original)
        XCTAssertTrue(report.isIntact, report.verdict)
        XCTAssertTrue(report.verdict.hasPrefix("OK"))
    }

    func testFlippedPayloadByteInEveryRecordIsAChecksumMismatchAtThatRecord() {
        for (position, frame) in frames.enumerated() {
            var bytes = original
            bytes[frame.offset + FrameLayout.headSize] ^= 0x01
            assertSingleProblem(verify(bytes), .payloadChecksum, record: UInt64(position), offset: frame.offset,
                                contains: "payload checksum mismatch")
        }
    }

    func testFlippedHeadByteIsAHeadChecksumMismatch() {
        var bytes = original
        bytes[frames[4].offset + 6] ^= 0x80   // inside the sequence number
        assertSingleProblem(verify(bytes), .headChecksum, record: 4, offset: frames[4].offset, contains: "head checksum mismatch")
    }

    func testAlteredDataWithARecomputedChecksumBreaksTheChainAtTheNextCheckpoint() {
        var bytes = original
        let frame = frames[1]
        bytes[frame.offset + FrameLayout.headSize] ^= 0x20  // "hello" → "Hello"
        fixPayloadDigest(&bytes, frame)
        assertSingleProblem(verify(bytes), .chainMismatch, record: 7, offset: frames[7].offset, contains: "hash chain broken")
        // After the checkpoint, the trailer is what catches it.
        bytes = original
        bytes[frames[8].offset + FrameLayout.headSize] ^= 0x20
        fixPayloadDigest(&bytes, frames[8])
        assertSingleProblem(verify(bytes), .chainMismatch, record: 10, offset: frames[10].offset, contains: "last verified signature at record 7")
    }

    func testDroppedRecordIsNamed() {
        var bytes = original
        bytes.removeSubrange(frames[4].offset..<frames[4].offset + frames[4].size)
        assertSingleProblem(verify(bytes), .recordsMissing, record: 4, offset: frames[4].offset, contains: "record 4 is missing (dropped)")
    }

    func testSwappedRecordsAreNamed() {
        var bytes = Array(original[0..<frames[1].offset])
        for position in [4, 2, 3, 1] + Array(5...10) {
            bytes += original[frames[position].offset..<frames[position].offset + frames[position].size]
        }
        assertSingleProblem(verify(bytes), .recordsSwapped, record: 1, offset: frames[1].offset, contains: "records 1 and 4 are swapped")
    }

    func testDuplicatedRecordIsNamed() {
        var bytes = Array(original[0..<frames[3].offset])
        bytes += original[frames[2].offset..<frames[2].offset + frames[2].size]
        bytes += original[frames[3].offset...]
        assertSingleProblem(verify(bytes), .recordDuplicated, record: 3, offset: frames[3].offset, contains: "sequence number 2 appears again")
    }

    func testTruncationInsideARecordAndAtABoundary() {
        assertSingleProblem(verify(Array(original[0..<frames[8].offset + 30])), .truncated, record: 8, offset: frames[8].offset,
                            contains: "the file ends inside the record (30 of 61 bytes)")
        assertSingleProblem(verify(Array(original[0..<frames[10].offset])), .unfinished, record: 10, offset: frames[10].offset,
                            contains: "without a trailer")
        assertSingleProblem(verify(Array(original[0..<frames[6].offset + 10])), .truncated, record: 6, offset: frames[6].offset,
                            contains: "ends inside the record head (10 of 25 bytes)")
    }

    func testReplacedTrailerSignedByAnotherKeyIsABadSignature() throws {
        let forger = try SSHPrivateKey.generate(.ed25519)
        let trailerFrame = frames[10]
        let scanReport = verify(Array(original[0..<trailerFrame.offset]))
        XCTAssertEqual(scanReport.verifiedRecords, 10)
        let chain = try XCTUnwrap(hexBytes(scanReport.finalHash))
        let time = readTime(original, trailerFrame.offset)
        let forged = try TrailerPayload.make(sequence: 10, time: time, reason: .normal, totals: scanReport.totals, chainHash: chain, signer: forger)
        var bytes = Array(original[0..<trailerFrame.offset])
        bytes += FrameEncoder.frame(type: .trailer, sequence: 10, time: time, payload: forged.encoded())
        assertSingleProblem(verify(bytes), .badSignature, record: 10, offset: trailerFrame.offset, contains: "trailer signature does not verify")
    }

    func testTrailerFromAnotherRecordingBreaksTheChain() throws {
        let other = try makeSmallRecording(in: dir.path, id: "other").path
        let otherBytes = fileBytes(other)
        let otherTrailer = frameMap(otherBytes)[10]
        var bytes = Array(original[0..<frames[10].offset])
        bytes += otherBytes[otherTrailer.offset..<otherTrailer.offset + otherTrailer.size]
        assertSingleProblem(verify(bytes), .chainMismatch, record: 10, offset: frames[10].offset, contains: "or the trailer was replaced")
    }

    func testUntrustedRecordingKeyIsReported() throws {
        let stranger = try SSHPrivateKey.generate(.ed25519).publicKey
        let report = verify(original, keys: [stranger])
        XCTAssertEqual(report.problems.map(\.kind), [.untrustedKey])
        XCTAssertTrue(report.problems[0].message.contains(testSigner.publicKey.fingerprint))
    }

    func testBytesAfterTheTrailerAreReported() {
        let bytes = original + original[frames[1].offset..<frames[1].offset + frames[1].size]
        assertSingleProblem(verify(bytes), .dataAfterEnd, record: 11, offset: original.count, contains: "follow the trailer")
    }

    func testOtherFilesAreNotRecordings() {
        let report = verify(Array("#!/bin/sh\necho hi\n".utf8))
        XCTAssertEqual(report.problems.map(\.kind), [.notARecording])
        let empty = verify([])
        XCTAssertEqual(empty.problems.map(\.kind), [.notARecording])
    }

    func testEveryTruncationIsDetectedAndNeverCrashes() {
        for length in 0..<original.count {
            let report = verify(Array(original[0..<length]))
            XCTAssertFalse(report.isIntact, "a \(length)-byte prefix passed")
        }
    }

    func testEverySingleBitFlipIsDetected() {
        for offset in stride(from: 0, to: original.count, by: 1) {
            var bytes = original
            bytes[offset] ^= UInt8(1 << (offset % 8))
            XCTAssertFalse(verify(bytes).isIntact, "flip at byte \(offset) passed")
        }
    }

    // MARK: Helpers

    /// Recomputes the payload digest, as a forger would, so only the chain can catch the change.
    private func fixPayloadDigest(_ bytes: inout [UInt8], _ frame: (offset: Int, size: Int, type: UInt8, sequence: UInt64)) {
        let digestStart = frame.offset + frame.size - FrameLayout.digestSize
        let digest = Array(bytes[frame.offset + FrameLayout.headSize..<digestStart]).withUnsafeBytes { FrameLayout.payloadDigest($0) }
        bytes.replaceSubrange(digestStart..<frame.offset + frame.size, with: digest)
    }

    private func readTime(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        var time: UInt64 = 0
        for i in 0..<8 { time |= UInt64(bytes[offset + 13 + i]) << (8 * UInt64(i)) }
        return time
    }

    private func hexBytes(_ hex: String) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count % 2 == 0 else { return nil }
        return stride(from: 0, to: chars.count, by: 2).compactMap { UInt8(String(decoding: chars[$0..<$0 + 2], as: UTF8.self), radix: 16) }
    }
}
