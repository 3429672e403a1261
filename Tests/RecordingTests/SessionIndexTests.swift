import Foundation
import XCTest
@testable import Recording
import SSHCertificates

final class SessionIndexTests: XCTestCase {
    private func record(_ dir: String, id: String, subject: String, target: String, scopes: [String], command: String?,
                        start: UInt64, exit: UInt32?) throws {
        let writer = try RecordingWriter(directory: dir, header: sampleHeader(id: id, command: command, subject: subject, target: target,
                                                                              scopes: scopes, start: start), signer: testSigner)
        try writer.append(.stdout, Array("output of \(id)\n".utf8))
        if let exit { try writer.exit(status: exit) }
        try writer.finish()
    }

    func testFinishedRecordingsAreListedAndFiltered() throws {
        let dir = try TemporaryDirectory()
        try record(dir.path, id: "a", subject: "alice", target: "web-01", scopes: ["ops-read"], command: "systemctl status nginx", start: 1_000_000, exit: 0)
        try record(dir.path, id: "b", subject: "bob", target: "db-01", scopes: ["db-admin", "ops-read"], command: "psql -c 'select 1'", start: 2_000_000, exit: 1)
        try record(dir.path, id: "c", subject: "alice", target: "db-01", scopes: ["db-admin"], command: nil, start: 3_000_000, exit: nil)
        let index = try SessionIndex.load(directory: dir.path)
        XCTAssertEqual(index.list().map(\.recordingID), ["a-ch0", "b-ch0", "c-ch0"])
        XCTAssertEqual(index.list(SessionFilter(subject: "alice")).map(\.sessionID), ["a", "c"])
        XCTAssertEqual(index.list(SessionFilter(target: "db-01")).map(\.sessionID), ["b", "c"])
        XCTAssertEqual(index.list(SessionFilter(scope: "ops-read")).map(\.sessionID), ["a", "b"])
        XCTAssertEqual(index.list(SessionFilter(sinceMicros: 1_500_000, untilMicros: 2_500_000)).map(\.sessionID), ["b"])
        XCTAssertEqual(index.list(SessionFilter(exitStatus: 1)).map(\.sessionID), ["b"])
        XCTAssertEqual(index.list(SessionFilter(commandContains: "nginx")).map(\.sessionID), ["a"])
        XCTAssertEqual(index.list(SessionFilter(commandContains: "shell")).map(\.sessionID), ["c"])
        XCTAssertEqual(index.list(SessionFilter(subject: "alice", target: "db-01")).map(\.sessionID), ["c"])
        let b = try XCTUnwrap(index.find("b"))
        XCTAssertEqual(b.state, "normal")
        XCTAssertEqual(b.exitStatus, 1)
        XCTAssertEqual(b.totals.stdout, 12)
        XCTAssertEqual(b.finalHash.count, 64)
        XCTAssertEqual(b.fileSize, UInt64(fileBytes(dir.path + "/b-ch0.ghrec").count))
        let mode = try FileManager.default.attributesOfItem(atPath: dir.path + "/index.jsonl")[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
    }

    func testLiveAndUnfinishedRecordingsAppearFromTheirHeaders() throws {
        let dir = try TemporaryDirectory()
        let live = try RecordingWriter(directory: dir.path, header: sampleHeader(id: "live"), signer: testSigner)
        let original = fileBytes(try makeSmallRecording(in: dir.path, id: "gone").path)
        writeBytes(Array(original[0..<frameMap(original)[5].offset]), to: dir.path + "/gone-ch0.ghrec")
        let index = try SessionIndex.load(directory: dir.path)
        XCTAssertEqual(index.find("live")?.state, "live")
        XCTAssertEqual(index.find("gone")?.state, "unfinished")
        try live.finish()
        XCTAssertEqual(try SessionIndex.load(directory: dir.path).find("live")?.state, "normal")
    }

    func testRebuildRecreatesTheIndexFromRecordingsAndDamagedLinesAreSkipped() throws {
        let dir = try TemporaryDirectory()
        try record(dir.path, id: "a", subject: "alice", target: "web-01", scopes: ["x"], command: "id", start: 5, exit: 0)
        let expected = try SessionIndex.load(directory: dir.path).find("a")
        let indexPath = dir.path + "/" + SessionIndex.fileName
        writeBytes(Array("{not json\n".utf8) + fileBytes(indexPath), to: indexPath)
        XCTAssertEqual(try SessionIndex.load(directory: dir.path).skippedLines, [1])
        try FileManager.default.removeItem(atPath: indexPath)
        let rebuilt = try SessionIndex.rebuild(directory: dir.path)
        XCTAssertEqual(rebuilt.find("a"), expected)
        XCTAssertEqual(try SessionIndex.load(directory: dir.path).find("a"), expected)
    }
}

extension SessionIndexTests {
    /// Index lines are snake_case now; lines an older Gatehouse wrote (camelCase) still load.
    func testIndexLinesAreSnakeCaseAndOldCamelCaseLinesStillLoad() throws {
        let dir = try TemporaryDirectory()
        try record(dir.path, id: "new", subject: "alice", target: "web-01", scopes: ["x"], command: "id", start: 5, exit: 0)
        let indexPath = dir.path + "/" + SessionIndex.fileName
        let line = String(decoding: fileBytes(indexPath), as: UTF8.self)
        for key in ["\"recording_id\"", "\"start_time_micros\"", "\"certificate_key_id\"", "\"final_hash\"", "\"exit_status\""] {
            XCTAssertTrue(line.contains(key), "\(key) in \(line)")
        }
        XCTAssertFalse(line.contains("recordingID") || line.contains("Micros") || line.contains("KeyID"), line)
        let legacy = #"{"certificateKeyID":"agent-old","certificateSerial":9,"channel":0,"command":"uptime","context":"t","durationMicros":7,"exitStatus":0,"fileSize":100,"finalHash":"ab","inputRecorded":false,"login":"deploy","recordCount":3,"recordingID":"old-ch0","scopes":["ops"],"sessionID":"old","sourceAddress":"127.0.0.1:1","startTimeMicros":4,"state":"normal","subject":"bob","target":"db-01","totals":{"stderr":0,"stdin":0,"stdout":12}}"#
        writeBytes(Array((legacy + "\n").utf8) + fileBytes(indexPath), to: indexPath)
        let index = try SessionIndex.load(directory: dir.path)
        XCTAssertEqual(index.skippedLines, [])
        let old = try XCTUnwrap(index.find("old"))
        XCTAssertEqual(old.certificateKeyID, "agent-old")
        XCTAssertEqual(old.startTimeMicros, 4)
        XCTAssertEqual(old.totals.stdout, 12)
        XCTAssertEqual(index.find("new")?.subject, "alice")
    }
}
