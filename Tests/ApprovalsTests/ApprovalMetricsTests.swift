import Approvals
import Foundation
import MetricsTestKit
import XCTest

final class ApprovalMetricsTests: XCTestCase {
    func testOutcomesAreCountedAndTimeToDecisionRecorded() throws {
        let factory = TestMetrics()
        let clock = TestClock()
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: AuditCollector().sink,
                                          metrics: ApprovalMetrics(factory: factory), clock: clock.function)
        let first = try store.request(restartNginx, requester: alice, rule: restartRule).record.id
        clock.advance(42)
        _ = try store.decide(first, approve: true, by: bob, reason: "")
        _ = try store.consume(first, presenting: restartNginx, session: nil)
        _ = try? store.consume(first, presenting: restartNginx, session: nil)
        let other = ApprovalRequestKey(command: "systemctl restart redis", target: "web-01", login: "deploy", requester: alice)
        let second = try store.request(other, requester: alice, rule: restartRule).record.id
        clock.advance(7)
        _ = try store.decide(second, approve: false, by: bob, reason: "no")
        for (outcome, count): (String, Int64) in [("requested", 2), ("approved", 1), ("denied", 1), ("consumed", 1), ("refused", 1), ("expired", 0)] {
            XCTAssertEqual(try factory.expectCounter("gatehouse_approvals_total", [("outcome", outcome)]).totalValue, count, outcome)
        }
        XCTAssertEqual(try factory.expectTimer(ApprovalMetrics.decisionSeconds, [("outcome", "approved")]).values, [42_000_000_000])
        XCTAssertEqual(try factory.expectTimer(ApprovalMetrics.decisionSeconds, [("outcome", "denied")]).values, [7_000_000_000])
    }
}
