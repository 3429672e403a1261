import Audit
import Foundation
import XCTest
@testable import StateStore

/// The state replicas share, against a real PostgreSQL 15, with separate `PostgresStore`s
/// (separate connection pools) standing in for replicas.
final class SharedStateTests: PostgresTestCase {
    // MARK: Audit chain

    /// 8 concurrent tasks × 200 events, alternating between two stores (two replicas): one
    /// unbroken chain, seq 1…1600 with no gap or duplicate, each task's events in its order, and
    /// the table exported as JSON lines verifies with the file log's own verifier.
    func testOneAuditChainFromConcurrentAppendersOnTwoReplicas() async throws {
        let (a, name) = try await makeStore()
        let (b, _) = try await makeStore(database: name, migrated: false)
        let logs = [PostgresAuditLog(store: a), PostgresAuditLog(store: b)]
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    let log = logs[task % 2]
                    var i = 0
                    while i < 200 {
                        // Mostly single appends, some small batches (group commit) in between.
                        let batch = task % 4 == 3 ? min(1 + i % 5, 200 - i) : 1
                        let events = (i..<(i + batch)).map {
                            AuditEvent(actor: "replica-\(task % 2)", action: "test.append", object: "task \(task)", outcome: .success,
                                       details: ["task": String(task), "i": String($0)])
                        }
                        try await log.append(contentsOf: events)
                        i += batch
                    }
                }
            }
            try await group.waitForAll()
        }
        let appended = elapsed(since: start)

        let verifyStart = ContinuousClock.now
        let verification = try await logs[1].verify()
        let verified = elapsed(since: verifyStart)
        guard case .intact(let lines, let lastHash) = verification else { return XCTFail("\(verification)") }
        XCTAssertEqual(lines, 1600)
        let head = try await logs[0].head()
        XCTAssertEqual(head.seq, 1600)
        XCTAssertEqual(head.hash, lastHash)

        var records: [AuditRecord] = []
        while true {
            let page = try await logs[0].records(after: records.last?.seq ?? 0, limit: 700)
            if page.isEmpty { break }
            records += page
        }
        XCTAssertEqual(records.map(\.seq), Array(1...1600), "every seq once, none missing")
        for task in 0..<8 {
            let mine = records.filter { $0.event.object == "task \(task)" }.map { Int($0.event.details["i"]!)! }
            XCTAssertEqual(mine, Array(0..<200), "task \(task)'s events all present, in the order it appended them")
        }
        XCTAssertEqual(Set(records.map(\.event.actor)), ["replica-0", "replica-1"])

        // The rows are the file's lines byte for byte: AuditLog.verify accepts the export.
        let path = NSTemporaryDirectory() + "gatehouse-pg-export-\(UUID().uuidString).log"
        defer { unlink(path) }
        let text = records.map { AuditLog.canonicalLine($0) + "\n" }.joined()
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try AuditLog.verify(path: path), .intact(lines: 1600, lastHash: lastHash))
        print("audit: 1600 events from 8 tasks on 2 stores appended in \(appended) s, verified in \(verified) s")
    }

    /// The same events appended with the same time to the file log and to PostgreSQL give the
    /// same records, the same lines and the same hashes (details with escapes, NUL, non-ASCII
    /// and keys whose order differs between byte order and Foundation's).
    func testAuditRowsHashExactlyAsTheFileLog() async throws {
        let (store, _) = try await makeStore()
        let log = PostgresAuditLog(store: store)
        let path = NSTemporaryDirectory() + "gatehouse-pg-file-\(UUID().uuidString).log"
        defer { unlink(path) }
        let file = try AuditLog(path: path)
        let now = Date(timeIntervalSince1970: 1_796_000_000.123)
        let batches: [[AuditEvent]] = [
            [AuditEvent(actor: "admin", action: "cert.revoke", object: "serial 7 of user CA", outcome: .success, details: ["krl_version": "3"])],
            [AuditEvent(actor: "agent \"x\"/y", action: "session.exec", object: "db-1", outcome: .refused,
                        details: ["command": "echo \u{0}\u{1}\t\n é ✓ \\ /", "Zeta": "1", "alpha": "2", "a10": "x", "a9": "y", "_k": "z"]),
             AuditEvent(actor: "système", action: "cert.issue", object: "alice", outcome: .failure, details: [:])],
        ]
        for events in batches {
            let fromFile = try file.append(contentsOf: events, now: now)
            let fromTable = try await log.append(contentsOf: events, now: now)
            XCTAssertEqual(fromTable, fromFile)
        }
        let fileLines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        let tableLines = try await log.records().map { AuditLog.canonicalLine($0) }
        XCTAssertEqual(tableLines, fileLines)
        guard case .intact(3, let fileHash) = try AuditLog.verify(path: path) else { return XCTFail("file log broken") }
        let verification = try await log.verify()
        XCTAssertEqual(verification, .intact(lines: 3, lastHash: fileHash))
        // The record with the NUL reads back whole.
        let second = try await log.records(after: 1, limit: 1)
        XCTAssertEqual(second.first?.event.details["command"], "echo \u{0}\u{1}\t\n é ✓ \\ /")
    }

    /// An edited row, a deleted row and a re-chained edit are each reported at the first broken
    /// seq; the table refuses UPDATE and DELETE from Gatehouse's role in the first place.
    func testAuditVerifyNamesTheFirstBrokenRow() async throws {
        func chain() async throws -> (PostgresAuditLog, String) {
            let (store, name) = try await makeStore()
            let log = PostgresAuditLog(store: store)
            for i in 1...10 { try await log.append(AuditEvent(actor: "a", action: "t", object: "o\(i)", outcome: .success)) }
            return (log, name)
        }
        let server = try server

        let (edited, e) = try await chain()
        let refused = await storeError { _ = try await edited.store.query("audit edit", "UPDATE audit_events SET actor = 'mallory' WHERE seq = 4") }
        XCTAssertEqual(refused?.sqlState, "42501")
        XCTAssertTrue(refused?.description.contains("audit_events is append-only (UPDATE refused)") == true, "\(String(describing: refused))")
        // The owner can still do it (with the trigger off); the chain shows it.
        try server.psql(e, "ALTER TABLE audit_events DISABLE TRIGGER USER; UPDATE audit_events SET actor = 'mallory' WHERE seq = 4")
        let editedResult = try await edited.verify()
        XCTAssertEqual(editedResult, .broken(line: 4, reason: "the row's content does not match its hash (edited)"))

        let (deleted, d) = try await chain()
        try server.psql(d, "ALTER TABLE audit_events DISABLE TRIGGER USER; DELETE FROM audit_events WHERE seq = 6")
        let deletedResult = try await deleted.verify()
        XCTAssertEqual(deletedResult, .broken(line: 6, reason: "sequence number 7 where 6 was expected (rows are missing)"))

        // Edit row 3 and recompute its hash: row 4's prev no longer matches.
        let (rechained, r) = try await chain()
        let three = try await rechained.records(after: 2, limit: 1)[0]
        let forged = AuditRecord(seq: 3, time: three.time, event: AuditEvent(actor: "mallory", action: "t", object: "o3", outcome: .success), previousHash: three.previousHash)
        try server.psql(r, "ALTER TABLE audit_events DISABLE TRIGGER USER; UPDATE audit_events SET actor = 'mallory', hash = '\(AuditLog.lineHash(AuditLog.canonicalLine(forged)))' WHERE seq = 3")
        let rechainedResult = try await rechained.verify()
        XCTAssertEqual(rechainedResult, .broken(line: 4, reason: "prev hash does not match line 3 (a row before it was edited, dropped, inserted or reordered)"))
    }

    func testAuditRefusesWhatTextCannotHold() async throws {
        let (store, _) = try await makeStore()
        let err = await storeError { try await PostgresAuditLog(store: store).append(AuditEvent(actor: "a\u{0}b", action: "t", object: "o", outcome: .success)) }
        XCTAssertEqual(err?.kind, .data("actor contains a NUL character, which PostgreSQL text cannot hold"))
        XCTAssertEqual(err?.operation, "audit append")
    }

    // MARK: Serials

    /// 10,000 serials taken concurrently through three stores (three replicas): no duplicate.
    func testSerialsAreUniqueAcrossThreeReplicas() async throws {
        let (a, name) = try await makeStore()
        let (b, _) = try await makeStore(database: name, migrated: false)
        let (c, _) = try await makeStore(database: name, migrated: false)
        let stores = [a, b, c]
        let start = ContinuousClock.now
        let serials = try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for task in 0..<12 {
                group.addTask {
                    var mine: [UInt64] = []
                    for _ in 0..<(task < 4 ? 834 : 833) { mine.append(try await stores[task % 3].nextSerial()) }
                    return mine
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        XCTAssertEqual(serials.count, 10_000)
        XCTAssertEqual(Set(serials).count, 10_000, "no serial handed out twice")
        XCTAssertTrue(serials.allSatisfy { $0 >= 1 })
        print("serials: 10000 from 3 stores × 4 tasks in \(elapsed(since: start)) s")
    }

    // MARK: jti replay cache

    func testJTIClaimedOnceUntilItExpires() async throws {
        let (a, name) = try await makeStore()
        let (b, _) = try await makeStore(database: name, migrated: false)
        let now = Date()
        let cacheA = TokenReplayCache(store: a), cacheB = TokenReplayCache(store: b)
        let first = try await cacheA.claim(issuer: "https://idp", jti: "j1", expiresAt: now + 300, now: now)
        let replayElsewhere = try await cacheB.claim(issuer: "https://idp", jti: "j1", expiresAt: now + 300, now: now)
        let otherIssuer = try await cacheB.claim(issuer: "https://other", jti: "j1", expiresAt: now + 300, now: now)
        XCTAssertEqual([first, replayElsewhere, otherIssuer], [true, false, true])

        // Twenty replicas' worth of claims of one jti at once: exactly one wins.
        let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<20 { group.addTask { try await (i % 2 == 0 ? cacheA : cacheB).claim(issuer: "https://idp", jti: "race", expiresAt: now + 300, now: now) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(wins, 1)

        // Once expired, the same (issuer, jti) is a new token (taken over in the one statement);
        // prune deletes what expired and nothing else.
        _ = try await cacheA.claim(issuer: "https://idp", jti: "old", expiresAt: now - 10, now: now - 100)
        let reuse = try await cacheA.claim(issuer: "https://idp", jti: "old", expiresAt: now + 300, now: now)
        XCTAssertTrue(reuse)
        _ = try await cacheA.claim(issuer: "https://idp", jti: "gone", expiresAt: now - 1, now: now - 100)
        let pruned = try await cacheA.prune(now: now)
        XCTAssertEqual(pruned, 1)
        XCTAssertEqual(try server.psql(name, "SELECT string_agg(jti, ',' ORDER BY issuer, jti) FROM token_jti"), "j1,old,race,j1")
    }

    func testJTIClaimsPruneExpiredRowsThemselves() async throws {
        let (store, name) = try await makeStore()
        let cache = TokenReplayCache(store: store, pruneInterval: 60)
        let now = Date()
        for i in 0..<5 { _ = try await cache.claim(issuer: "i", jti: "e\(i)", expiresAt: now + 1, now: now) }
        XCTAssertEqual(try server.psql(name, "SELECT count(*) FROM token_jti"), "5", "no prune within the interval")
        _ = try await cache.claim(issuer: "i", jti: "later", expiresAt: now + 600, now: now + 120)
        XCTAssertEqual(try server.psql(name, "SELECT string_agg(jti, ',') FROM token_jti"), "later", "the claim after the interval pruned the expired rows")
    }

    // MARK: Session budgets

    func testSessionBudgetTakeIsAtomic() async throws {
        let (a, name) = try await makeStore()
        let (b, _) = try await makeStore(database: name, migrated: false)
        let budgetsA = SessionBudgets(store: a), budgetsB = SessionBudgets(store: b)
        let now = Date()
        let key = String(repeating: "ab", count: 32)
        var outcomes: [SessionBudgetTake] = []
        for i in 0..<4 { outcomes.append(try await (i % 2 == 0 ? budgetsA : budgetsB).take(key: key, max: 3, expiresAt: now + 60, now: now)) }
        XCTAssertEqual(outcomes, [.granted(used: 1), .granted(used: 2), .granted(used: 3), .exhausted(used: 3)])

        // 40 takes at once on two replicas against a budget of 5: exactly five sessions.
        let raced = String(repeating: "cd", count: 32)
        let results = try await withThrowingTaskGroup(of: SessionBudgetTake.self) { group in
            for i in 0..<40 { group.addTask { try await (i % 2 == 0 ? budgetsA : budgetsB).take(key: raced, max: 5, expiresAt: now + 60, now: now) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let granted = results.compactMap { if case .granted(let used) = $0 { used } else { nil } }
        XCTAssertEqual(granted.sorted(), [1, 2, 3, 4, 5])
        XCTAssertEqual(results.filter { $0 == .exhausted(used: 5) }.count, 35)

        // Expired: refused before and after the row's expiry; prune forgets it.
        let shortLived = String(repeating: "ef", count: 32)
        let granted1 = try await budgetsA.take(key: shortLived, max: 10, expiresAt: now + 5, now: now)
        XCTAssertEqual(granted1, .granted(used: 1))
        let late = try await budgetsB.take(key: shortLived, max: 10, expiresAt: now + 5, now: now + 6)
        XCTAssertEqual(late, .expired)
        let pruned = try await budgetsA.prune(now: now + 6)
        XCTAssertEqual(pruned, 1)
        let zero = try await budgetsA.take(key: String(repeating: "01", count: 32), max: 0, expiresAt: now + 60, now: now)
        XCTAssertEqual(zero, .exhausted(used: 0))
        let badKey = await storeError { _ = try await budgetsA.take(key: "not-a-digest", max: 1, expiresAt: now + 60, now: now) }
        XCTAssertEqual(badKey?.kind, .data("the budget key is not a SHA-256 hex digest"))
        XCTAssertEqual(try server.psql(name, "SELECT count(*) FROM session_budgets"), "2")
    }
}
