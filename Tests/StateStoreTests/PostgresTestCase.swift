import ServerFixtures
import Foundation
import Logging
import XCTest
@testable import StateStore

/// Test classes that share one PostgreSQL server across their tests (started in the class's
/// setUp, stopped by pid in its tearDown); each test works in a database of its own.
class PostgresTestCase: XCTestCase {
    nonisolated(unsafe) static var shared: PostgresServer?
    nonisolated(unsafe) static var startFailure: String?

    var server: PostgresServer {
        get throws {
            guard let server = Self.shared else { throw PostgresServer.Failure(Self.startFailure ?? "no PostgreSQL server") }
            return server
        }
    }

    override class func setUp() {
        super.setUp()
        let started = Date()
        do {
            shared = try PostgresServer()
            print("PostgreSQL 15 started on 127.0.0.1:\(shared!.port) (pid \(shared!.pid)) in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        } catch {
            startFailure = "\(error)"
        }
    }

    override class func tearDown() {
        shared?.stop()
        shared = nil
        super.tearDown()
    }

    /// A store on a new database (migrated unless told otherwise), shut down after the test.
    func makeStore(database: String? = nil, migrated: Bool = true, url: String? = nil,
                   timeout: Duration = .seconds(10), connections: Int = 10) async throws -> (PostgresStore, String) {
        let server = try server
        let name = try database ?? server.createDatabase()
        let configuration = try PostgresStoreConfiguration(url: url ?? server.url(name))
        // The pool logs every failed connection attempt at info; the tests assert on errors instead.
        var logger = Logger(label: "gatehouse.store.test")
        logger.logLevel = .error
        let store = try PostgresStore(configuration: configuration, operationTimeout: timeout, maximumConnections: connections, logger: logger)
        addTeardownBlock { await store.shutdown() }
        if migrated { try await store.migrate() }
        return (store, name)
    }

    func elapsed(since start: ContinuousClock.Instant) -> String {
        let d = ContinuousClock.now - start
        return String(format: "%.2f", Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
    }

    /// Runs `body` and returns the StateStoreError it threw (fails the test if it threw none).
    func storeError(_ body: () async throws -> Void, file: StaticString = #filePath, line: UInt = #line) async -> StateStoreError? {
        do {
            try await body()
            XCTFail("expected a StateStoreError", file: file, line: line)
        } catch let error as StateStoreError {
            return error
        } catch {
            XCTFail("expected a StateStoreError, got \(error)", file: file, line: line)
        }
        return nil
    }
}
