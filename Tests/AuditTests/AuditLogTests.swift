import Foundation
import Synchronization
import XCTest
@testable import Audit

final class AuditLogTests: XCTestCase {
    var path: String!

    override func setUp() { path = NSTemporaryDirectory() + "audit-\(UUID().uuidString).log" }
    override func tearDown() { unlink(path) }

    func event(_ n: Int) -> AuditEvent { makeEvent(n) }
}

private func makeEvent(_ n: Int) -> AuditEvent {
    AuditEvent(actor: "agent:a\(n % 3)", action: "session.start", object: "web-\(n)", outcome: .success, details: ["n": String(n)])
}

extension AuditLogTests {
    func testChainIsIntactAndRecordsReadBack() throws {
        let log = try AuditLog(path: path)
        for i in 0..<20 { try log.append(event(i)) }
        guard case .intact(let lines, _) = try AuditLog.verify(path: path) else { return XCTFail("\(try AuditLog.verify(path: path))") }
        XCTAssertEqual(lines, 20)
        let records = try AuditLog.records(path: path)
        XCTAssertEqual(records.map(\.seq), Array(1...20))
        XCTAssertEqual(records[7].event, event(7))
    }

    /// Many threads, each with its own AuditLog instance (own descriptors, so flock is what
    /// serializes them, as between two processes), keep one valid chain with no lost line.
    func testConcurrentAppendersKeepOneChain() throws {
        let logs = try (0..<4).map { _ in try AuditLog(path: path) }
        DispatchQueue.concurrentPerform(iterations: 200) { i in
            try! logs[i % logs.count].append(makeEvent(i))
        }
        guard case .intact(let lines, _) = try AuditLog.verify(path: path) else { return XCTFail("\(try AuditLog.verify(path: path))") }
        XCTAssertEqual(lines, 200)
        XCTAssertEqual(Set(try AuditLog.records(path: path).compactMap { $0.event.details["n"] }).count, 200)
    }

    func testTornTailIsKeptVisibleAndAppendsContinue() throws {
        let log = try AuditLog(path: path)
        for i in 0..<3 { try log.append(event(i)) }
        let fd = open(path, O_WRONLY | O_APPEND)
        _ = "{\"half".withCString { write(fd, $0, 6) }
        close(fd)
        guard case .broken(let line, let reason) = try AuditLog.verify(path: path) else { return XCTFail() }
        XCTAssertEqual(line, 4)
        XCTAssertTrue(reason.contains("torn"), reason)
        try log.append(event(9))
        // The torn fragment stays in the file as its own line: verify reports it, never hides it.
        guard case .broken(let at, _) = try AuditLog.verify(path: path) else { return XCTFail("torn line vanished") }
        XCTAssertEqual(at, 4)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.contains("{\"half\n"))
        XCTAssertEqual(try AuditLog.records(path: path).last?.seq, 5)
    }

    func testEveryKindOfTamperingIsNamed() throws {
        let log = try AuditLog(path: path)
        for i in 0..<6 { try log.append(event(i)) }
        let original = try String(contentsOfFile: path, encoding: .utf8)
        var lines = original.split(separator: "\n").map(String.init)
        func verify(_ ls: [String]) throws -> AuditVerification {
            try (ls.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
            return try AuditLog.verify(path: path)
        }
        var edited = lines; edited[2] = edited[2].replacingOccurrences(of: "web-2", with: "web-X")
        XCTAssertEqual(try verify(edited), .broken(line: 4, reason: "prev hash does not match line 3 (a line before it was edited, dropped, inserted or reordered)"))
        var dropped = lines; dropped.remove(at: 1)
        guard case .broken(2, _) = try verify(dropped) else { return XCTFail() }
        var swapped = lines; swapped.swapAt(3, 4)
        guard case .broken(4, _) = try verify(swapped) else { return XCTFail() }
        var inserted = lines; inserted.insert(lines[0], at: 3)
        guard case .broken(4, _) = try verify(inserted) else { return XCTFail() }
        lines[5] = "not json"
        guard case .broken(6, "not a valid audit record") = try verify(lines) else { return XCTFail() }
    }
}

extension AuditLogTests {
    /// The hand-written encoder must write exactly the bytes JSONSerialization wrote: verify
    /// re-encodes every line and compares, so logs written before the change must stay intact.
    func testEncoderIsByteIdenticalToJSONSerialization() {
        let awkward = ["", "plain", "with/slash", "quote\"back\\slash", "ctl\u{0}\u{1}\u{7}\u{8}\u{9}\u{a}\u{b}\u{c}\u{d}\u{e}\u{f}\u{10}\u{1b}\u{1f}\u{7f}",
                       "ünïcödé €", "emoji 🔑👩‍💻", "\u{2028}\u{2029}", "{\"json\":[1,2]}", "tab\there", "ssh-ed25519 AAAA+/=="]
        let keySets: [[String]] = [
            [], ["reason"], ["serial", "fingerprint", "context", "issuer", "subject", "principals", "valid_before", "key_id"],
            ["a", "B", "c", "A1", "a10", "a9", "a_b", "ab", "a-b", "a.b", "Z", "z", "_x", "x_", "1", "10", "2", "é", "e", "f"],
            ["valid_after", "validAfter", "valid-after", "VALID", "valid"], ["key", "key2", "key10", "Key1", "kEy3"],
        ]
        var n: UInt64 = 1
        for keys in keySets {
            for (i, value) in awkward.enumerated() {
                var details: [String: String] = [:]
                for (j, k) in keys.enumerated() { details[k] = awkward[(i + j) % awkward.count] }
                let event = AuditEvent(actor: value, action: "certificate.issue", object: awkward[(i + 3) % awkward.count],
                                       outcome: [.success, .refused, .failure][i % 3], details: details)
                let record = AuditRecord(seq: n, time: "2026-12-01T23:00:00.123Z", event: event, previousHash: AuditLog.genesisHash)
                XCTAssertEqual(AuditLog.encode(record), AuditLog.foundationEncode(record), "keys \(keys), value \(value.debugDescription)")
                n = n &* 31 &+ 7
            }
        }
        let big = AuditRecord(seq: UInt64.max, time: "t", event: AuditEvent(actor: "a", action: "b", object: "c", outcome: .success), previousHash: "p")
        XCTAssertEqual(AuditLog.encode(big), AuditLog.foundationEncode(big))
        XCTAssertEqual(AuditLog.hash(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }
}

extension AuditLogTests {
    func testTimestampsAreUTCWithMilliseconds() {
        XCTAssertEqual(AuditLog.timestamp(Date(timeIntervalSince1970: 1_796_166_000.125)), "2026-12-01T23:00:00.125Z")
        XCTAssertEqual(AuditLog.timestamp(Date(timeIntervalSince1970: 0)), "1970-01-01T00:00:00.000Z")
    }
}

final class AuditGroupCommitTests: XCTestCase {
    /// Many threads appending at once: every event is in the log exactly once, the chain verifies,
    /// and each caller got back the record the file holds for its event.
    func testConcurrentAppendsShareWritesAndKeepTheChain() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("group-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AuditLog(path: path)
        let returned = Mutex<[Int: UInt64]>([:])
        DispatchQueue.concurrentPerform(iterations: 400) { i in
            let record = try! log.appendSharingSync(AuditEvent(actor: "t\(i)", action: "test.append", object: "n\(i)", outcome: .success, details: ["i": String(i)]))
            returned.withLock { $0[i] = record.seq }
        }
        let records = try AuditLog.records(path: path)
        XCTAssertEqual(records.count, 400)
        XCTAssertEqual(Set(records.compactMap { $0.event.details["i"] }).count, 400)
        XCTAssertEqual(records.map(\.seq), Array(1...400))
        for record in records { XCTAssertEqual(returned.withLock { $0[Int(record.event.details["i"]!)!] }, record.seq) }
        guard case .intact(400, _) = try AuditLog.verify(path: path) else { return XCTFail("\(try AuditLog.verify(path: path))") }
    }
}
