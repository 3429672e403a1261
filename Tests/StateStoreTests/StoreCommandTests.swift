import Foundation
import Audit
import ProcessSupport
import XCTest
@testable import StateStore

/// The `gatehouse` executable against a real PostgreSQL 15: `store migrate`, `store status`,
/// and `serve` refusing to start (before it listens) on a schema it does not know or a store
/// it cannot reach. The binary is the one SwiftPM built next to these tests.
final class StoreCommandTests: PostgresTestCase {
    static var gatehouse: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/gatehouse").path
    }

    var directory = ""

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.gatehouse) else { throw XCTSkip("\(Self.gatehouse) not built") }
        directory = NSTemporaryDirectory() + "gatehouse-store-cli-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A configuration file for a bastion on a free loopback port whose store is `database`,
    /// the password in a password file (as production would have it). Returns its path.
    func writeConfiguration(url: String, passwordFile: Bool = true, name: String = "gatehouse.yaml", port: Int = 0) throws -> String {
        let server = try server
        var store = "store:\n  kind: postgres\n  url: \"\(url)\"\n  tls: off\n"
        if passwordFile {
            try (server.password + "\n").write(toFile: "\(directory)/db-password", atomically: true, encoding: .utf8)
            store += "  password_file: \(directory)/db-password\n"
        }
        // The key replicas seal the shared CA files with (serve needs it; migrate does not).
        let kek = "\(directory)/kek"
        try "eaf2c05d8767a8460fb49ca1e96e172962e83fbecb7ecf25a8d4d961b9de1195\n".write(toFile: kek, atomically: true, encoding: .utf8)
        chmod(kek, 0o600)
        store += "  key_encryption_key_file: \(kek)\n"
        let path = "\(directory)/\(name)"
        let listen = port == 0 ? try freePort() : port
        try """
        listen: ["127.0.0.1:\(listen)"]
        state: \(directory)/state
        host_keys: \(directory)/hostkeys
        recordings: \(directory)/recordings
        log: {level: error}
        \(store)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func gatehouse(_ arguments: [String]) throws -> BinaryResult {
        try runBinary(Self.gatehouse, arguments)
    }

    /// The URL without a password (the configuration's password_file carries it).
    func bareURL(_ database: String) throws -> String {
        "postgres://\(try server.username)@127.0.0.1:\(try server.port)/\(database)"
    }

    func testMigrateThenStatus() throws {
        let server = try server
        let database = try server.createDatabase()
        let config = try writeConfiguration(url: try bareURL(database))

        let before = try gatehouse(["store", "status", "--config", config])
        XCTAssertEqual(before.status, 1, before.out + before.err)
        XCTAssertTrue(before.err.contains("schema check on PostgreSQL 127.0.0.1:\(server.port)/\(database): the database has no Gatehouse schema (no schema_migrations table); this build needs schema version \(Schema.latestVersion): run `gatehouse store migrate` first"), before.err)

        let start = ContinuousClock.now
        let migrate = try gatehouse(["store", "migrate", "--config", config])
        XCTAssertEqual(migrate.status, 0, migrate.out + migrate.err)
        print("store migrate on a new database: \(elapsed(since: start)) s")
        XCTAssertTrue(migrate.out.contains("store: postgres://gatehouse:***@127.0.0.1:\(server.port)/\(database) (tls off)"), migrate.out)
        XCTAssertTrue(migrate.out.contains("applied schema migration 1: \(Schema.migrations[0].name)"), migrate.out)
        XCTAssertTrue(migrate.out.hasSuffix("schema version \(Schema.latestVersion)\n"), migrate.out)
        XCTAssertFalse(migrate.out.contains(server.password), "the password never shows")

        let again = try gatehouse(["store", "migrate", "--config", config])
        XCTAssertEqual(again.status, 0, again.out + again.err)
        XCTAssertTrue(again.out.contains("schema version \(Schema.latestVersion): already current, nothing to apply"), again.out)

        let status = try gatehouse(["store", "status", "--config", config])
        XCTAssertEqual(status.status, 0, status.out + status.err)
        XCTAssertTrue(status.out.contains("schema version \(Schema.latestVersion): this build (schema version \(Schema.latestVersion)) runs on it"), status.out)

        // --url with --password-file names the same database without a configuration file.
        let byURL = try gatehouse(["store", "status", "--url", try bareURL(database), "--password-file", "\(directory)/db-password"])
        XCTAssertEqual(byURL.status, 0, byURL.out + byURL.err)
        let wrong = try gatehouse(["store", "status", "--url", server.url(database, password: "not-the-password")])
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.err.contains("SQLSTATE 28P01 invalid_password"), wrong.err)
        let both = try gatehouse(["store", "status", "--config", config, "--url", try bareURL(database)])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.err.contains("give one of --config F or --url URL"), both.err)
    }

    func testStatusAndMigrateRefuseALocalStore() throws {
        let path = "\(directory)/local.yaml"
        try "listen: [\"127.0.0.1:2222\"]\n".write(toFile: path, atomically: true, encoding: .utf8)
        for command in ["status", "migrate"] {
            let r = try gatehouse(["store", command, "--config", path])
            XCTAssertEqual(r.status, 1)
            XCTAssertTrue(r.err.contains("\(path): the store is local (no `store: {kind: postgres, url: …}` section): there is no database to work on"), r.err)
        }
    }

    /// A database migrated by a newer Gatehouse (a schema_migrations row past this build's):
    /// `store status` and `store migrate` say so, and `serve` refuses to start.
    func testNewerSchemaIsRefusedEverywhere() throws {
        let server = try server
        let database = try server.createDatabase()
        let config = try writeConfiguration(url: try bareURL(database))
        XCTAssertEqual(try gatehouse(["store", "migrate", "--config", config]).status, 0)
        let future = Schema.latestVersion + 1
        try server.psql(database, "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(future), 'from the future', 'x')")
        let message = "the database schema is at version \(future), newer than this build knows (\(Schema.latestVersion)): a newer Gatehouse migrated it"

        let status = try gatehouse(["store", "status", "--config", config])
        XCTAssertEqual(status.status, 1)
        XCTAssertTrue(status.err.contains("schema check on PostgreSQL 127.0.0.1:\(server.port)/\(database): " + message), status.err)
        let migrate = try gatehouse(["store", "migrate", "--config", config])
        XCTAssertEqual(migrate.status, 1)
        XCTAssertTrue(migrate.err.contains(message), migrate.err)

        let refusal = try refusedStart(config)
        XCTAssertTrue(refusal.contains("state store: schema check on PostgreSQL 127.0.0.1:\(server.port)/\(database): " + message), refusal)
        XCTAssertTrue(refusal.contains("refusing to start"), refusal)
    }

    func testServeRefusesAnUnmigratedDatabase() throws {
        let database = try server.createDatabase()
        let refusal = try refusedStart(try writeConfiguration(url: try bareURL(database)))
        XCTAssertTrue(refusal.contains("the database has no Gatehouse schema (no schema_migrations table); this build needs schema version \(Schema.latestVersion): run `gatehouse store migrate` first"), refusal)
    }

    /// Nothing listens on the store's port: the refusal says the store is unreachable, why
    /// (connection refused), and comes within the store's deadline.
    func testServeRefusesAnUnreachableStore() throws {
        let port = try freePort()
        let config = try writeConfiguration(url: "postgres://gatehouse@127.0.0.1:\(port)/gatehouse", passwordFile: false)
        let start = ContinuousClock.now
        let refusal = try refusedStart(config)
        print("serve refused an unreachable store in \(elapsed(since: start)) s")
        XCTAssertTrue(refusal.contains("state store: schema check on PostgreSQL 127.0.0.1:\(port)/gatehouse: the state store is unreachable: cannot connect"), refusal)
        XCTAssertTrue(refusal.contains("Connection refused"), refusal)
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(15))
    }

    func testServeStartsOnItsSchema() throws {
        let server = try server
        let database = try server.createDatabase()
        let port = try freePort()
        let config = try writeConfiguration(url: try bareURL(database), port: port)
        XCTAssertEqual(try gatehouse(["store", "migrate", "--config", config]).status, 0)
        let serve = try Child(Self.gatehouse, ["serve", "--config", config])
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("gatehouse: listening on") {
            let chunk = serve.stdout.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
        }
        kill(serve.pid, SIGTERM)
        XCTAssertEqual(serve.wait(timeout: 20), 0)
        let out = String(decoding: seen, as: UTF8.self)
        XCTAssertTrue(out.contains("store: postgres://gatehouse:***@127.0.0.1:\(server.port)/\(database) (tls off), schema version \(Schema.latestVersion)"), out)
        XCTAssertTrue(out.contains("gatehouse: listening on 127.0.0.1:\(port)"), out)
        // The first replica created the CA store and published it, sealed; its audit records
        // are in the database's chain, none in the state directory's file.
        XCTAssertEqual(try server.psql(database, "SELECT count(*) FROM shared_files"), "8")
        XCTAssertEqual(try server.psql(database, "SELECT string_agg(action, ',' ORDER BY seq) FROM audit_events"),
                       "ca.init,ca.init,ca.init,ca.init,server.start,server.stop")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory)/state/audit.log"))
    }

    func testServeWithoutTheKeyEncryptionKeyRefusesToStart() throws {
        let server = try server
        let database = try server.createDatabase()
        let config = try writeConfiguration(url: try bareURL(database))
        XCTAssertEqual(try gatehouse(["store", "migrate", "--config", config]).status, 0)
        var text = try String(contentsOfFile: config, encoding: .utf8)
        text = text.split(separator: "\n").filter { !$0.contains("key_encryption_key_file") }.joined(separator: "\n") + "\n"
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        let refusal = try refusedStart(config)
        XCTAssertTrue(refusal.contains("store.key_encryption_key_file"), refusal)
        XCTAssertEqual(try server.psql(database, "SELECT count(*) FROM shared_files"), "0")
    }

    /// `audit verify --config F` verifies the database's one chain when the store is PostgreSQL,
    /// names the first edited row, and reads STATE/audit.log when the store is local.
    func testAuditVerifyReadsTheDatabaseChain() async throws {
        let (store, database) = try await makeStore()
        let log = PostgresAuditLog(store: store)
        for i in 1...3 {
            _ = try await log.append(AuditEvent(actor: "agent-\(i)", action: "session.open", object: "web-01", outcome: .success, details: ["n": String(i)]))
        }
        let head = try await log.head()
        let config = try writeConfiguration(url: try bareURL(database))
        let intact = try gatehouse(["audit", "verify", "--config", config])
        XCTAssertEqual(intact.status, 0, intact.out + intact.err)
        XCTAssertTrue(intact.out.hasSuffix("audit log intact: 3 line(s), last line hash \(head.hash)\n"), intact.out)

        try server.psql(database, "ALTER TABLE audit_events DISABLE TRIGGER USER; UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
        let broken = try gatehouse(["audit", "verify", "--config", config])
        XCTAssertEqual(broken.status, 1, broken.out + broken.err)
        XCTAssertTrue(broken.out.contains("audit log broken at line 2: the row's content does not match its hash (edited)"), broken.out)

        // A local store: the file under the configuration's state directory.
        try FileManager.default.createDirectory(atPath: "\(directory)/local-state", withIntermediateDirectories: true)
        _ = try AuditLog(path: "\(directory)/local-state/audit.log").append(AuditEvent(actor: "a", action: "b", object: "c", outcome: .success))
        let local = "\(directory)/local.yaml"
        try "state: \(directory)/local-state\n".write(toFile: local, atomically: true, encoding: .utf8)
        let file = try gatehouse(["audit", "verify", "--config", local])
        XCTAssertEqual(file.status, 0, file.out + file.err)
        XCTAssertTrue(file.out.hasPrefix("audit log intact: 1 line(s)"), file.out)
        let both = try gatehouse(["audit", "verify", "--config", local, "--state", directory])
        XCTAssertNotEqual(both.status, 0)
    }

    func testServeCheckRefusesABadURLAtItsPosition() throws {
        let path = "\(directory)/bad.yaml"
        try """
        listen: ["127.0.0.1:2222"]
        store:
          kind: postgres
          url: postgres://gatehouse@127.0.0.1:5432/
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try gatehouse(["serve", "--check", "--config", path])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.err, "Error: \(path):4:8: store.url: the store URL names no database (expected postgres://gatehouse@127.0.0.1:5432/database)\n")

        let good = "\(directory)/good.yaml"
        try "listen: [\"127.0.0.1:2222\"]\nstore: {kind: postgres, url: \"postgres://gatehouse@db.internal/state\", tls: require}\n"
            .write(toFile: good, atomically: true, encoding: .utf8)
        let ok = try gatehouse(["serve", "--check", "--config", good])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertTrue(ok.out.hasSuffix("; store postgres postgres://gatehouse@db.internal:5432/state (tls require)\n"), ok.out)
        let local = try gatehouse(["serve", "--check", "--config", "\(directory)/none.yaml"])
        XCTAssertNotEqual(local.status, 0, "a missing file is an error, as before")
    }

    /// Starts `serve --config config`, expects it to exit non-zero within 30 s without ever
    /// accepting a TCP connection on its listen address or creating its state, and returns
    /// what it printed (stdout and stderr).
    func refusedStart(_ config: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let text = try String(contentsOfFile: config, encoding: .utf8)
        guard let range = text.range(of: #"127\.0\.0\.1:(\d+)"#, options: .regularExpression),
              let port = Int(text[range].split(separator: ":")[1]) else { throw PostgresServer.Failure("no listen port in \(config)") }
        let serve = try Child(Self.gatehouse, ["serve", "--config", config])
        var listened = false
        var status: Int32?
        let until = Date().addingTimeInterval(30)
        while Date() < until {
            var raw: Int32 = 0
            if waitpid(serve.pid, &raw, WNOHANG) == serve.pid {
                status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                break
            }
            if accepts(port) { listened = true }
            usleep(50_000)
        }
        if status == nil { kill(serve.pid, SIGKILL); _ = serve.wait() }
        let out = String(decoding: serve.stdout.readDataToEndOfFile(), as: UTF8.self)
        let err = String(decoding: serve.stderr.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotNil(status, "serve did not exit within 30 s: \(out) \(err)", file: file, line: line)
        XCTAssertNotEqual(status, 0, file: file, line: line)
        XCTAssertFalse(listened, "serve accepted a connection on 127.0.0.1:\(port) before refusing", file: file, line: line)
        XCTAssertFalse(out.contains("listening"), out, file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory)/state"), "a refused start creates no CA store", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(directory)/hostkeys"), "nor host keys", file: file, line: line)
        return out + err
    }

    /// Whether something accepts TCP connections on 127.0.0.1:port.
    func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
