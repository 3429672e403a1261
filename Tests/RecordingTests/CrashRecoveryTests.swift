import Foundation
import XCTest
@testable import Recording
import SSHCertificates

/// A real writer in a child process killed with SIGKILL mid-stream. The child is this test
/// binary re-executed with `GATEHOUSE_RECORDING_CHILD` set, running `testChildWriter`, which
/// records a deterministic stream and logs (time, bytes appended) after each flush check.
final class CrashRecoveryTests: XCTestCase {
    static let childVariable = "GATEHOUSE_RECORDING_CHILD"

    func testChildWriter() throws {
        guard let directory = ProcessInfo.processInfo.environment[Self.childVariable] else {
            throw XCTSkip("runs only as the child of testKillNineMidStreamLosesAtMostOneSecond")
        }
        let progress = FileHandle(forWritingAtPath: directory + "/progress")!
        let writer = try RecordingWriter(directory: directory, header: sampleHeader(id: "crash"), signer: testSigner)
        let stream = pseudoRandomBytes(1 << 20, seed: 9)
        var appended = 0
        while true {
            let size = 1 + (appended * 31) % 8191
            let start = appended % stream.count
            let chunk = Array(stream[start..<min(stream.count, start + size)])
            try writer.append(.stdout, chunk)
            appended += chunk.count
            try writer.flushIfDue()
            progress.write(Data("\(MonotonicClock.nanoseconds()) \(appended)\n".utf8))
            usleep(500)
        }
    }

    func testKillNineMidStreamLosesAtMostOneSecond() throws {
        let dir = try TemporaryDirectory()
        FileManager.default.createFile(atPath: dir.path + "/progress", contents: nil)
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        child.arguments = ["RecordingTests.CrashRecoveryTests/testChildWriter"]
        child.environment = ProcessInfo.processInfo.environment.merging([Self.childVariable: dir.path]) { $1 }
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        let recording = dir.path + "/crash-ch0.ghrec"
        // Wait (with a deadline) until the child has streamed for more than two seconds.
        let deadline = Date().addingTimeInterval(60)
        var started: UInt64?
        while Date() < deadline {
            let lines = progressLines(dir.path)
            if let first = lines.first { started = started ?? first.time }
            if let last = lines.last, let started, last.time - started > 2_000_000_000 { break }
            usleep(20_000)
        }
        XCTAssertTrue(child.isRunning, "the child writer stopped on its own")
        let killedAt = MonotonicClock.nanoseconds()
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        XCTAssertEqual(child.terminationReason, .uncaughtSignal)
        let lines = progressLines(dir.path)
        let promised = lines.last { $0.time + 1_000_000_000 <= killedAt }?.bytes ?? 0
        XCTAssertGreaterThan(promised, 0)

        let outcome = try RecordingRecovery.recover(path: recording, signer: testSigner)
        guard case .closed = outcome else { return XCTFail("\(outcome)") }
        // The child generated its own recording key; the parent recovered with another.
        let childKey = try RecordingReader(path: recording).recordingKey
        XCTAssertNotEqual(childKey, testSigner.publicKey)
        let report = RecordingVerifier.verify(path: recording, trustedKeys: [childKey, testSigner.publicKey])
        XCTAssertTrue(report.isIntact, report.verdict)
        XCTAssertEqual(report.end, .crash)
        XCTAssertTrue(report.verdict.contains("ended by crash"), report.verdict)
        let kept = streamBytes(try readAll(recording), .stdout)
        XCTAssertGreaterThanOrEqual(kept.count, promised, "lost more than the last second")
        // Every kept byte is exactly what the child appended, in order.
        let stream = pseudoRandomBytes(1 << 20, seed: 9)
        var expected: [UInt8] = []
        var appended = 0
        while expected.count < kept.count {
            let size = 1 + (appended * 31) % 8191
            let start = appended % stream.count
            let chunk = stream[start..<min(stream.count, start + size)]
            expected += chunk
            appended += chunk.count
        }
        XCTAssertEqual(sha256Hex(kept), sha256Hex(Array(expected[0..<kept.count])))
    }

    private func progressLines(_ directory: String) -> [(time: UInt64, bytes: Int)] {
        let text = String(decoding: fileBytes(directory + "/progress"), as: UTF8.self)
        return text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let time = UInt64(parts[0]), let bytes = Int(parts[1]) else { return nil }
            return (time, bytes)
        }
    }
}
