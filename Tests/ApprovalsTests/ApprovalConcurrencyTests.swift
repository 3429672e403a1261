import Approvals
import Foundation
import XCTest

/// Release once, however the resends race: threads of one store, two stores on one directory.
final class ApprovalConcurrencyTests: XCTestCase {
    private func approvedRequest(_ store: FileApprovalStore) throws -> String {
        let key = ApprovalRequestKey(command: "systemctl restart nginx", target: "web-01", login: "deploy",
                                     requester: ApprovalRequester(keyID: alice.keyID, serial: UInt64.random(in: 1 ... .max)))
        let id = try store.request(key, requester: alice, rule: restartRule).record.id
        _ = try store.decide(id, approve: true, by: bob, reason: "")
        return id
    }

    private func consumers(_ stores: [FileApprovalStore], id: String, threads: Int) throws -> (winners: Int, refusals: [String]) {
        let key = try XCTUnwrap(stores[0].get(id)).key
        let outcomes = onThreads(threads) { index -> String in
            do {
                _ = try stores[index % stores.count].consume(id, presenting: key, session: "s\(index)")
                return "released"
            } catch { return (error as? ApprovalRefusal)?.code ?? "\(error)" }
        }
        return (outcomes.filter { $0 == "released" }.count, outcomes.filter { $0 != "released" })
    }

    func testManyThreadsConsumingOneApprovalExactlyOneWins() throws {
        let audit = AuditCollector()
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: audit.sink)
        for round in 0..<40 {
            let id = try approvedRequest(store)
            let (winners, refusals) = try consumers([store], id: id, threads: 16)
            XCTAssertEqual(winners, 1, "round \(round)")
            XCTAssertEqual(Set(refusals), ["approval-consumed"], "round \(round)")
            XCTAssertEqual(audit.actions(id).filter { $0 == "approval.consumed" }.count, 1)
        }
    }

    func testTwoStoresOnOneDirectoryRacingExactlyOneWins() throws {
        // Two instances hold two open file descriptions of the lock file, as two processes do.
        let directory = try temporaryDirectory(self)
        let stores = [try FileApprovalStore(directory: directory, audit: AuditCollector().sink),
                      try FileApprovalStore(directory: directory, audit: AuditCollector().sink)]
        for round in 0..<40 {
            let id = try approvedRequest(stores[round % 2])
            let (winners, refusals) = try consumers(stores, id: id, threads: 8)
            XCTAssertEqual(winners, 1, "round \(round)")
            XCTAssertEqual(Set(refusals), ["approval-consumed"], "round \(round)")
        }
        // Both see every request, written by either.
        XCTAssertEqual(try stores[0].list().map(\.id), try stores[1].list().map(\.id))
        XCTAssertEqual(try stores[0].list().count, 40)
    }

    func testConcurrentFirstRequestsForOneKeyMakeOneRequest() throws {
        let directory = try temporaryDirectory(self)
        let stores = [try FileApprovalStore(directory: directory, audit: AuditCollector().sink),
                      try FileApprovalStore(directory: directory, audit: AuditCollector().sink)]
        let results = onThreads(12) { index in try? stores[index % 2].request(restartNginx, requester: alice, rule: restartRule) }
        XCTAssertEqual(Set(results.compactMap { $0?.record.id }).count, 1)
        XCTAssertEqual(results.filter { $0?.created == true }.count, 1)
    }
}
