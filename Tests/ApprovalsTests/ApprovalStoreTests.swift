import Approvals
import Audit
import Foundation
import Synchronization
import XCTest

/// The store's rules and its durability, on real files.
final class ApprovalStoreTests: XCTestCase {
    func testApprovalGrantedBeforeARestartIsConsumedOnceAfterIt() throws {
        let directory = try temporaryDirectory(self)
        let audit = AuditCollector()
        var id: String
        do {
            let store = try FileApprovalStore(directory: directory, audit: audit.sink)
            let lookup = try store.request(restartNginx, requester: alice, rule: restartRule)
            XCTAssertTrue(lookup.created)
            id = lookup.record.id
            _ = try store.decide(id, approve: true, by: bob, reason: "change ticket CHG-12")
        }
        // A new instance reads only what reached the disk: as a restarted server would.
        let restarted = try FileApprovalStore(directory: directory, audit: audit.sink)
        let record = try XCTUnwrap(restarted.get(id))
        XCTAssertEqual(record.status(at: restarted.now()), .approved)
        XCTAssertEqual(record.decision?.approver, bob.id)
        XCTAssertEqual(record.decision?.reason, "change ticket CHG-12")
        XCTAssertEqual(record.key, restartNginx)
        XCTAssertEqual(record.requester, alice)
        XCTAssertEqual(record.rule, restartRule)
        let consumed = try restarted.consume(id, presenting: restartNginx, session: "s-1")
        XCTAssertEqual(consumed.storedStatus, .consumed)
        XCTAssertEqual(consumed.consumedBy, "s-1")
        XCTAssertThrowsError(try restarted.consume(id, presenting: restartNginx, session: "s-2")) {
            XCTAssertEqual(($0 as? ApprovalRefusal)?.code, "approval-consumed")
        }
        XCTAssertEqual(audit.actions(id), ["approval.requested", "approval.approved", "approval.consumed", "approval.consume"])
        XCTAssertEqual(audit.events.last?.outcome, .refused)
    }

    func testPendingRequestStaysPendingAcrossARestartAndAResendFindsIt() throws {
        let directory = try temporaryDirectory(self)
        let first = try FileApprovalStore(directory: directory, audit: AuditCollector().sink)
        let id = try first.request(restartNginx, requester: alice, rule: restartRule).record.id
        let restarted = try FileApprovalStore(directory: directory, audit: AuditCollector().sink)
        let again = try restarted.request(restartNginx, requester: alice, rule: restartRule)
        XCTAssertFalse(again.created, "a resend while pending asks nobody twice")
        XCTAssertEqual(again.record.id, id)
        XCTAssertEqual(again.record.status(at: restarted.now()), .pending)
    }

    func testTheRequesterCannotApproveItsOwnRequest() throws {
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: AuditCollector().sink)
        let id = try store.request(restartNginx, requester: alice, rule: restartRule).record.id
        // Even listed (by group) and even through an alias: the same person never decides.
        for approver in [ApproverIdentity(id: alice.keyID, groups: ["sre"]),
                         ApproverIdentity(id: "local:alice", groups: ["sre"], aliases: [alice.keyID])] {
            XCTAssertThrowsError(try store.decide(id, approve: true, by: approver, reason: "")) {
                XCTAssertEqual(($0 as? ApprovalRefusal)?.code, "approval-self-approval")
                XCTAssertEqual(($0 as? ApprovalRefusal)?.refusal.rule, "four_eyes")
            }
        }
        XCTAssertEqual(try store.get(id)?.status(at: store.now()), .pending)
    }

    func testAnApproverOutsideTheScopesApproversIsRefused() throws {
        let audit = AuditCollector()
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: audit.sink)
        let id = try store.request(restartNginx, requester: alice, rule: ApprovalRule(scope: "web-ops", pattern: "systemctl restart *",
                                                                                      approvers: ["sre", "oidc:*:carol"])).record.id
        XCTAssertThrowsError(try store.decide(id, approve: true, by: ApproverIdentity(id: "oidc:x:mallory", groups: ["dev"]), reason: "")) {
            XCTAssertEqual(($0 as? ApprovalRefusal)?.code, "approval-approver-not-listed")
        }
        let refused = try XCTUnwrap(audit.events.last)
        XCTAssertEqual(refused.action, "approval.decide")
        XCTAssertEqual(refused.outcome, .refused)
        XCTAssertEqual(refused.actor, "oidc:x:mallory")
        XCTAssertEqual(refused.details["code"], "approval-approver-not-listed")
        // By key-id glob, and by group.
        XCTAssertEqual(try store.decide(id, approve: true, by: ApproverIdentity(id: "oidc:x:carol"), reason: "ok").storedStatus, .approved)
        let second = try store.request(ApprovalRequestKey(command: "systemctl restart redis", target: "web-01", login: "deploy", requester: alice),
                                       requester: alice, rule: restartRule).record.id
        XCTAssertEqual(try store.decide(second, approve: true, by: bob, reason: "").decision?.approverGroups, ["sre"])
    }

    func testADenialNeedsAReasonAndIsFinal() throws {
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: AuditCollector().sink)
        let id = try store.request(restartNginx, requester: alice, rule: restartRule).record.id
        XCTAssertThrowsError(try store.decide(id, approve: false, by: bob, reason: "  ")) {
            XCTAssertEqual(($0 as? ApprovalRefusal)?.code, "approval-reason-required")
        }
        _ = try store.decide(id, approve: false, by: bob, reason: "not during the sale")
        XCTAssertThrowsError(try store.decide(id, approve: true, by: bob, reason: "")) {
            XCTAssertEqual(($0 as? ApprovalRefusal)?.code, "approval-already-decided")
        }
        XCTAssertThrowsError(try store.consume(id, presenting: restartNginx, session: nil)) {
            XCTAssertEqual(($0 as? ApprovalRefusal)?.code, "approval-denied")
            XCTAssertTrue(($0 as? ApprovalRefusal)?.description.contains("not during the sale") ?? false)
        }
    }

    func testAnApprovalExpiresAfterItsTTLAndAPendingRequestAfterItsOwn() throws {
        let clock = TestClock()
        let audit = AuditCollector()
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: audit.sink, clock: clock.function)
        let rule = ApprovalRule(scope: "web-ops", pattern: "systemctl restart *", approvers: ["sre"], approvalTTL: 900, requestTTL: 3600)
        let id = try store.request(restartNginx, requester: alice, rule: rule).record.id
        clock.advance(600)
        let approved = try store.decide(id, approve: true, by: bob, reason: "")
        XCTAssertEqual(approved.expiresAt, clock.now.addingTimeInterval(900), "usable for approval_ttl after the decision")
        clock.advance(899)
        XCTAssertEqual(try store.get(id)?.status(at: clock.now), .approved)
        clock.advance(1)
        XCTAssertEqual(try store.get(id)?.status(at: clock.now), .expired, "expired as soon as the clock passes, before anyone writes it down")
        XCTAssertThrowsError(try store.consume(id, presenting: restartNginx, session: nil)) {
            XCTAssertEqual(($0 as? ApprovalRefusal)?.code, "approval-expired")
        }
        XCTAssertEqual(audit.actions(id), ["approval.requested", "approval.approved", "approval.expired", "approval.consume"])

        // A request nobody decides expires after request_ttl; expireDue writes it down once.
        let other = ApprovalRequestKey(command: "systemctl restart redis", target: "web-01", login: "deploy", requester: alice)
        let pending = try store.request(other, requester: alice, rule: rule).record.id
        clock.advance(3599)
        XCTAssertEqual(try store.expireDue().map(\.id), [])
        clock.advance(1)
        XCTAssertEqual(try store.expireDue().map(\.id), [pending])
        XCTAssertEqual(try store.expireDue().map(\.id), [])
        XCTAssertThrowsError(try store.decide(pending, approve: true, by: bob, reason: "")) {
            XCTAssertEqual(($0 as? ApprovalRefusal)?.code, "approval-expired")
        }
    }

    func testAResendDifferingInOneByteTargetLoginOrIdentityDoesNotMatch() throws {
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: AuditCollector().sink)
        let id = try store.request(restartNginx, requester: alice, rule: restartRule).record.id
        _ = try store.decide(id, approve: true, by: bob, reason: "")
        let otherCertificateNoTask = ApprovalRequester(keyID: alice.keyID, serial: 9, taskID: nil)
        let cases: [(ApprovalRequestKey, String)] = [
            (ApprovalRequestKey(command: "systemctl restart nginy", target: "web-01", login: "deploy", requester: alice), "approval-command-mismatch"),
            (ApprovalRequestKey(command: "systemctl restart nginx ", target: "web-01", login: "deploy", requester: alice), "approval-command-mismatch"),
            (ApprovalRequestKey(command: "systemctl restart nginx", target: "web-02", login: "deploy", requester: alice), "approval-target-mismatch"),
            (ApprovalRequestKey(command: "systemctl restart nginx", target: "web-01", login: "root", requester: alice), "approval-login-mismatch"),
            (ApprovalRequestKey(command: "systemctl restart nginx", target: "web-01", login: "deploy", requester: otherCertificateNoTask), "approval-identity-mismatch"),
            (ApprovalRequestKey(command: "systemctl restart nginx", target: "web-01", login: "deploy",
                                requester: ApprovalRequester(keyID: "oidc:https://id.example:mallory", serial: 4242, taskID: "task-7")), "approval-identity-mismatch"),
        ]
        for (key, code) in cases {
            XCTAssertNotEqual(key, restartNginx)
            XCTAssertThrowsError(try store.consume(id, presenting: key, session: nil), "\(key)") { XCTAssertEqual(($0 as? ApprovalRefusal)?.code, code) }
            XCTAssertNotEqual(try store.request(key, requester: alice, rule: restartRule).record.id, id, "another key is another request")
        }
        // No key id or task id can spell another pair's identity.
        XCTAssertNotEqual(ApprovalRequester(keyID: "alice", serial: 5, taskID: "t;serial=5").boundIdentity,
                          ApprovalRequester(keyID: "alice;task_id=t", serial: 5).boundIdentity)
        XCTAssertNotEqual(ApprovalRequester(keyID: "a\" task_id=\"b", serial: 1, taskID: "c").boundIdentity,
                          ApprovalRequester(keyID: "a", serial: 1, taskID: "b\" task_id=\"c").boundIdentity)
        // Canonically equivalent Unicode is still another byte sequence.
        let composed = ApprovalRequestKey(command: "echo \u{e9}", target: "t", login: "l", requester: alice)
        let decomposed = ApprovalRequestKey(command: "echo e\u{301}", target: "t", login: "l", requester: alice)
        XCTAssertNotEqual(composed, decomposed)
        // Another certificate of the same task and key id matches (a renewed certificate).
        let renewed = ApprovalRequestKey(command: "systemctl restart nginx", target: "web-01", login: "deploy",
                                         requester: ApprovalRequester(keyID: alice.keyID, serial: 777, taskID: "task-7"))
        XCTAssertEqual(try store.consume(id, presenting: renewed, session: nil).storedStatus, .consumed)
    }

    func testTheGateReleasesOnceAndAFinishedRequestAnswersResendsForItsTTL() throws {
        let clock = TestClock()
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: AuditCollector().sink, clock: clock.function)
        let notified = NotifiedRecords(), elsewhere = NotifiedRecords()
        let gate = ApprovalGate(store: store, notifier: ScopedNotifiers(byScope: [restartRule.scope: notified], global: elsewhere))
        guard case .pending(let record, created: true) = try gate.admit(restartNginx, requester: alice, rule: restartRule, session: "s1") else {
            return XCTFail("a review command starts pending")
        }
        guard case .pending(_, created: false) = try gate.admit(restartNginx, requester: alice, rule: restartRule, session: "s2") else {
            return XCTFail("a resend while pending is the same request")
        }
        XCTAssertEqual(notified.ids, [record.id], "notified once, by the scope's own notifier")
        XCTAssertEqual(elsewhere.ids, [])
        _ = try store.decide(record.id, approve: true, by: bob, reason: "")
        guard case .release = try gate.admit(restartNginx, requester: alice, rule: restartRule, session: "s3") else { return XCTFail("approved: released") }
        guard case .refused(let refusal, _) = try gate.admit(restartNginx, requester: alice, rule: restartRule, session: "s4") else {
            return XCTFail("a second run is refused")
        }
        XCTAssertEqual(refusal.code, "approval-consumed")
        clock.advance(restartRule.approvalTTL)
        guard case .pending(let fresh, created: true) = try gate.admit(restartNginx, requester: alice, rule: restartRule, session: "s5") else {
            return XCTFail("after approval_ttl the same command is a new request")
        }
        XCTAssertNotEqual(fresh.id, record.id)
    }

    func testEveryTransitionReachesARealAuditLogWithApproverAndReason() throws {
        let directory = try temporaryDirectory(self)
        let log = try AuditLog(path: directory + "/audit.log")
        let store = try FileApprovalStore(stateDirectory: directory, audit: { try log.append(contentsOf: $0) })
        let id = try store.request(restartNginx, requester: alice, rule: restartRule).record.id
        _ = try store.decide(id, approve: true, by: bob, reason: "CHG-12")
        _ = try store.consume(id, presenting: restartNginx, session: "s-9")
        let records = try AuditLog.records(path: directory + "/audit.log")
        XCTAssertEqual(records.map(\.event.action), ["approval.requested", "approval.approved", "approval.consumed"])
        XCTAssertEqual(records[1].event.actor, bob.id)
        XCTAssertEqual(records[1].event.details["approver"], bob.id)
        XCTAssertEqual(records[1].event.details["reason"], "CHG-12")
        XCTAssertEqual(records[2].event.details["session"], "s-9")
        XCTAssertEqual(records[0].event.details["command_sha256"], restartNginx.commandSHA256)
        XCTAssertEqual(records[0].event.details["task_id"], "task-7")
        guard case .intact(lines: 3, _) = try AuditLog.verify(path: directory + "/audit.log") else { return XCTFail("chain intact") }
    }

    func testAStateFileLeftByACrashedWriterIsIgnoredAndADamagedOneIsReported() throws {
        let directory = try temporaryDirectory(self)
        let store = try FileApprovalStore(directory: directory, audit: AuditCollector().sink)
        let id = try store.request(restartNginx, requester: alice, rule: restartRule).record.id
        // A crash between writing the temporary file and the rename leaves the old state.
        try Data("{\"approvals\":[{\"torn".utf8).write(to: URL(fileURLWithPath: directory + "/approvals.json.tmp-1-2"))
        XCTAssertEqual(try FileApprovalStore(directory: directory, audit: AuditCollector().sink).get(id)?.id, id)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory + "/approvals.json.tmp-1-2"), "the orphan is removed on open")
        try Data("{\"approvals\":[{\"torn".utf8).write(to: URL(fileURLWithPath: directory + "/approvals.json"))
        XCTAssertThrowsError(try FileApprovalStore(directory: directory, audit: AuditCollector().sink)) {
            XCTAssertTrue("\($0)".contains("damaged"), "\($0)")
        }
    }
}

/// A notifier that remembers what it was told.
final class NotifiedRecords: ApprovalNotifier {
    private let told = Mutex<[String]>([])
    var ids: [String] { told.withLock { $0 } }
    func requested(_ record: ApprovalRecord) { told.withLock { $0.append(record.id) } }
}
