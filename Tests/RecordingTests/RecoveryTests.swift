import Foundation
import XCTest
@testable import Recording
import SSHCertificates

final class RecoveryTests: XCTestCase {
    /// Cuts the small recording (without its trailer) at every byte offset after the header:
    /// recovery must keep exactly the complete records before the cut and seal them.
    func testTornTailAtEveryOffsetIsCutBackAndSealedAsCrash() throws {
        let dir = try TemporaryDirectory()
        let original = fileBytes(try makeSmallRecording(in: dir.path).path)
        let frames = frameMap(original)
        let path = dir.path + "/cut-ch0.ghrec"
        let firstDataOffset = frames[1].offset
        let trailerOffset = frames[10].offset
        let recoverer = try SSHPrivateKey.generate(.ed25519)  // a rotated recording key
        for cut in firstDataOffset...trailerOffset {
            writeBytes(Array(original[0..<cut]), to: path)
            let outcome = try RecordingRecovery.recover(path: path, signer: recoverer, updateIndex: false)
            let complete = frames.filter { $0.offset + $0.size <= cut }.count
            guard case .closed(let lastRecord, let discarded, _) = outcome else { return XCTFail("cut \(cut): \(outcome)") }
            XCTAssertEqual(lastRecord, UInt64(complete - 1), "cut \(cut)")
            XCTAssertEqual(Int(discarded), cut - (frames[complete - 1].offset + frames[complete - 1].size), "cut \(cut)")
            let report = RecordingVerifier.verify(path: path, trustedKeys: [testSigner.publicKey, recoverer.publicKey])
            XCTAssertTrue(report.isIntact, "cut \(cut): \(report.verdict)")
            XCTAssertEqual(report.end, .crash)
            XCTAssertEqual(report.verifiedRecords, UInt64(complete + 1))
            // The kept bytes are exactly the original's complete records.
            let kept = fileBytes(path)
            let keptEnd = frames[complete - 1].offset + frames[complete - 1].size
            XCTAssertEqual(Array(kept[0..<keptEnd]), Array(original[0..<keptEnd]), "cut \(cut)")
            // A second recovery changes nothing.
            XCTAssertEqual(try RecordingRecovery.recover(path: path, signer: recoverer, updateIndex: false), .alreadyClosed(.crash))
            XCTAssertEqual(fileBytes(path), kept)
        }
    }

    func testCrashEndByAnUntrustedKeyFailsVerification() throws {
        let dir = try TemporaryDirectory()
        let original = fileBytes(try makeSmallRecording(in: dir.path).path)
        let path = dir.path + "/x-ch0.ghrec"
        writeBytes(Array(original[0..<frameMap(original)[10].offset]), to: path)
        let stranger = try SSHPrivateKey.generate(.ed25519)
        _ = try RecordingRecovery.recover(path: path, signer: stranger, updateIndex: false)
        let report = RecordingVerifier.verify(path: path, trustedKeys: [testSigner.publicKey])
        XCTAssertEqual(report.problems.map(\.kind), [.untrustedKey])
        XCTAssertTrue(report.problems[0].message.contains("crash end is signed by \(stranger.publicKey.fingerprint)"))
    }

    func testZeroFilledBlocksAfterTheLastRecordAreATornTail() throws {
        let dir = try TemporaryDirectory()
        let original = fileBytes(try makeSmallRecording(in: dir.path).path)
        let path = dir.path + "/z-ch0.ghrec"
        let cut = frameMap(original)[10].offset
        writeBytes(Array(original[0..<cut]) + [UInt8](repeating: 0, count: 4096), to: path)
        guard case .closed(let last, let discarded, _) = try RecordingRecovery.recover(path: path, signer: testSigner, updateIndex: false) else {
            return XCTFail("not closed")
        }
        XCTAssertEqual(last, 9)
        XCTAssertEqual(discarded, 4096)
        XCTAssertTrue(RecordingVerifier.verify(path: path, trustedKeys: [testSigner.publicKey]).isIntact)
    }

    func testMidFileCorruptionIsReportedAndNeverRepaired() throws {
        let dir = try TemporaryDirectory()
        let original = fileBytes(try makeSmallRecording(in: dir.path).path)
        let frames = frameMap(original)
        let path = dir.path + "/m-ch0.ghrec"
        var damaged = Array(original[0..<frames[10].offset])
        damaged[frames[4].offset + FrameLayout.headSize] ^= 0xFF
        writeBytes(damaged, to: path)
        XCTAssertThrowsError(try RecordingRecovery.recover(path: path, signer: testSigner, updateIndex: false)) { error in
            guard case .corrupted(_, let problem) = error as? RecoveryError else { return XCTFail("\(error)") }
            XCTAssertEqual(problem.kind, .payloadChecksum)
            XCTAssertEqual(problem.record, 4)
            XCTAssertEqual(problem.offset, UInt64(frames[4].offset))
        }
        XCTAssertEqual(fileBytes(path), damaged, "recovery changed a corrupted file")
        // Non-zero garbage after the last record is damage, not a torn tail.
        let garbage = Array(original[0..<frames[10].offset]) + [0xAB]
            + [UInt8](repeating: 0x5A, count: 40)
        writeBytes(garbage, to: path)
        XCTAssertThrowsError(try RecordingRecovery.recover(path: path, signer: testSigner, updateIndex: false)) { error in
            guard case .corrupted(_, let problem) = error as? RecoveryError else { return XCTFail("\(error)") }
            XCTAssertEqual(problem.kind, .headChecksum)
        }
        XCTAssertEqual(fileBytes(path), garbage)
    }

    func testALiveRecordingIsNotTouched() throws {
        let dir = try TemporaryDirectory()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(), signer: testSigner, options: noIndex())
        try writer.append(.stdout, Array("running".utf8))
        XCTAssertThrowsError(try RecordingRecovery.recover(path: writer.path, signer: testSigner)) { error in
            XCTAssertEqual(error as? RecoveryError, .live(path: writer.path))
        }
        XCTAssertEqual(RecordingRecovery.recoverAll(directory: dir.path, signer: testSigner).count, 0)
        try writer.finish()
    }

    func testRecoverAllClosesEveryUnfinishedRecordingAndIndexesIt() throws {
        let dir = try TemporaryDirectory()
        let original = fileBytes(try makeSmallRecording(in: dir.path).path)
        try FileManager.default.removeItem(atPath: dir.path + "/small-ch0.ghrec")
        let cut = frameMap(original)[8].offset + 5
        writeBytes(Array(original[0..<cut]), to: dir.path + "/a-ch0.ghrec")
        writeBytes(Array(original[0..<cut]), to: dir.path + "/b-ch0.ghrec")
        let results = RecordingRecovery.recoverAll(directory: dir.path, signer: testSigner)
        XCTAssertEqual(results.map(\.path), [dir.path + "/a-ch0.ghrec", dir.path + "/b-ch0.ghrec"])
        let index = try SessionIndex.load(directory: dir.path)
        XCTAssertEqual(index.list().map(\.state), ["crash", "crash"])
    }
}
