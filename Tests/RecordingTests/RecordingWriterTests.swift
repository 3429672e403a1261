import Foundation
import XCTest
@testable import Recording
import SSHCertificates

final class RecordingWriterTests: XCTestCase {
    func testEveryRecordTypeRoundTripsAndVerifies() throws {
        let dir = try TemporaryDirectory()
        let (path, _) = try makeSmallRecording(in: dir.path)
        XCTAssertEqual(path, dir.path + "/small-ch0.ghrec")
        let reader = try RecordingReader(path: path)
        XCTAssertEqual(reader.header, sampleHeader(id: "small"))
        XCTAssertEqual(reader.recordingKey, testSigner.publicKey)
        var records: [Record] = []
        while let record = try reader.next() { records.append(record) }
        let contents = records.map(\.content)
        XCTAssertEqual(contents, [
            .data(.stdout, Array("hello\r\n".utf8)),
            .data(.stdin, Array("ls\r".utf8)),
            .resize(TerminalSize(columns: 100, rows: 30)),
            .data(.stderr, Array("warn\n".utf8)),
            .marker("command started"),
            .data(.stdout, [0xFF, 0xFE, 0x00, 0x1B, 0x5B, 0x32, 0x4A]),
            .checkpoint,
            .data(.stdout, Array("bye\n".utf8)),
            .exit(.status(3)),
            .end(.normal),
        ])
        XCTAssertEqual(records.map(\.timeMicros), [0, 100_000, 200_000, 200_000, 300_000, 5_300_000, 5_300_000, 5_500_000, 5_500_000, 5_500_000])
        XCTAssertEqual(records.map(\.index), Array(1...10))
        let report = RecordingVerifier.verify(path: path, trustedKeys: [testSigner.publicKey])
        XCTAssertTrue(report.isIntact, report.verdict)
        XCTAssertEqual(report.end, .normal)
        XCTAssertEqual(report.signedThrough, 10)
        XCTAssertEqual(report.exit, .status(3))
        XCTAssertEqual(report.totals, StreamTotals(stdin: 3, stdout: 18, stderr: 5))
    }

    func testRandomBinaryStreamsAreByteExact() throws {
        let dir = try TemporaryDirectory()
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(), signer: testSigner, clock: clock.read, options: noIndex())
        var expected: [RecordStream: [UInt8]] = [.stdin: [], .stdout: [], .stderr: []]
        let source = pseudoRandomBytes(3 << 20, seed: 1)
        var cursor = 0, step = 0
        while cursor < source.count {
            let size = min(source.count - cursor, [1, 7, 300, 4096, 65536, 70000, 300_000][step % 7])
            let stream = RecordStream.allCases[(step * 7 + size) % 3]
            let chunk = Array(source[cursor..<cursor + size])
            try writer.append(stream, chunk)
            expected[stream]! += chunk
            cursor += size; step += 1
            clock.advance(seconds: Double(step % 5) * 0.003)
        }
        let outcome = try writer.finish()
        let records = try readAll(writer.path)
        for stream in RecordStream.allCases {
            XCTAssertEqual(sha256Hex(streamBytes(records, stream)), sha256Hex(expected[stream]!), "\(stream)")
            XCTAssertEqual(outcome.totals[stream], UInt64(expected[stream]!.count))
        }
        XCTAssertTrue(RecordingVerifier.verify(path: writer.path, trustedKeys: [testSigner.publicKey]).isIntact)
    }

    /// Many small batches through a one-place pipeline (every hand-over waits for the sealer),
    /// with checkpoints between them: still byte-exact, in order, and verifiable.
    func testSmallBatchesThroughTheSealingQueueStayExactAndInOrder() throws {
        for inFlight in [1, 3] {
            let dir = try TemporaryDirectory()
            let clock = ManualClock()
            var options = noIndex()
            options.writeThreshold = 4096
            options.maxRecordPayload = 3000
            options.maxBatchesInFlight = inFlight
            let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(), signer: testSigner, clock: clock.read, options: options)
            var expected: [RecordStream: [UInt8]] = [.stdin: [], .stdout: [], .stderr: []]
            let source = pseudoRandomBytes(1 << 20, seed: 11)
            var cursor = 0, step = 0
            while cursor < source.count {
                let size = min(source.count - cursor, [1, 100, 2999, 3000, 5000, 9000][step % 6])
                let stream = RecordStream.allCases[step % 3]
                let chunk = Array(source[cursor..<cursor + size])
                try writer.append(stream, chunk)
                expected[stream]! += chunk
                cursor += size; step += 1
                clock.advance(seconds: 0.05)
                if step % 7 == 0 { try writer.marker("m\(step)") }
                try writer.flushIfDue()
            }
            let outcome = try writer.finish()
            let records = try readAll(writer.path)
            for stream in RecordStream.allCases {
                XCTAssertEqual(sha256Hex(streamBytes(records, stream)), sha256Hex(expected[stream]!), "\(stream), \(inFlight) in flight")
            }
            XCTAssertEqual(records.map(\.index), Array(1...UInt64(records.count)))
            XCTAssertGreaterThanOrEqual(records.filter { $0.content == .checkpoint }.count, 3, "checkpoints between batches")
            XCTAssertEqual(outcome.recordCount, UInt64(records.count) + 1)
            let report = RecordingVerifier.verify(path: writer.path, trustedKeys: [testSigner.publicKey])
            XCTAssertTrue(report.isIntact, report.verdict)
            XCTAssertEqual(report.finalHash, outcome.finalHash)
            XCTAssertEqual(UInt64(fileBytes(writer.path).count), outcome.summary.fileSize)
        }
    }

    func testBulkOutputBatchesIntoLargeRecordsWithTinyOverhead() throws {
        let dir = try TemporaryDirectory()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(), signer: testSigner, options: noIndex())
        let chunk = pseudoRandomBytes(65536, seed: 2)
        for _ in 0..<256 { try writer.append(.stdout, chunk) }  // 16 MiB
        let outcome = try writer.finish()
        let records = try readAll(writer.path)
        let dataSizes = records.compactMap { record -> Int? in
            if case .data(_, let bytes) = record.content { return bytes.count } else { return nil }
        }
        // Each 64 KiB append lands whole in one record: every record is a whole number of appends.
        XCTAssertTrue(dataSizes.allSatisfy { $0 % 65536 == 0 }, "\(dataSizes)")
        XCTAssertEqual(dataSizes.reduce(0, +), 16 << 20)
        let fileSize = Double(outcome.summary.fileSize)
        let overhead = (fileSize - Double(16 << 20)) / Double(16 << 20)
        XCTAssertLessThan(overhead, 0.02, "size overhead \(overhead * 100)%")
    }

    func testAppendLargerThanOneRecordSplitsAtTheLimit() throws {
        let dir = try TemporaryDirectory()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(), signer: testSigner, options: noIndex())
        try writer.append(.stdout, pseudoRandomBytes(600 * 1024, seed: 3))
        try writer.finish()
        let sizes = try readAll(writer.path).compactMap { r -> Int? in if case .data(_, let b) = r.content { b.count } else { nil } }
        XCTAssertEqual(sizes, [256 * 1024, 256 * 1024, 88 * 1024])
    }

    func testInputIsDroppedWhenThePolicySaysSo() throws {
        let dir = try TemporaryDirectory()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(inputRecorded: false), signer: testSigner, options: noIndex())
        try writer.append(.stdin, Array("secret-password\r".utf8))
        try writer.append(.stdout, Array("ok".utf8))
        let outcome = try writer.finish()
        XCTAssertEqual(outcome.totals, StreamTotals(stdin: 0, stdout: 2, stderr: 0))
        XCTAssertFalse(fileBytes(writer.path).contains(Array("secret".utf8)), "stdin bytes reached the file")
        XCTAssertFalse(try RecordingReader(path: writer.path).header.inputRecorded)
    }

    func testFileIsPrivateAndNeverOverwritten() throws {
        let dir = try TemporaryDirectory()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(), signer: testSigner, options: noIndex())
        let mode = try FileManager.default.attributesOfItem(atPath: writer.path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
        XCTAssertThrowsError(try RecordingWriter(directory: dir.path, header: sampleHeader(), signer: testSigner, options: noIndex())) { error in
            XCTAssertEqual((error as? RecordingWriteError)?.errnoValue, EEXIST)
            XCTAssertTrue("\(error)".contains("EEXIST"), "\(error)")
        }
        try writer.finish()
    }

    func testSessionIDsThatCouldEscapeTheDirectoryAreRefused() {
        for bad in ["../x", "a/b", ".hidden", "", String(repeating: "a", count: 129), "a b"] {
            XCTAssertThrowsError(try RecordingWriter(directory: "/tmp", header: sampleHeader(id: bad), signer: testSigner)) { error in
                XCTAssertEqual(error as? RecordingWriteError, .invalidSessionID(bad))
            }
        }
    }

    func testDataReachesTheFileOnlyWhenAFlushIsDueAndAtLeastTwiceASecond() throws {
        let dir = try TemporaryDirectory()
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(), signer: testSigner, clock: clock.read, options: noIndex())
        let afterHeader = fileBytes(writer.path).count
        try writer.append(.stdout, Array("typed".utf8))
        clock.advance(seconds: 0.25)
        try writer.flushIfDue()
        writer.waitUntilWritten()
        XCTAssertEqual(fileBytes(writer.path).count, afterHeader, "flushed before it was due")
        clock.advance(seconds: 0.25)
        try writer.flushIfDue()
        writer.waitUntilWritten()
        let records = try readAll(writer.path, allowTornTail: true)
        XCTAssertEqual(streamBytes(records, .stdout), Array("typed".utf8))
        // An idle session still gets its checkpoint signed once something new was recorded.
        clock.advance(seconds: 5)
        try writer.flushIfDue()
        writer.waitUntilWritten()
        let report = RecordingVerifier.verify(path: writer.path, trustedKeys: [testSigner.publicKey])
        XCTAssertEqual(report.problems.map(\.kind), [.unfinished])
        XCTAssertEqual(report.signedThrough, 2)
        try writer.finish()
    }

    func testFinishedWriterRefusesFurtherCalls() throws {
        let dir = try TemporaryDirectory()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(), signer: testSigner, options: noIndex())
        try writer.finish()
        XCTAssertThrowsError(try writer.append(.stdout, [1])) { XCTAssertEqual($0 as? RecordingWriteError, .alreadyFinished(path: writer.path)) }
        XCTAssertThrowsError(try writer.finish())
    }

    func testErrnoNamesAreSpelledOut() {
        XCTAssertTrue(RecordingWriteError.writeFailed(path: "/r", errno: ENOSPC, offset: 9).description.contains("(ENOSPC)"))
        XCTAssertTrue(RecordingWriteError.cannotCreate(path: "/r", errno: EACCES).description.contains("(EACCES)"))
        XCTAssertTrue(RecordingWriteError.syncFailed(path: "/r", errno: EIO).description.contains("(EIO)"))
    }
}
