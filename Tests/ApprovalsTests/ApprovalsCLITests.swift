import Approvals
import Audit
import Foundation
import XCTest

/// `gatehouse approvals` as an operator uses it, against a store this test holds.
final class ApprovalsCLITests: XCTestCase {
    private func gatehouse(_ arguments: [String]) throws -> BinaryResult {
        guard FileManager.default.isExecutableFile(atPath: gatehouseBinary) else { throw XCTSkip("\(gatehouseBinary) not built") }
        return try runBinary(gatehouseBinary, ["approvals"] + arguments)
    }

    func testListShowDenyAndRefusals() throws {
        let state = try temporaryDirectory(self)
        let log = try AuditLog(path: state + "/audit.log")
        let store = try FileApprovalStore(stateDirectory: state, audit: { try log.append(contentsOf: $0) })
        let id = try store.request(restartNginx, requester: alice, rule: restartRule).record.id

        let list = try gatehouse(["list", "--state", state, "--status", "pending"])
        XCTAssertEqual(list.status, 0, list.err)
        XCTAssertTrue(list.out.contains(id) && list.out.contains("deploy@web-01") && list.out.contains("task-7"), list.out)

        let show = try gatehouse(["show", "--state", state, id])
        XCTAssertEqual(show.status, 0, show.err)
        for expected in [alice.keyID, "serial 4242", "task-7", "web-01", "deploy", "\"systemctl restart nginx\"", "scope web-ops",
                         "\"systemctl restart *\"", "sre, local:*", "pending"] {
            XCTAssertTrue(show.out.contains(expected), "show lacks \(expected):\n\(show.out)")
        }

        // The requester itself, and someone outside the approvers: refused with their codes, exit 77.
        let own = try gatehouse(["approve", "--state", state, "--approver", alice.keyID, "--group", "sre", id])
        XCTAssertEqual(own.status, 77)
        XCTAssertTrue(own.err.contains("approval-self-approval"), own.err)
        let outsider = try gatehouse(["approve", "--state", state, "--approver", "oidc:x:mallory", id])
        XCTAssertEqual(outsider.status, 77)
        XCTAssertTrue(outsider.err.contains("approval-approver-not-listed"), outsider.err)

        let deny = try gatehouse(["deny", "--state", state, "--reason", "use the blue-green switch", id])
        XCTAssertEqual(deny.status, 0, deny.err)
        let record = try XCTUnwrap(store.get(id))
        XCTAssertEqual(record.status(at: store.now()), .denied)
        XCTAssertEqual(record.decision?.reason, "use the blue-green switch")
        XCTAssertEqual(record.decision?.approver, "local:\(ProcessInfo.processInfo.environment["USER"] ?? "uid-\(getuid())")")
        let shown = try gatehouse(["show", "--state", state, id]).out
        XCTAssertTrue(shown.contains("denied by local:") && shown.contains("use the blue-green switch"), shown)

        let json = try gatehouse(["list", "--state", state, "--json"]).out
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["status"] as? String, "denied")

        let events = try AuditLog.records(path: state + "/audit.log").map { "\($0.event.action):\($0.event.outcome.rawValue)" }
        XCTAssertEqual(events, ["approval.requested:success", "approval.decide:refused", "approval.decide:refused", "approval.denied:success"])
    }
}
