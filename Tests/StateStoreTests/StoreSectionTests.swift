import ConfigurationSupport
import Foundation
import XCTest
@testable import StateStore

/// The configuration file's `store:` section: strict, every mistake at file:line:column.
final class StoreSectionTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "gatehouse-store-section-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func parse(_ yaml: String) throws -> StoreConfiguration {
        try StoreConfiguration.parse(yaml: yaml, file: "g.yaml")
    }

    func refused(_ yaml: String, _ expected: String, line: UInt = #line) {
        XCTAssertThrowsError(try parse(yaml), line: line) { error in
            guard let error = error as? ConfigurationError else { return XCTFail("not a ConfigurationError: \(error)", line: line) }
            XCTAssertEqual("\(error)", expected, line: line)
        }
    }

    func testDefaultIsLocal() throws {
        XCTAssertEqual(try parse("listen: [\"127.0.0.1:2222\"]\n"), .local)
        XCTAssertEqual(try parse(""), .local)
        XCTAssertEqual(try parse("store: {kind: local}\n"), .local)
    }

    func testPostgres() throws {
        let c = try parse("""
            store:
              kind: postgres
              url: postgres://gatehouse@db.internal:5433/state
              tls: require
            """)
        XCTAssertEqual(c, .postgres(PostgresStoreConfiguration(host: "db.internal", port: 5433, username: "gatehouse", database: "state", tls: .require)))
        XCTAssertEqual("\(c)", "postgres postgres://gatehouse@db.internal:5433/state (tls require)")
        // tls may restate the URL's sslmode.
        XCTAssertNoThrow(try parse("store: {kind: postgres, url: \"postgres://u@h/db?sslmode=disable\", tls: off}"))
    }

    func testPasswordFile() throws {
        let path = "\(directory)/password"
        try "s3cret!\n".write(toFile: path, atomically: true, encoding: .utf8)
        let c = try parse("store: {kind: postgres, url: \"postgres://u@h/db\", password_file: \(path)}")
        guard case .postgres(let p) = c else { return XCTFail("\(c)") }
        XCTAssertEqual(p.password, "s3cret!", "the first line, without its line ending")
        XCTAssertFalse("\(c)".contains("s3cret"), "the password never shows")

        refused("store: {kind: postgres, url: \"postgres://u:p@h/db\", password_file: \(path)}",
                "g.yaml:1:68: store.password_file: the URL carries a password too: give it in one place (password_file keeps it out of the configuration file)")
        refused("store: {kind: postgres, url: \"postgres://u@h/db\", password_file: \(directory)/none}",
                "g.yaml:1:66: store.password_file: cannot read the password file \(directory)/none")
        try "".write(toFile: path, atomically: true, encoding: .utf8)
        refused("store: {kind: postgres, url: \"postgres://u@h/db\", password_file: \(path)}",
                "g.yaml:1:66: store.password_file: the password file \(path) is empty")
        try "one\ntwo\n".write(toFile: path, atomically: true, encoding: .utf8)
        refused("store: {kind: postgres, url: \"postgres://u@h/db\", password_file: \(path)}",
                "g.yaml:1:66: store.password_file: the password file \(path) holds more than one line")
    }

    func testMistakesNameFileLineColumnAndKey() {
        refused("store:\n  url: postgres://u@h/db\n", "g.yaml:2:3: store.kind: is required: local or postgres")
        refused("store: {kind: sqlite}\n", "g.yaml:1:15: store.kind: \"sqlite\" is not a store kind: local or postgres")
        refused("store: {kind: local, url: \"postgres://u@h/db\"}\n",
                "g.yaml:1:22: store.url: unknown key (allowed: kind)")
        refused("store: {kind: postgres}\n",
                "g.yaml:1:8: store.url: is required with kind: postgres (postgres://user@host:5432/database)")
        refused("store: {kind: postgres, url: \"postgres://u@h/db\", tsl: off}\n",
                "g.yaml:1:51: store.tsl: unknown key (allowed: key_encryption_key_env, key_encryption_key_file, kind, password_file, tls, url)")
        refused("store:\n  kind: postgres\n  url: mysql://u@h/db\n",
                "g.yaml:3:8: store.url: the store URL's scheme is \"mysql\"; expected postgres:// (or postgresql://)")
        refused("store:\n  kind: postgres\n  url: postgres://h/db\n",
                "g.yaml:3:8: store.url: the store URL names no user (expected postgres://user@h/database): Gatehouse never guesses the database role")
        refused("store:\n  kind: postgres\n  url: postgres://u@h/db\n  tls: maybe\n", "g.yaml:4:8: store.tls: must be off or require")
        refused("store:\n  kind: postgres\n  url: \"postgres://u@h/db?sslmode=disable\"\n  tls: require\n",
                "g.yaml:4:8: store.tls: tls: require contradicts the store URL's sslmode (disable)")
        refused("store: [postgres]\n", "g.yaml:1:8: store: expected a mapping")
    }
}
