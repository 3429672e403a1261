import Approvals
import Audit
import Foundation
import Synchronization
import XCTest
@_exported import ProcessSupport

/// A fresh directory under /tmp, removed by the test's teardown.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let path = NSTemporaryDirectory() + "approvals-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

/// Collects what the store audits, as the audit log would receive it.
final class AuditCollector: Sendable {
    private let collected = Mutex<[AuditEvent]>([])
    var events: [AuditEvent] { collected.withLock { $0 } }
    var sink: ApprovalAuditSink { { events in self.collected.withLock { $0 += events } } }
    func actions(_ id: String) -> [String] { events.filter { $0.object == id }.map(\.action) }
}

/// A clock the test moves by hand.
final class TestClock: Sendable {
    private let current = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    var now: Date { current.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }
    var function: @Sendable () -> Date { { self.now } }
}

let alice = ApprovalRequester(keyID: "oidc:https://id.example:alice", serial: 4242, taskID: "task-7", promptSHA256: String(repeating: "ab", count: 32))
let bob = ApproverIdentity(id: "oidc:https://id.example:bob", groups: ["sre"])
let restartRule = ApprovalRule(scope: "web-ops", pattern: "systemctl restart *", approvers: ["sre", "local:*"])
let restartNginx = ApprovalRequestKey(command: "systemctl restart nginx", target: "web-01", login: "deploy", requester: alice)

/// The `gatehouse` executable SwiftPM built next to this test bundle.
var gatehouseBinary: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/gatehouse").path
}

/// Runs `body` on `count` threads released together, and returns what each returned.
func onThreads<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
    let results = Mutex<[T]>([])
    let start = DispatchSemaphore(value: 0)
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        Thread.detachNewThread {
            start.wait()
            let result = body(index)
            results.withLock { $0.append(result) }
            group.leave()
        }
    }
    for _ in 0..<count { start.signal() }
    group.wait()
    return results.withLock { $0 }
}

/// `runBinary` on a thread of its own: it blocks while the child runs, and the waiters under
/// test need the (two-thread) concurrency pool meanwhile.
func runOffThePool(_ executable: String, _ arguments: [String]) async throws -> CLIResult {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread {
            do {
                let result = try runBinary(executable, arguments)
                continuation.resume(returning: CLIResult(status: result.status, out: result.out, err: result.err))
            } catch { continuation.resume(throwing: error) }
        }
    }
}

struct CLIResult: Sendable {
    let status: Int32
    let out: String
    let err: String
}
