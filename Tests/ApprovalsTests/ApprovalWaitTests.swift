import Approvals
import Audit
import Foundation
import XCTest

/// Bounded waits, and how soon a decision reaches the waiter: same process, another store
/// instance, and a real second process (`gatehouse approvals approve`).
final class ApprovalWaitTests: XCTestCase {
    func testTimeoutsAreClampedAndAPendingWaitAnswersAtItsTimeout() async throws {
        XCTAssertEqual(ApprovalWaiter.clamp(nil), 50)
        XCTAssertEqual(ApprovalWaiter.clamp(-3), 0)
        XCTAssertEqual(ApprovalWaiter.clamp(10_000), 300)
        XCTAssertEqual(ApprovalWaiter.clamp(.infinity), 50)
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: AuditCollector().sink)
        let id = try store.request(restartNginx, requester: alice, rule: restartRule).record.id
        let started = Date()
        let answer = try await ApprovalWaiter(store: store).wait(for: id, timeout: 0.5)
        let waited = Date().timeIntervalSince(started)
        XCTAssertEqual(answer.status, .pending)
        XCTAssertEqual(answer.next, .wait)
        XCTAssertEqual(answer.retryAfter, 5)
        XCTAssertGreaterThanOrEqual(waited, 0.45)
        XCTAssertLessThan(waited, 1.5)
        do {
            _ = try await ApprovalWaiter(store: store).wait(for: "apr-nosuchrequest", timeout: 1)
            XCTFail("unknown id")
        } catch { XCTAssertEqual((error as? ApprovalRefusal)?.code, "approval-not-found") }
        // Waiting as another identity learns nothing of this request; as the requester, its status.
        do {
            _ = try await ApprovalWaiter(store: store).wait(for: id, as: ApprovalRequester(keyID: "oidc:x:mallory", serial: 1, taskID: "task-7"), timeout: 1)
            XCTFail("another identity's request")
        } catch { XCTAssertEqual((error as? ApprovalRefusal)?.code, "approval-not-found") }
        let own = try await ApprovalWaiter(store: store).wait(for: id, as: alice, timeout: 0)
        XCTAssertEqual(own.status, .pending)
    }

    func testADenialReachesTheWaiterWithItsReasonAndNextStop() async throws {
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: AuditCollector().sink)
        let id = try store.request(restartNginx, requester: alice, rule: restartRule).record.id
        let (answer, latency) = try await answerToDecision(waitingOn: store, id) {
            try store.decide(id, approve: false, by: bob, reason: "not during the sale")
        }
        XCTAssertEqual(answer.status, .denied)
        XCTAssertEqual(answer.next, .stop)
        XCTAssertEqual(answer.reason, "not during the sale")
        XCTAssertEqual(answer.decidedBy, bob.id)
        XCTAssertTrue(answer.json.contains("\"next\":\"stop\""))
        XCTAssertLessThan(latency, 0.1, "in-process decisions wake the waiter at once")
        print("decision→waiter, same store: \(Int(latency * 1000)) ms")
    }

    func testAWaitAnswersWhenTheRequestExpires() async throws {
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: AuditCollector().sink)
        let rule = ApprovalRule(scope: "s", pattern: "p", requestTTL: 0.4)
        let id = try store.request(restartNginx, requester: alice, rule: rule).record.id
        let started = Date()
        let answer = try await ApprovalWaiter(store: store).wait(for: id, timeout: 10)
        XCTAssertEqual(answer.status, .expired)
        XCTAssertEqual(answer.next, .stop)
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
    }

    func testADecisionThroughAnotherStoreInstanceReachesTheWaiterWithinThePollInterval() async throws {
        let directory = try temporaryDirectory(self)
        let serving = try FileApprovalStore(directory: directory, audit: AuditCollector().sink)
        let deciding = try FileApprovalStore(directory: directory, audit: AuditCollector().sink)
        let id = try serving.request(restartNginx, requester: alice, rule: restartRule).record.id
        let (answer, latency) = try await answerToDecision(waitingOn: serving, id) { try deciding.decide(id, approve: true, by: bob, reason: "") }
        XCTAssertEqual(answer.next, .resend)
        XCTAssertLessThan(latency, 1)
        print("decision→waiter, another store instance: \(Int(latency * 1000)) ms")
    }

    /// The real thing: the waiter in this process, the decision by the `gatehouse` binary in
    /// another one, on the state directory both use. Latency is from the decision time the
    /// CLI wrote into the store to the waiter's answer.
    func testADecisionByTheCLIInAnotherProcessReachesTheWaiter() async throws {
        guard FileManager.default.isExecutableFile(atPath: gatehouseBinary) else { throw XCTSkip("\(gatehouseBinary) not built") }
        let state = try temporaryDirectory(self)
        let log = try AuditLog(path: state + "/audit.log")
        let store = try FileApprovalStore(stateDirectory: state, audit: { try log.append(contentsOf: $0) })
        var latencies: [Double] = []
        for round in 0..<9 {
            let key = ApprovalRequestKey(command: "systemctl restart nginx-\(round)", target: "web-01", login: "deploy", requester: alice)
            let id = try store.request(key, requester: alice, rule: restartRule).record.id
            let waiting = Task { try await ApprovalWaiter(store: store).wait(for: id, timeout: 30) }
            // A random phase against the waiter's 200 ms poll, so the figures are not one phase's.
            try await Task.sleep(for: .milliseconds(Int.random(in: 250...650)))
            let cli = try await runOffThePool(gatehouseBinary, ["approvals", "approve", "--state", state, "--approver", "local:operator", "--reason", "round \(round)", id])
            XCTAssertEqual(cli.status, 0, cli.err)
            let answer = try await waiting.value
            let answeredAt = Date()
            XCTAssertEqual(answer.status, .approved)
            XCTAssertEqual(answer.next, .resend)
            XCTAssertEqual(answer.decidedBy, "local:operator")
            let decidedAt = try XCTUnwrap(try store.get(id)?.decision?.at)
            latencies.append(answeredAt.timeIntervalSince(decidedAt))
            XCTAssertEqual(try store.consume(id, presenting: key, session: nil).storedStatus, .consumed)
        }
        XCTAssertLessThan(latencies.max() ?? 99, 2, "\(latencies)")
        let sorted = latencies.sorted()
        print("decision→waiter, gatehouse approvals approve in another process (ms): \(sorted.map { Int($0 * 1000) }), median \(Int(sorted[4] * 1000))")
        // The CLI audited into the same chain the test's store writes to.
        let actions = try AuditLog.records(path: state + "/audit.log").map(\.event.action)
        XCTAssertEqual(actions.filter { $0 == "approval.approved" }.count, 9)
        guard case .intact = try AuditLog.verify(path: state + "/audit.log") else { return XCTFail("chain intact") }
    }

    /// Starts a waiter on `id`, lets it settle into waiting, decides with `decide`, and returns
    /// the waiter's answer with the time from the decision to it.
    private func answerToDecision(waitingOn store: FileApprovalStore, _ id: String,
                                  _ decide: () throws -> ApprovalRecord) async throws -> (ApprovalAnswer, TimeInterval) {
        let waiting = Task { try await ApprovalWaiter(store: store).wait(for: id, timeout: 20) }
        try await Task.sleep(for: .milliseconds(300))
        let decided = try decide()
        let answer = try await waiting.value
        return (answer, Date().timeIntervalSince(try XCTUnwrap(decided.decision).at))
    }
}
