import Foundation
import ProcessSupport
import XCTest
@testable import StateStore

/// Configuration, precise errors, versioned migrations and the refusal to run on a schema this
/// build does not know, against a real PostgreSQL 15.
final class SchemaTests: PostgresTestCase {
    func testConfigurationFromURL() throws {
        let c = try PostgresStoreConfiguration(url: "postgres://gatehouse@127.0.0.1:5433/state")
        XCTAssertEqual(c, PostgresStoreConfiguration(host: "127.0.0.1", port: 5433, username: "gatehouse", password: nil, database: "state", tls: .off))
        let d = try PostgresStoreConfiguration(url: "postgresql://gate%40house:p%2Fw@db.internal/state?sslmode=require")
        XCTAssertEqual(d.username, "gate@house")
        XCTAssertEqual(d.password, "p/w")
        XCTAssertEqual(d.port, 5432)
        XCTAssertEqual(d.tls, .require)
        XCTAssertEqual(d.description, "postgres://gate@house:***@db.internal:5432/state (tls require)", "the password never shows")
        XCTAssertEqual(try PostgresStoreConfiguration(url: "postgres://u@[::1]:5432/db", tls: .require).endpoint, "[::1]:5432/db")

        func refused(_ url: String, tls: PostgresStoreConfiguration.TLSMode? = nil, _ text: String, line: UInt = #line) {
            XCTAssertThrowsError(try PostgresStoreConfiguration(url: url, tls: tls), line: line) {
                XCTAssertTrue("\($0)".contains(text), "\($0)", line: line)
                XCTAssertTrue("\($0)".hasPrefix("store configuration: "), "\($0)", line: line)
            }
        }
        refused("mysql://u@h/db", "scheme is \"mysql\"")
        refused("postgres://127.0.0.1/db", "names no user")
        refused("postgres://u@127.0.0.1/", "names no database")
        refused("postgres://u@127.0.0.1:70000/db", "not a TCP port")
        refused("postgres://u@h/db?sslmode=prefer", "sslmode=prefer is not supported")
        refused("postgres://u@h/db?connect_timeout=3", "\"connect_timeout\" is not supported")
        refused("postgres://u@h/db?sslmode=disable", tls: .require, "tls: require contradicts")
    }

    func testMigrateAppliesOnceAndCheckVersionAccepts() async throws {
        let (store, name) = try await makeStore(migrated: false)
        let err = await storeError { try await store.checkVersion() }
        XCTAssertEqual(err?.kind, .schema(.notInitialised(expected: Schema.latestVersion)))
        XCTAssertTrue(err?.description.contains("run `gatehouse store migrate` first") == true, "\(String(describing: err))")

        let applied = try await store.migrate()
        XCTAssertEqual(applied, Array(1...Schema.latestVersion))
        let again = try await store.migrate()
        XCTAssertEqual(again, [], "a second migrate finds nothing to do")
        let version = try await store.checkVersion()
        XCTAssertEqual(version, Schema.latestVersion)
        // Migration 2 replaced migration 1's unsealed revocations table with the sealed files;
        // migration 3 added the recordings index, shipping leases and replica heartbeats;
        // migration 4 the approval requests and their change sequence.
        let tables = try server.psql(name, "SELECT string_agg(c, ',' ORDER BY c) FROM unnest(ARRAY['audit_events','revocations','session_budgets','token_jti','schema_migrations','certificate_serials','shared_files','shared_file_generations','audit_spools','recordings','recording_leases','replicas','approvals','approval_changes','issuance_rate_limits']) c WHERE to_regclass(c) IS NOT NULL")
        XCTAssertEqual(tables, "approval_changes,approvals,audit_events,audit_spools,certificate_serials,issuance_rate_limits,recording_leases,recordings,replicas,schema_migrations,session_budgets,shared_file_generations,shared_files,token_jti")
        XCTAssertEqual(try server.psql(name, "SELECT string_agg(version || ':' || checksum, ',' ORDER BY version) FROM schema_migrations"),
                       Schema.migrations.map { "\($0.version):\($0.checksum)" }.joined(separator: ","))
    }

    /// Two processes' stores (two pools) migrating one new database at once: the advisory lock
    /// makes one apply each migration and the other find it applied.
    func testConcurrentMigrationsApplyEachOnce() async throws {
        let (a, name) = try await makeStore(migrated: false)
        let (b, _) = try await makeStore(database: name, migrated: false)
        async let fromA = a.migrate()
        async let fromB = b.migrate()
        let (appliedA, appliedB) = try await (fromA, fromB)
        XCTAssertEqual((appliedA + appliedB).sorted(), Array(1...Schema.latestVersion), "each migration applied exactly once: \(appliedA) \(appliedB)")
        XCTAssertEqual(try server.psql(name, "SELECT count(*) FROM schema_migrations"), String(Schema.latestVersion))
    }

    /// A replica refuses to start on a database migrated past what it knows.
    func testRefusesNewerSchemaVersion() async throws {
        let (store, name) = try await makeStore()
        try server.psql(name, "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(Schema.latestVersion + 1), 'from the future', 'x')")
        let err = await storeError { try await store.checkVersion() }
        XCTAssertEqual(err?.kind, .schema(.newer(database: Schema.latestVersion + 1, expected: Schema.latestVersion)))
        XCTAssertEqual(err?.operation, "schema check")
        XCTAssertTrue(err?.description.contains("newer than this build knows") == true, "\(String(describing: err))")
        XCTAssertTrue(err?.description.contains("run that version on this replica") == true, "\(String(describing: err))")
        // Nor does migrate touch it (schemas are never migrated down).
        let migrateErr = await storeError { try await store.migrate() }
        XCTAssertEqual(migrateErr?.kind, .schema(.newer(database: Schema.latestVersion + 1, expected: Schema.latestVersion)))
    }

    /// A build with a migration the database lacks refuses until `migrate`; a migration applied
    /// from different SQL under the same number is refused outright.
    func testRefusesOlderAndModifiedSchema() async throws {
        let (store, name) = try await makeStore()
        let next = SchemaMigration(version: Schema.latestVersion + 1, name: "test: one more table",
                                   statements: ["CREATE TABLE later (id integer PRIMARY KEY)"])
        let newerBuild = Schema.migrations + [next]
        let err = await storeError { try await store.checkVersion(newerBuild) }
        XCTAssertEqual(err?.kind, .schema(.older(database: Schema.latestVersion, expected: next.version)))
        XCTAssertTrue(err?.description.contains("run `gatehouse store migrate` with this build") == true, "\(String(describing: err))")
        let applied = try await store.migrate(newerBuild)
        XCTAssertEqual(applied, [next.version])
        let version = try await store.checkVersion(newerBuild)
        XCTAssertEqual(version, next.version)
        // The older build now refuses the newer database.
        let olderErr = await storeError { try await store.checkVersion() }
        XCTAssertEqual(olderErr?.kind, .schema(.newer(database: next.version, expected: Schema.latestVersion)))

        try server.psql(name, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        let modified = await storeError { try await store.checkVersion(newerBuild) }
        XCTAssertEqual(modified?.kind, .schema(.modified(version: 1)))
    }

    /// The server's refusal comes back with the operation, the SQLSTATE and PostgreSQL's message.
    func testServerRefusalNamesOperationAndSQLState() async throws {
        let server = try server
        let name = try server.createDatabase()
        let (store, _) = try await makeStore(database: name, migrated: false, url: server.url(name, password: "wrong"), timeout: .seconds(1))
        let err = await storeError { try await store.checkVersion() }
        XCTAssertEqual(err?.sqlState, "28P01")
        XCTAssertEqual(err?.operation, "schema check")
        let text = err?.description ?? ""
        XCTAssertTrue(text.hasPrefix("schema check on PostgreSQL 127.0.0.1:\(server.port)/\(name): PostgreSQL refused it (SQLSTATE 28P01 invalid_password): password authentication failed for user \"gatehouse\""), text)
        XCTAssertFalse(text.contains(server.password) || text.contains("wrong"), "no password in errors: \(text)")
        print("wrong password: \(text)")
    }

    /// `tls: require` against this server (which offers no TLS) is refused, and says so.
    func testRequiredTLSRefusedByAPlainServer() async throws {
        let server = try server
        let name = try server.createDatabase()
        let (store, _) = try await makeStore(database: name, migrated: false, url: server.url(name) + "?sslmode=require", timeout: .seconds(1))
        XCTAssertEqual(store.configuration.tls, .require)
        let err = await storeError { try await store.checkVersion() }
        XCTAssertEqual(err?.kind, .unreachable("the server does not offer TLS, and this store requires it (tls: require)"))
    }

    /// Nothing listening: the operation fails within its deadline, saying the store is unreachable.
    func testUnreachableStoreFailsWithinDeadline() async throws {
        let port = try freePort()
        let (store, _) = try await makeStore(database: "none", migrated: false, url: "postgres://gatehouse@127.0.0.1:\(port)/none", timeout: .seconds(1))
        let start = ContinuousClock.now
        let err = await storeError { try await store.checkVersion() }
        let took = ContinuousClock.now - start
        XCTAssertLessThan(took, .seconds(3), "refused within the deadline, not after the pool's 60 s circuit breaker")
        XCTAssertTrue(err?.description.hasPrefix("schema check on PostgreSQL 127.0.0.1:\(port)/none: ") == true, "\(String(describing: err))")
        XCTAssertTrue(err?.description.contains("unreachable") == true, "\(String(describing: err))")
        print("nothing listening: \(err?.description ?? "")")
    }
}
