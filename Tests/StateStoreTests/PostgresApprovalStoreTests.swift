import Approvals
import Audit
import Foundation
import XCTest
@testable import StateStore

/// The approval store replicas share, on a real PostgreSQL 15: the file store's behaviours
/// (ApprovalsTests) with two stores on one database standing in for two replicas.
final class PostgresApprovalStoreTests: PostgresTestCase {
    typealias A = Approvers

    func database() async throws -> String { try await makeStore().1 }

    func testAResendFindsTheRequestAndAnApprovalIsConsumedOnceByAnotherReplica() async throws {
        let name = try await database()
        let audit = RecordingSink()
        let first = try approvalStore(name, audit: audit)
        let lookup = try first.request(A.restart, requester: A.agent, rule: A.rule)
        XCTAssertTrue(lookup.created)
        let id = lookup.record.id
        let second = try approvalStore(name, audit: audit)
        let resend = try second.request(A.restart, requester: A.agent, rule: A.rule)
        XCTAssertFalse(resend.created, "a resend while pending, on any replica, asks nobody twice")
        XCTAssertEqual(resend.record, lookup.record)
        _ = try first.decide(id, approve: true, by: A.bob, reason: "change ticket CHG-12")

        let record = try XCTUnwrap(second.get(id))
        XCTAssertEqual(record.status(at: second.now()), .approved)
        XCTAssertEqual(record.decision?.reason, "change ticket CHG-12")
        XCTAssertEqual(record.key, A.restart)
        XCTAssertEqual(record.requester, A.agent)
        XCTAssertEqual(record.rule, A.rule)
        XCTAssertEqual(try second.consume(id, presenting: A.restart, session: "s-1").consumedBy, "s-1")
        XCTAssertEqual(refusalCode { try first.consume(id, presenting: A.restart, session: "s-2") }, "approval-consumed")
        XCTAssertEqual(audit.actions(id), ["approval.requested", "approval.approved", "approval.consumed", "approval.consume"])
        XCTAssertEqual(audit.events.last?.outcome, .refused)
        XCTAssertEqual(try first.list().map(\.id), [id])
        XCTAssertEqual(try first.get("apr-unknown"), nil)
    }

    func testDecisionRulesSelfApprovalUnlistedApproverAndDenialReason() async throws {
        let audit = RecordingSink()
        let store = try approvalStore(try await database(), audit: audit)
        let id = try store.request(A.restart, requester: A.agent, rule: A.rule).record.id
        for approver in [ApproverIdentity(id: A.agent.keyID, groups: ["sre"]),
                         ApproverIdentity(id: "local:alice", groups: ["sre"], aliases: [A.agent.keyID])] {
            XCTAssertEqual(refusalCode { try store.decide(id, approve: true, by: approver, reason: "") }, "approval-self-approval")
        }
        XCTAssertEqual(refusalCode { try store.decide(id, approve: true, by: ApproverIdentity(id: "oidc:x:mallory", groups: ["dev"]), reason: "") },
                       "approval-approver-not-listed")
        let refused = try XCTUnwrap(audit.events.last)
        XCTAssertEqual(refused.action, "approval.decide")
        XCTAssertEqual(refused.outcome, .refused)
        XCTAssertEqual(refused.actor, "oidc:x:mallory")
        XCTAssertEqual(try store.get(id)?.status(at: store.now()), .pending, "no refusal changes the request")

        XCTAssertEqual(refusalCode { try store.decide(id, approve: false, by: A.bob, reason: "  ") }, "approval-reason-required")
        XCTAssertEqual(try store.decide(id, approve: false, by: A.bob, reason: "not during the sale").storedStatus, .denied)
        XCTAssertEqual(refusalCode { try store.decide(id, approve: true, by: A.bob, reason: "") }, "approval-already-decided")
        XCTAssertEqual(refusalCode { try store.consume(id, presenting: A.restart, session: nil) }, "approval-denied")
        XCTAssertEqual(refusalCode { try store.decide("apr-nothere", approve: true, by: A.bob, reason: "") }, "approval-not-found")
        XCTAssertEqual(audit.events.last?.action, "approval.decide", "a refusal for an unknown id is audited too")
    }

    func testTwoStoresConsumingFromManyThreadsReleaseExactlyOnce() async throws {
        let name = try await database()
        let audit = RecordingSink()
        let stores = [try approvalStore(name, audit: audit), try approvalStore(name, audit: audit)]
        for round in 0..<12 {
            let key = ApprovalRequestKey(command: "systemctl restart nginx", target: "web-01", login: "deploy",
                                         requester: ApprovalRequester(keyID: A.agent.keyID, serial: UInt64(round) + 1))
            let id = try stores[round % 2].request(key, requester: A.agent, rule: A.rule).record.id
            _ = try stores[(round + 1) % 2].decide(id, approve: true, by: A.bob, reason: "")
            let outcomes = race(8) { index in refusalCode { try stores[index % 2].consume(id, presenting: key, session: "s\(index)") } }
            XCTAssertEqual(outcomes.filter { $0 == "none" }.count, 1, "round \(round): \(outcomes)")
            XCTAssertEqual(Set(outcomes.filter { $0 != "none" }), ["approval-consumed"], "round \(round)")
            XCTAssertEqual(audit.actions(id).filter { $0 == "approval.consumed" }.count, 1)
        }
        // Concurrent first requests for one key, on both stores: one request.
        let lookups = race(10) { index in try? stores[index % 2].request(A.key("systemctl restart redis"), requester: A.agent, rule: A.rule) }
        XCTAssertEqual(Set(lookups.compactMap { $0?.record.id }).count, 1)
        XCTAssertEqual(lookups.filter { $0?.created == true }.count, 1)
        XCTAssertEqual(try stores[0].list().map(\.id), try stores[1].list().map(\.id))
        XCTAssertEqual(try stores[0].list().count, 13)
    }

    func testExpiryIsRecordedAndAuditedOnceAcrossStores() async throws {
        let name = try await database()
        let clock = ManualClock()
        let (auditA, auditB) = (RecordingSink(), RecordingSink())
        let a = try approvalStore(name, audit: auditA, clock: clock)
        let b = try approvalStore(name, audit: auditB, clock: clock)
        // The approval (decided at 600 s, usable for 3000 s) and the pending request (3600 s)
        // fall due together.
        let rule = ApprovalRule(scope: "web-ops", pattern: "systemctl restart *", approvers: ["sre"], approvalTTL: 3000, requestTTL: 3600)
        let approved = try a.request(A.restart, requester: A.agent, rule: rule).record.id
        let pending = try a.request(A.key("systemctl restart redis"), requester: A.agent, rule: rule).record.id
        clock.advance(600)
        XCTAssertEqual(try b.decide(approved, approve: true, by: A.bob, reason: "").expiresAt, b.now().addingTimeInterval(3000))
        clock.advance(2999)
        XCTAssertEqual(try a.expireDue().map(\.id), [])
        clock.advance(1)
        XCTAssertEqual(try b.get(approved)?.status(at: b.now()), .expired, "expired by the clock before anyone writes it down")
        let expired = race(4) { index in (try? (index % 2 == 0 ? a : b).expireDue().map(\.id)) ?? ["failed"] }
        XCTAssertEqual(expired.flatMap { $0 }.sorted(), [approved, pending].sorted(), "each expiry written down by one store")
        let audited = (auditA.events + auditB.events).filter { $0.action == "approval.expired" }.map(\.object)
        XCTAssertEqual(audited.sorted(), [approved, pending].sorted(), "audited once each")
        XCTAssertEqual(refusalCode { try a.consume(approved, presenting: A.restart, session: nil) }, "approval-expired")
        XCTAssertEqual(try a.expireDue().map(\.id), [])
    }

    func testAFailingAuditLeavesNoTransition() async throws {
        let name = try await database()
        let clock = ManualClock()
        let audit = RecordingSink()
        let store = try approvalStore(name, audit: audit, clock: clock)
        let id = try store.request(A.restart, requester: A.agent, rule: A.rule).record.id
        audit.fail(true)
        XCTAssertThrowsError(try store.decide(id, approve: true, by: A.bob, reason: "")) { XCTAssertTrue($0 is RecordingSink.Refused, "\($0)") }
        XCTAssertEqual(try store.get(id)?.storedStatus, .pending, "the decision was rolled back")
        XCTAssertThrowsError(try store.request(A.key("uptime"), requester: A.agent, rule: A.rule)) { XCTAssertTrue($0 is RecordingSink.Refused, "\($0)") }
        XCTAssertEqual(try store.list().map(\.id), [id], "no request without its audit record")
        clock.advance(A.rule.requestTTL)
        XCTAssertThrowsError(try store.expireDue())
        XCTAssertEqual(try store.get(id)?.storedStatus, .pending, "nor an expiry")
        audit.fail(false)
        XCTAssertEqual(try store.expireDue().map(\.id), [id])
        XCTAssertEqual(audit.actions(id), ["approval.requested", "approval.expired"])
    }

    func testADecisionOnOneStoreWakesAWaiterOnAnotherWithinASecond() async throws {
        let name = try await database()
        let a = try approvalStore(name, audit: RecordingSink())
        // A minute between re-reads: only the notification can wake the waiter in time.
        let b = try approvalStore(name, audit: RecordingSink(), pollInterval: .seconds(60))
        b.start()
        let id = try a.request(A.restart, requester: A.agent, rule: A.rule).record.id
        let deadline = Date().addingTimeInterval(10)
        while !b.isListening, Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        XCTAssertTrue(b.isListening)
        try await Task.sleep(for: .milliseconds(100))  // the first re-read has settled
        let token = b.changeToken()
        let start = ContinuousClock.now
        Thread.detachNewThread {
            Thread.sleep(forTimeInterval: 0.2)
            _ = try? a.decide(id, approve: true, by: A.bob, reason: "")
        }
        await b.waitForChange(since: token, upTo: 5)
        let waited = ContinuousClock.now - start
        XCTAssertNotEqual(b.changeToken(), token, "woken by the change, not the timeout")
        XCTAssertLessThan(waited, .seconds(1.2), "0.2 s before the decision, then under a second: \(elapsed(since: start)) s")
        XCTAssertEqual(try b.get(id)?.status(at: b.now()), .approved)
    }

    func testAChangeWithoutANotificationIsSeenByThePeriodicReread() async throws {
        let name = try await database()
        let a = try approvalStore(name, audit: RecordingSink())
        let b = try approvalStore(name, audit: RecordingSink(), pollInterval: .milliseconds(200))
        _ = try a.request(A.restart, requester: A.agent, rule: A.rule)
        b.start()
        try await Task.sleep(for: .milliseconds(500))
        let token = b.changeToken()
        let start = ContinuousClock.now
        // As if the notification were lost: the row changes with no NOTIFY.
        _ = try server.psql(name, "UPDATE approvals SET change = nextval('approval_changes')")
        await b.waitForChange(since: token, upTo: 5)
        XCTAssertNotEqual(b.changeToken(), token)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(1), "\(elapsed(since: start)) s")
    }

    /// The same sequence on the file store and on this one audits the same records, in the
    /// same order (ids aside: each store draws its own).
    func testTheAuditRecordsEqualTheFileStoresForTheSameSequence() async throws {
        let directory = NSTemporaryDirectory() + "approvals-pg-\(UUID().uuidString.prefix(8))"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let (fileAudit, databaseAudit) = (RecordingSink(), RecordingSink())
        let (fileClock, databaseClock) = (ManualClock(), ManualClock())
        let file = try FileApprovalStore(directory: directory, audit: fileAudit.sink, clock: fileClock.function)
        let database = try approvalStore(try await database(), audit: databaseAudit, clock: databaseClock)

        func run(_ store: any ApprovalStore, _ clock: ManualClock) -> [String] {
            var codes: [String] = []
            let rule = ApprovalRule(scope: "web-ops", pattern: "systemctl *", approvers: ["sre"], approvalTTL: 900, requestTTL: 3600)
            guard let id = try? store.request(A.restart, requester: A.agent, rule: rule).record.id,
                  let other = try? store.request(A.key("systemctl stop redis"), requester: A.agent, rule: rule).record.id else { return ["no request"] }
            codes.append(refusalCode { try store.request(A.restart, requester: A.agent, rule: rule) })
            codes.append(refusalCode { try store.decide(id, approve: true, by: ApproverIdentity(id: "oidc:x:mallory"), reason: "") })
            codes.append(refusalCode { try store.decide(id, approve: true, by: A.bob, reason: "CHG-12") })
            codes.append(refusalCode { try store.consume(id, presenting: A.key("systemctl restart nginy"), session: "s-0") })
            codes.append(refusalCode { try store.consume(id, presenting: A.restart, session: "s-1") })
            codes.append(refusalCode { try store.consume(id, presenting: A.restart, session: "s-2") })
            codes.append(refusalCode { try store.consume("apr-nothere", presenting: A.restart, session: nil) })
            clock.advance(3600)
            codes.append(refusalCode { try store.expireDue() })
            codes.append(refusalCode { try store.decide(other, approve: false, by: A.bob, reason: "too late") })
            return codes
        }
        let fileCodes = run(file, fileClock)
        XCTAssertEqual(run(database, databaseClock), fileCodes)
        XCTAssertEqual(normalized(databaseAudit.events), normalized(fileAudit.events))
        XCTAssertEqual(databaseAudit.events.count, 10)
    }

    /// Each approval id replaced by its order of appearance, in objects and in details.
    private func normalized(_ events: [AuditEvent]) -> [AuditEvent] {
        var names: [String: String] = [:]
        for event in events where event.object.hasPrefix("apr-") && event.object != "apr-nothere" && names[event.object] == nil {
            names[event.object] = "#\(names.count)"
        }
        func rename(_ text: String) -> String { names.reduce(text) { $0.replacingOccurrences(of: $1.key, with: $1.value) } }
        return events.map { event in
            var copy = event
            copy.object = rename(event.object)
            copy.details = event.details.mapValues(rename)
            return copy
        }
    }
}
