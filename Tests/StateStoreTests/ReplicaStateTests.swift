import Audit
import CertificateAuthority
import Foundation
import Logging
import ProcessSupport
import SSHCertificates
import XCTest
@testable import StateStore

/// What a running replica keeps in PostgreSQL, through the blocking connections the SSH front
/// uses: the audit chain with its local spool, and the CA store and revocations as sealed files
/// (real PostgreSQL 15; real CAStore on real directories).
final class ReplicaStateTests: PostgresTestCase {
    let key = try! KeyEncryptionKey(hex: "42a2a3a998cbc0e08565044454cc6e7919ea11b30a2a1ecb5b6b881d524438f1", source: "test")

    func connection(_ database: String, port: Int? = nil) throws -> BlockingConnection {
        let server = try server
        var url = server.url(database)
        if let port { url = url.replacingOccurrences(of: ":\(server.port)/", with: ":\(port)/") }
        var configuration = try PostgresStoreConfiguration(url: url)
        configuration.keyEncryptionKey = key
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        return try BlockingConnection(store: configuration, timeout: .seconds(3), logger: quiet)
    }

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "gatehouse-replica-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func auditLog(_ store: PostgresStore) async throws -> AuditVerification { try await PostgresAuditLog(store: store).verify() }

    // MARK: The audit chain

    /// Two replicas' logs, four threads each: appends race without a lock, the primary key
    /// refuses every stale head, and the chain stays one line.
    func testThreadsOfTwoReplicasAppendingWithoutALockKeepOneChain() async throws {
        let (store, name) = try await makeStore()
        let logs = [SharedAuditLog(connection: try connection(name), spool: nil), SharedAuditLog(connection: try connection(name), spool: nil)]
        let threads = 8, each = 50
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            for i in 0..<each {
                _ = try! logs[t % 2].appendSharingSync(AuditEvent(actor: "thread-\(t)", action: "test.append", object: "o", outcome: .success, details: ["i": String(i)]))
            }
        }
        guard case .intact(let lines, _) = try await auditLog(store) else { return XCTFail("the chain must verify") }
        XCTAssertEqual(lines, threads * each)
        let perThread = try server.psql(name, "SELECT string_agg(c::text, ',') FROM (SELECT count(*) c FROM audit_events GROUP BY actor ORDER BY actor) x")
        XCTAssertEqual(perThread, Array(repeating: String(each), count: threads).joined(separator: ","))
    }

    func testEventsSpooledWhileTheStoreIsUnreachableEnterTheChainOnceInOrder() async throws {
        let (store, name) = try await makeStore()
        let directory = try temporaryDirectory()
        let spoolPath = "\(directory)/audit-spool.jsonl"
        // A port nothing listens on: connection refused, as when the database is down.
        let down = SharedAuditLog(connection: try connection(name, port: try freePort()), spool: AuditSpool(path: spoolPath))
        try down.append(AuditEvent(actor: "replica", action: "ssh.login", object: "before the outage", outcome: .success))
        for i in 1...3 {
            let record = try down.appendSharingSync(AuditEvent(actor: "agent:a", action: "session.end", object: "s\(i)", outcome: .success, details: ["i": String(i)]))
            XCTAssertEqual(record.seq, 0, "a spooled record has no place in the chain yet")
        }
        XCTAssertEqual(down.spooledEvents, 4)
        XCTAssertEqual(try server.psql(name, "SELECT count(*) FROM audit_events"), "0")
        let saved = try Data(contentsOf: URL(fileURLWithPath: spoolPath))

        // The database is back: the spool is drained (the health check does it), in order, and
        // the next append follows it.
        let up = SharedAuditLog(connection: try connection(name), spool: AuditSpool(path: spoolPath))
        XCTAssertEqual(up.spooledEvents, 4)
        try up.drainSpool()
        XCTAssertEqual(up.spooledEvents, 0)
        let next = try up.append(AuditEvent(actor: "agent:b", action: "ssh.login", object: "after", outcome: .success))
        XCTAssertEqual(next.seq, 5)
        XCTAssertFalse(FileManager.default.fileExists(atPath: spoolPath), "a drained spool is deleted")
        XCTAssertEqual(try server.psql(name, "SELECT string_agg(object, ',' ORDER BY seq) FROM audit_events"), "before the outage,s1,s2,s3,after")
        XCTAssertEqual(try server.psql(name, "SELECT count(*) FROM audit_events WHERE details::jsonb ? 'queued_at'"), "4",
                       "each spooled event keeps the time it happened")

        // A crash after the drain committed but before the file was deleted: the same file again
        // appends nothing twice.
        try saved.write(to: URL(fileURLWithPath: spoolPath))
        try up.drainSpool()
        XCTAssertEqual(try server.psql(name, "SELECT count(*) FROM audit_events"), "5")
        XCTAssertFalse(FileManager.default.fileExists(atPath: spoolPath))

        guard case .intact(5, _) = try await auditLog(store) else { return XCTFail("the chain must verify with 5 rows") }

        // While the spool holds anything, an append goes behind it even with the store up.
        try saved.write(to: URL(fileURLWithPath: spoolPath))
        let queued = SharedAuditLog(connection: try connection(name), spool: AuditSpool(path: spoolPath))
        XCTAssertEqual(try queued.append(AuditEvent(actor: "agent:c", action: "session.end", object: "behind", outcome: .success)).seq, 0)
        try queued.drainSpool()
        XCTAssertEqual(try server.psql(name, "SELECT string_agg(object, ',' ORDER BY seq) FROM audit_events WHERE seq > 5"), "behind",
                       "the re-played entries were already drained; only the new one is appended")
        guard case .intact(6, _) = try await auditLog(store) else { return XCTFail("the chain must verify with 6 rows") }
    }

    func testWithoutASpoolAnUnreachableStoreFailsTheAppend() throws {
        let log = SharedAuditLog(connection: try connection("nowhere", port: try freePort()), spool: nil)
        XCTAssertThrowsError(try log.append(AuditEvent(actor: "a", action: "b", object: "c", outcome: .success))) { error in
            XCTAssertTrue("\(error)".contains("the state store is unreachable"), "\(error)")
        }
    }

    // MARK: The CA store as sealed files

    func files(_ name: String, _ directory: String, key: KeyEncryptionKey? = nil, actor: String = "test") throws -> SharedAuthorityFiles {
        SharedAuthorityFiles(connection: try connection(name), key: key ?? self.key, stateDirectory: directory, actor: actor)
    }

    func testAReplicaAdoptsThePublishedStoreAndItsRevocations() async throws {
        let (_, name) = try await makeStore()
        let one = try temporaryDirectory(), two = try temporaryDirectory()
        let audit = SharedAuditLog(connection: try connection(name), spool: nil)
        let first = try files(name, one)
        XCTAssertFalse(try first.databaseHoldsStore())
        try first.publish("init") { _ = try CAStore.initialize(at: one, actor: "test", audit: audit) }
        XCTAssertTrue(try first.databaseHoldsStore())
        XCTAssertEqual(try server.psql(name, "SELECT count(*) FROM shared_files"), "8", "4 states and 4 keys")
        // Nothing in the table is readable without the key: no private key line in clear.
        XCTAssertEqual(try server.psql(name, "SELECT count(*) FROM shared_files WHERE position(convert_to('PRIVATE KEY', 'UTF8') in sealed) > 0 OR position(convert_to('ssh-ed25519', 'UTF8') in sealed) > 0"), "0")

        let second = try files(name, two)
        XCTAssertEqual(try second.pull().count, 8)
        let a = try CAStore.open(at: one, audit: audit), b = try CAStore.open(at: two, audit: audit)
        for authority in AuthorityName.allCases {
            XCTAssertEqual(a.trustedPublicKeys(authority).map(\.fingerprint), b.trustedPublicKeys(authority).map(\.fingerprint))
        }
        XCTAssertEqual(a.signingKey(.user).publicKey.fingerprint, b.signingKey(.user).publicKey.fingerprint)

        // A revocation and a rotation step on replica two reach replica one.
        try second.publish("revoke") {
            let ca = try CAStore.open(at: two, audit: audit)
            try ca.revoke(.serial(77, ca: .user), actor: "admin:test")
            _ = try ca.rotate(.user, actor: "admin:test")
        }
        XCTAssertEqual(Set(try first.pull()), ["revocations.json", "ca/user/state.json"].reduce(into: Set<String>()) { $0.insert($1) }
            .union(try server.psql(name, "SELECT string_agg(path, ',') FROM shared_files WHERE path LIKE 'ca/user/keys/%' AND generation > 8").split(separator: ",").map(String.init)))
        let reopened = try CAStore.open(at: one, audit: audit)
        XCTAssertTrue(reopened.revocationList().revokes(77))
        XCTAssertEqual(reopened.trustedPublicKeys(.user).count, 2, "the next key is trusted on every replica once published")
        XCTAssertEqual(try second.pull(), [], "nothing new for the publisher itself")
    }

    func testRowsThatDoNotOpenWithTheKeyAreRefused() async throws {
        let (_, name) = try await makeStore()
        let one = try temporaryDirectory()
        let audit = SharedAuditLog(connection: try connection(name), spool: nil)
        try files(name, one).publish("init") { _ = try CAStore.initialize(at: one, actor: "test", audit: audit) }

        // Another key: nothing is applied, and the error says why.
        let other = try KeyEncryptionKey(hex: "903c91bef5af76156acd2142a647a6760368daba4455f92aec9caa21d08cbb01", source: "other")
        let stranger = try temporaryDirectory()
        XCTAssertThrowsError(try files(name, stranger, key: other).pull()) { error in
            XCTAssertTrue("\(error)".contains("does not open with this replica's key-encryption key"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(stranger)/ca/user/state.json"))

        // A row moved to another path, by someone with write access but not the key.
        let moved = try temporaryDirectory()
        try server.psql(name, """
            UPDATE shared_files SET sealed = (SELECT sealed FROM shared_files WHERE path = 'ca/host/state.json') WHERE path = 'ca/user/state.json'
            """)
        XCTAssertThrowsError(try files(name, moved).pull()) { error in
            XCTAssertTrue("\(error)".contains("ca/user/state.json"), "\(error)")
        }
    }

    func testATableRolledBackUnderAReplicaIsRefused() async throws {
        let (_, name) = try await makeStore()
        let one = try temporaryDirectory(), two = try temporaryDirectory()
        let audit = SharedAuditLog(connection: try connection(name), spool: nil)
        let publisher = try files(name, one)
        try publisher.publish("init") { _ = try CAStore.initialize(at: one, actor: "test", audit: audit) }
        try publisher.publish("revoke 1") { try CAStore.open(at: one, audit: audit).revoke(.serial(1, ca: .user), actor: "admin") }
        let old = try server.psql(name, "SELECT generation || ' ' || encode(sealed, 'hex') FROM shared_files WHERE path = 'revocations.json'").split(separator: " ")
        try publisher.publish("revoke 2") { try CAStore.open(at: one, audit: audit).revoke(.serial(2, ca: .user), actor: "admin") }
        let replica = try files(name, two)
        try replica.pull()
        // The old list, sealed for its old generation, put back under a new generation.
        try server.psql(name, "UPDATE shared_files SET generation = 1000, sealed = decode('\(old[1])', 'hex') WHERE path = 'revocations.json'")
        XCTAssertThrowsError(try replica.pull()) { error in
            XCTAssertTrue("\(error)".contains("revocations.json (generation 1000) does not open"), "\(error)")
        }
        // The old row put back exactly as it was: older than what the replica applied, so the
        // replica never goes back to it.
        try server.psql(name, "UPDATE shared_files SET generation = \(old[0]) WHERE path = 'revocations.json'")
        XCTAssertEqual(try replica.pull(), [])
        let revoked = try CAStore.open(at: two, audit: audit).revocationList()
        XCTAssertTrue(revoked.revokes(2), "the replica keeps the newer list")
    }

    func testConcurrentPublishersLoseNoRevocation() async throws {
        let (_, name) = try await makeStore()
        let dirs = try (0..<3).map { _ in try temporaryDirectory() }
        let audit = SharedAuditLog(connection: try connection(name), spool: nil)
        try files(name, dirs[0]).publish("init") { _ = try CAStore.initialize(at: dirs[0], actor: "test", audit: audit) }
        let publishers = try dirs.map { try files(name, $0) }
        DispatchQueue.concurrentPerform(iterations: 3) { p in
            for i in 0..<15 {
                try! publishers[p].publish("revoke") {
                    try CAStore.open(at: dirs[p], audit: audit).revoke(.serial(UInt64(1000 * (p + 1) + i), ca: .user), actor: "admin:\(p)")
                }
            }
        }
        let reader = try temporaryDirectory()
        try files(name, reader).pull()
        let list = try CAStore.open(at: reader, audit: audit).revocationList()
        for p in 0..<3 { for i in 0..<15 { XCTAssertTrue(list.revokes(UInt64(1000 * (p + 1) + i)), "serial \(1000 * (p + 1) + i)") } }
        XCTAssertEqual(list.version, 45)
    }

    func testAWatchingReplicaAppliesAPublishWithinOneSecond() async throws {
        let (_, name) = try await makeStore()
        let one = try temporaryDirectory(), two = try temporaryDirectory()
        let audit = SharedAuditLog(connection: try connection(name), spool: nil)
        let publisher = try files(name, one)
        try publisher.publish("init") { _ = try CAStore.initialize(at: one, actor: "test", audit: audit) }
        var configuration = try PostgresStoreConfiguration(url: try server.url(name))
        configuration.keyEncryptionKey = key
        let applied = DispatchSemaphore(value: 0)
        let watcher = SharedFilesWatcher(files: try files(name, two), configuration: configuration, pollInterval: .seconds(30),
                                         onChange: { paths in if paths.contains("revocations.json") { applied.signal() } },
                                         onError: { XCTFail("\($0)") })
        watcher.start()
        addTeardownBlock { watcher.stop() }
        // The first pull (on start) adopts the store; the poll interval is 30 s, so only the
        // notification can bring the revocation within the second.
        let deadline = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: "\(two)/ca/user/state.json"), Date() < deadline { usleep(20_000) }
        try await Task.sleep(for: .milliseconds(300)) // the LISTEN connection's first round trip
        let start = ContinuousClock.now
        try publisher.publish("revoke") { try CAStore.open(at: one, audit: audit).revoke(.serial(5, ca: .user), actor: "admin") }
        XCTAssertEqual(applied.wait(timeout: .now() + 1), .success, "the revocation must be applied on the other replica within 1 s")
        print("revocation applied on the watching replica in \(elapsed(since: start)) s")
        XCTAssertTrue(try CAStore.open(at: two, audit: audit).revocationList().revokes(5))
    }

    // MARK: Issuance rate limits

    func testRateLimitsAreOneBudgetAcrossReplicas() async throws {
        let (a, name) = try await makeStore()
        let (b, _) = try await makeStore(database: name, migrated: false)
        let limits = [SharedRateLimits(store: a, perMinute: 60, burst: 5), SharedRateLimits(store: b, perMinute: 60, burst: 5)]
        // 20 requests of one subject at once over two replicas: the burst, not twice it.
        let allowed = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<20 { group.addTask { try await limits[i % 2].take("https://idp\u{0}agent-7") == nil } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(allowed, 5)
        let retry = try await limits[0].take("https://idp\u{0}agent-7")
        XCTAssertNotNil(retry)
        XCTAssertGreaterThanOrEqual(retry ?? 0, 1)
        let other = try await limits[1].take("https://idp\u{0}agent-8")
        XCTAssertNil(other, "another subject has its own bucket")

        // Refilled by the database's clock: 6000 a minute gives a token back within milliseconds.
        let fast = SharedRateLimits(store: a, perMinute: 6000, burst: 1)
        let first = try await fast.take("fast")
        XCTAssertNil(first)
        var again: Int? = 1
        let deadline = Date().addingTimeInterval(5)
        while again != nil, Date() < deadline {
            again = try await fast.take("fast")
            if again != nil { try await Task.sleep(for: .milliseconds(5)) }
        }
        XCTAssertNil(again, "a token comes back as the bucket refills")
    }

    // MARK: The key-encryption key

    func testTheKeyEncryptionKeyIsReadStrictly() throws {
        let directory = try temporaryDirectory()
        let path = "\(directory)/kek"
        try ("42a2a3a998cbc0e08565044454cc6e7919ea11b30a2a1ecb5b6b881d524438f1" + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        XCTAssertThrowsError(try KeyEncryptionKey.load(file: path)) { XCTAssertTrue("\($0)".contains("readable by group or others"), "\($0)") }
        chmod(path, 0o600)
        XCTAssertNoThrow(try KeyEncryptionKey.load(file: path))
        XCTAssertThrowsError(try KeyEncryptionKey(hex: "abcd", source: "x")) { XCTAssertTrue("\($0)".contains("64 hexadecimal characters"), "\($0)") }
        XCTAssertThrowsError(try KeyEncryptionKey(hex: String(repeating: "zz", count: 32), source: "x")) { XCTAssertTrue("\($0)".contains("not hexadecimal"), "\($0)") }
        XCTAssertThrowsError(try KeyEncryptionKey(hex: String(repeating: "00", count: 32), source: "x")) { XCTAssertTrue("\($0)".contains("not random"), "\($0)") }
        XCTAssertThrowsError(try KeyEncryptionKey.load(environment: "GATEHOUSE_TEST_NO_SUCH_KEK", from: [:])) { XCTAssertTrue("\($0)".contains("is not set"), "\($0)") }
        XCTAssertEqual("\(try KeyEncryptionKey.load(file: path))", "(key-encryption key)", "the key is never printed")
    }
}

private extension KeyRevocationList {
    func revokes(_ serial: UInt64) -> Bool { certificateSections.contains { $0.serials.contains(serial) } }
}
