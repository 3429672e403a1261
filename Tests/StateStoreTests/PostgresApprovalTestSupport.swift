import Approvals
import Audit
import Foundation
import Logging
import Synchronization
import XCTest
@testable import StateStore

/// What the approval tests share: the people and the command of the file store's tests, an
/// audit sink that records (or fails on demand), a hand-moved clock, and racing threads.
enum Approvers {
    static let agent = ApprovalRequester(keyID: "oidc:https://id.example:alice", serial: 4242, taskID: "task-7", promptSHA256: String(repeating: "ab", count: 32))
    static let bob = ApproverIdentity(id: "oidc:https://id.example:bob", groups: ["sre"])
    static let rule = ApprovalRule(scope: "web-ops", pattern: "systemctl restart *", approvers: ["sre", "local:*"])
    static let restart = ApprovalRequestKey(command: "systemctl restart nginx", target: "web-01", login: "deploy", requester: agent)

    static func key(_ command: String) -> ApprovalRequestKey {
        ApprovalRequestKey(command: command, target: "web-01", login: "deploy", requester: agent)
    }
}

/// The events a store audited, in order; `failing` makes the sink throw (nothing recorded).
final class RecordingSink: Sendable {
    struct Refused: Error, CustomStringConvertible { var description: String { "the audit log refused the append" } }
    private let state = Mutex((events: [AuditEvent](), failing: false))
    var events: [AuditEvent] { state.withLock { $0.events } }
    func fail(_ failing: Bool) { state.withLock { $0.failing = failing } }
    func actions(_ id: String) -> [String] { events.filter { $0.object == id }.map(\.action) }
    var sink: ApprovalAuditSink {
        { events in
            try self.state.withLock { state in
                if state.failing { throw Refused() }
                state.events += events
            }
        }
    }
}

/// A clock moved by hand, shared by stores that must agree on time.
final class ManualClock: Sendable {
    private let current = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    func advance(_ seconds: TimeInterval) { current.withLock { $0 += seconds } }
    var function: @Sendable () -> Date { { self.current.withLock { $0 } } }
}

/// `count` threads released at once; what each returned.
func race<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
    let results = Mutex<[T]>([])
    let gate = DispatchSemaphore(value: 0)
    let done = DispatchGroup()
    for index in 0..<count {
        done.enter()
        Thread.detachNewThread {
            gate.wait()
            let value = body(index)
            results.withLock { $0.append(value) }
            done.leave()
        }
    }
    for _ in 0..<count { gate.signal() }
    done.wait()
    return results.withLock { $0 }
}

/// The refusal code of what `body` threw ("none" when it threw nothing).
func refusalCode<T>(_ body: () throws -> T) -> String {
    do { _ = try body(); return "none" } catch { return (error as? ApprovalRefusal)?.code ?? "\(error)" }
}

extension PostgresTestCase {
    /// An approval store on `database`, stopped and closed by the test's teardown.
    func approvalStore(_ database: String, audit: RecordingSink, clock: ManualClock? = nil,
                       pollInterval: Duration = .milliseconds(500)) throws -> PostgresApprovalStore {
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        let store = try PostgresApprovalStore(configuration: try PostgresStoreConfiguration(url: try server.url(database)), audit: audit.sink,
                                              pollInterval: pollInterval, logger: quiet, clock: clock?.function ?? Date.init)
        addTeardownBlock {
            store.stop()
            store.connection.close()
            store.pollConnection.close()
        }
        return store
    }
}
