import Approvals
import Foundation
import XCTest

/// The agent-facing answer: exit 75, one sentence, and `gatehouse-approval: {json}`.
final class ApprovalAnswerTests: XCTestCase {
    func testThePendingAnswerIsOneSentenceAndASortedSnakeCaseJSONLine() throws {
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: AuditCollector().sink)
        let record = try store.request(restartNginx, requester: alice, rule: restartRule).record
        let answer = ApprovalAnswer(record, now: store.now())
        XCTAssertEqual(ApprovalAnswer.exitStatus, 75)
        let lines = answer.message(waitCommand: "ssh gatehouse@bastion -- approval wait").split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[0].hasPrefix("gatehouse: approval required:"), lines[0])
        XCTAssertTrue(lines[0].contains("ssh gatehouse@bastion -- approval wait \(record.id)"))
        XCTAssertTrue(lines[1].hasPrefix("gatehouse-approval: {"))
        let json = String(lines[1].dropFirst("gatehouse-approval: ".count))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["approval_id"] as? String, record.id)
        XCTAssertEqual(object["status"] as? String, "pending")
        XCTAssertEqual(object["next"] as? String, "wait")
        XCTAssertEqual(object["retry_after"] as? Int, 5)
        XCTAssertEqual(object["target"] as? String, "web-01")
        XCTAssertEqual(object["command"] as? String, "systemctl restart nginx")
        XCTAssertEqual(object["expires"] as? String, ApprovalTime.iso(record.expiresAt))
        // Exactly the bytes JSONSerialization writes with sorted keys.
        let reference = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        XCTAssertEqual(json, String(decoding: reference, as: UTF8.self))
    }

    func testNextFollowsTheStatus() throws {
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: AuditCollector().sink)
        let approved = try store.request(restartNginx, requester: alice, rule: restartRule).record.id
        _ = try store.decide(approved, approve: true, by: bob, reason: "")
        var answer = ApprovalAnswer(try XCTUnwrap(store.get(approved)), now: store.now())
        XCTAssertEqual(answer.next, .resend)
        XCTAssertEqual(answer.retryAfter, 0)
        XCTAssertTrue(answer.message(waitCommand: "w").hasPrefix("gatehouse: request \(approved) is approved"))
        _ = try store.consume(approved, presenting: restartNginx, session: nil)
        answer = ApprovalAnswer(try XCTUnwrap(store.get(approved)), now: store.now())
        XCTAssertEqual(answer.status, .consumed)
        XCTAssertEqual(answer.next, .stop)
    }
}
