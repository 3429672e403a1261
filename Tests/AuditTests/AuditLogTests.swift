import Foundation
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
