import Foundation
import XCTest
@testable import Recording
import SSHCertificates

/// Real file-system failures on real mounts: a full tmpfs (ENOSPC) and a read-only one (EROFS).
final class RecordingFailureTests: XCTestCase {
    private func mountTmpfs(options: String) throws -> String {
        let point = FileManager.default.temporaryDirectory.appendingPathComponent("ghrec-mnt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: point, withIntermediateDirectories: true)
        let status = run("/bin/mount", ["-t", "tmpfs", "-o", options, "tmpfs", point])
        if status != 0 {
            try? FileManager.default.removeItem(atPath: point)
            throw XCTSkip("cannot mount a tmpfs here (needs root): mount exited \(status)")
        }
        addTeardownBlock {
            _ = self.run("/bin/umount", [point])
            try? FileManager.default.removeItem(atPath: point)
        }
        return point
    }

    private func run(_ tool: String, _ arguments: [String]) -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return -1 }
        process.waitUntilExit()
        return process.terminationStatus
    }

    func testDiskFullFailsClosedWithENOSPCAndLeavesAVerifiableFile() throws {
        let mount = try mountTmpfs(options: "size=512k,mode=0700")
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: mount, header: sampleHeader(), signer: testSigner, clock: clock.read, options: noIndex())
        let chunk = pseudoRandomBytes(32 * 1024, seed: 4)
        var thrown: RecordingWriteError?
        for _ in 0..<64 {
            do {
                try writer.append(.stdout, chunk)
                clock.advance(seconds: 0.6)
                try writer.flushIfDue()
            } catch { thrown = error; break }
        }
        let error = try XCTUnwrap(thrown, "a 512 KiB file system took 2 MiB")
        XCTAssertEqual(error.errnoValue, ENOSPC)
        XCTAssertTrue(error.description.contains("ENOSPC"), error.description)
        XCTAssertEqual(writer.failure, error)
        // Poisoned: everything after the failure throws, naming the first failure.
        XCTAssertThrowsError(try writer.append(.stdout, [1])) { XCTAssertEqual($0 as? RecordingWriteError, .poisoned(first: error)) }
        XCTAssertThrowsError(try writer.flushIfDue())
        XCTAssertThrowsError(try writer.finish())
        // The file was cut back to the last good record and closed by a signed recorder-failure trailer.
        let report = RecordingVerifier.verify(path: writer.path, trustedKeys: [testSigner.publicKey])
        XCTAssertTrue(report.isIntact, report.verdict)
        XCTAssertEqual(report.end, .recorderFailure)
    }

    /// The write fails on the sealing queue, not in the caller: the very next call reports it.
    func testAWriteFailureOnTheSealingQueueReachesTheNextCall() throws {
        // Room for the first batch and the 64 KiB the writer keeps reserved past its end, not for the second.
        let mount = try mountTmpfs(options: "size=384k,mode=0700")
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: mount, header: sampleHeader(), signer: testSigner, clock: clock.read, options: noIndex())
        try writer.append(.stdout, pseudoRandomBytes(200 * 1024, seed: 5))
        clock.advance(seconds: 0.6)
        try writer.flushIfDue()  // hands over 200 KiB: it fits
        writer.waitUntilWritten()
        try writer.append(.stdout, pseudoRandomBytes(200 * 1024, seed: 6))
        clock.advance(seconds: 0.6)
        try writer.flushIfDue()  // hands over another 200 KiB: the sealer's pwrite hits ENOSPC
        writer.waitUntilWritten()
        XCTAssertEqual(writer.failure?.errnoValue, ENOSPC, "known as soon as the sealer failed")
        XCTAssertThrowsError(try writer.flushIfDue()) { error in
            XCTAssertEqual((error as? RecordingWriteError)?.errnoValue, ENOSPC)
            XCTAssertTrue("\(error)".contains("write at byte"), "\(error)")
        }
        XCTAssertThrowsError(try writer.append(.stdout, [1])) { error in
            guard case .poisoned = error as? RecordingWriteError else { return XCTFail("\(error)") }
        }
        let report = RecordingVerifier.verify(path: writer.path, trustedKeys: [testSigner.publicKey])
        XCTAssertTrue(report.isIntact, report.verdict)
        XCTAssertEqual(report.end, .recorderFailure)
        XCTAssertEqual(report.totals.stdout, 200 * 1024, "the first batch is kept, the failed one cut off")
    }

    func testAFullDiskFailsWhileTheReserveStillHoldsTheNoticeAndTrailer() throws {
        let mount = try mountTmpfs(options: "size=256k,mode=0700")
        var options = noIndex()
        options.recordsFailureNotice = true
        let writer = try RecordingWriter(directory: mount, header: sampleHeader(), signer: testSigner, options: options)
        var failed = false
        for seed in 0..<40 where !failed {
            do { try writer.append(.stdout, pseudoRandomBytes(16 * 1024, seed: UInt64(seed))); try writer.handOverIfIdle() } catch { failed = true }
            writer.waitUntilWritten()
        }
        XCTAssertTrue(failed, "640 KiB cannot fit in 256 KiB")
        XCTAssertEqual(writer.failure?.errnoValue, ENOSPC)
        let notice = try XCTUnwrap(writer.failureNotice, "the notice was written into the reserved space")
        XCTAssertTrue(String(decoding: notice, as: UTF8.self).hasPrefix("gatehouse: the session can no longer be recorded"))
        let report = RecordingVerifier.verify(path: writer.path, trustedKeys: [testSigner.publicKey])
        XCTAssertTrue(report.isIntact, report.verdict)
        XCTAssertEqual(report.end, .recorderFailure)
        XCTAssertEqual(try RecordingExporter.export(path: writer.path, format: .raw, stream: .stderr).bytes, notice)
        XCTAssertEqual(UInt64(try RecordingExporter.export(path: writer.path, format: .raw, stream: .stdout).bytes.count), writer.writtenPosition,
                       "everything released as written is in the file")
    }

    func testReadOnlyDirectoryRefusesTheSessionUpFront() throws {
        let mount = try mountTmpfs(options: "size=64k,ro")
        XCTAssertThrowsError(try RecordingWriter(directory: mount, header: sampleHeader(), signer: testSigner)) { error in
            let writeError = error as? RecordingWriteError
            XCTAssertEqual(writeError?.errnoValue, EROFS)
            XCTAssertTrue("\(error)".contains("cannot create recording") && "\(error)".contains("EROFS"), "\(error)")
        }
    }

    func testMissingDirectoryNamesENOENT() {
        XCTAssertThrowsError(try RecordingWriter(directory: "/nonexistent-\(UUID().uuidString)", header: sampleHeader(), signer: testSigner)) { error in
            XCTAssertEqual((error as? RecordingWriteError)?.errnoValue, ENOENT)
        }
    }
}

final class BackgroundSyncTests: XCTestCase {
    func testAFailedBackgroundSyncIsKeptForTheNextCall() throws {
        let dir = try TemporaryDirectory()
        let file = try RecordingFile(creating: dir.path + "/x.ghrec")
        let syncer = BackgroundSync()
        syncer.request(file)
        XCTAssertNil(syncer.drain())
        file.close()  // fdatasync on a closed descriptor fails with EBADF
        syncer.request(file)
        XCTAssertEqual(syncer.drain(), .syncFailed(path: dir.path + "/x.ghrec", errno: EBADF))
        XCTAssertEqual(syncer.failure?.errnoValue, EBADF)
    }
}

final class SealingPipelineTests: XCTestCase {
    /// Fail closed, promptly: a batch's place in the queue is freed only after its failure is
    /// published, so once the relay has handed over `maxInFlight` more batches it must see it.
    func testAFailureIsPublishedBeforeTheNextBatchIsAccepted() throws {
        let dir = try TemporaryDirectory()
        let file = try RecordingFile(creating: dir.path + "/p.ghrec")
        var builder = BatchBuilder(buffer: [])
        builder.appendPreamble()
        builder.appendWholeRecord(.header, time: 0, payload: HeaderRecord(session: sampleHeader(), recordingKey: testSigner.publicKey.openSSHLine).encoded())
        let pipeline = SealingPipeline(sealer: BatchSealer(file: file, signer: testSigner), maxInFlight: 1, bufferCapacity: 4096)
        let first = builder.take(replacingWith: [])
        pipeline.submit(RecordBatch(bytes: first.bytes, slots: first.slots))
        pipeline.drain()
        XCTAssertNil(pipeline.failure)
        file.close()  // the next pwrite fails with EBADF
        Array("lost".utf8).withUnsafeBytes { raw in
            _ = builder.appendData(stream: .stdout, time: 1, bytes: raw, window: 0, maxPayload: 1024)
        }
        builder.sealOpenRecord()
        let second = builder.take(replacingWith: [])
        pipeline.submit(RecordBatch(bytes: second.bytes, slots: second.slots))
        // One place: this hand-over waits until the failed batch has freed it.
        pipeline.submit(RecordBatch(bytes: [], slots: []))
        XCTAssertEqual(pipeline.failure?.errnoValue, EBADF)
        pipeline.drain()
    }
}
