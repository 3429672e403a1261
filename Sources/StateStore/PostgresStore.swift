import Foundation
import Logging
import NIOSSL
import PostgresNIO

/// The shared state store on PostgreSQL: postgres-nio's connection pool (`PostgresClient`) with
/// a deadline on every operation and errors that say what failed (`StateStoreError`).
///
/// The pool needs a task running its `run()`; the store starts one and `shutdown()` ends it
/// (a long-lived server calls it when it stops; tests call it in tearDown). Every operation
/// names itself, so an error reads "audit append on PostgreSQL host:5432/db: …".
public final class PostgresStore: Sendable {
    public let configuration: PostgresStoreConfiguration
    /// How long an operation may wait, for a connection from the pool included. Without it a
    /// request waits while the pool retries a dead server (postgres-nio's circuit breaker trips
    /// after 60 s); with it a login is refused quickly with "the state store is unreachable".
    public let operationTimeout: Duration
    let client: PostgresClient
    let logger: Logger
    /// For `diagnosis`: one direct connection outside the pool.
    let probeConfiguration: PostgresConnection.Configuration
    private let runner: Task<Void, Never>

    public init(configuration: PostgresStoreConfiguration, operationTimeout: Duration = .seconds(5),
                maximumConnections: Int = 10, logger: Logger = Logger(label: "gatehouse.store")) throws(StateStoreError) {
        self.configuration = configuration
        self.operationTimeout = operationTimeout
        self.logger = logger
        let tls: PostgresClient.Configuration.TLS
        var tlsSettings: TLSConfiguration?
        switch configuration.tls {
        case .off:
            tls = .disable
        case .require:
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.certificateVerification = .fullVerification
            if let path = configuration.rootCertificatePath {
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw StateStoreError(operation: "store configuration", endpoint: configuration.endpoint,
                                          kind: .configuration("cannot read the TLS root certificate \(path)"))
                }
                settings.trustRoots = .file(path)
            }
            tls = .require(settings)
            tlsSettings = settings
        }
        var settings = PostgresClient.Configuration(host: configuration.host, port: configuration.port, username: configuration.username,
                                                   password: configuration.password, database: configuration.database, tls: tls)
        settings.options.maximumConnections = max(1, maximumConnections)
        settings.options.connectTimeout = operationTimeout
        settings.options.additionalStartupParameters = [("application_name", "gatehouse")]
        do {
            var probe = PostgresConnection.Configuration(host: configuration.host, port: configuration.port, username: configuration.username,
                                                         password: configuration.password, database: configuration.database,
                                                         tls: try tlsSettings.map { .require(try NIOSSLContext(configuration: $0)) } ?? .disable)
            probe.options.connectTimeout = .seconds(3)
            probeConfiguration = probe
        } catch {
            throw StateStoreError(operation: "store configuration", endpoint: configuration.endpoint, kind: .configuration("TLS: \(error)"))
        }
        let client = PostgresClient(configuration: settings, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
    }

    /// Closes every connection and stops the pool. Operations after it fail.
    public func shutdown() async {
        runner.cancel()
        await runner.value
    }

    var endpoint: String { configuration.endpoint }

    // MARK: Running statements

    /// Runs `work` under the store's deadline and maps whatever it throws to a `StateStoreError`
    /// naming `operation`. The deadline cancels the wait for a pooled connection; a statement
    /// already sent finishes or fails on its own (postgres-nio does not cancel it).
    func run<T: Sendable>(_ operation: String, _ work: @escaping @Sendable () async throws -> T) async throws(StateStoreError) -> T {
        let timeout = operationTimeout
        do {
            return try await withThrowingTaskGroup(of: T?.self) { group in
                group.addTask { try await work() }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let value = first else {
                    throw await diagnosis(operation)
                }
                return value
            }
        } catch {
            throw StateStoreError.from(error, operation: operation, endpoint: endpoint)
        }
    }

    /// Why no connection came within the deadline. The pool keeps retrying a server that
    /// refuses connections (wrong password, no TLS, nothing listening) and never hands the
    /// reason to the waiting request, so one direct connection, bounded too, finds it out:
    /// "password authentication failed (SQLSTATE 28P01)" instead of only "timed out". If that
    /// connection succeeds the pool was merely busy, and the deadline is the answer.
    func diagnosis(_ operation: String) async -> StateStoreError {
        let (s, a) = operationTimeout.components
        let timedOut = StateStoreError(operation: operation, endpoint: endpoint, kind: .timeout(seconds: Double(s) + Double(a) / 1e18))
        let configuration = probeConfiguration
        let logger = logger
        do {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
                    try? await connection.close()
                    return true
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(3))
                    return false
                }
                defer { group.cancelAll() }
                _ = try await group.next()
            }
            return timedOut
        } catch {
            return StateStoreError.from(error, operation: operation, endpoint: endpoint)
        }
    }

    /// One statement outside a transaction; all its rows.
    func query(_ operation: String, _ query: PostgresQuery) async throws(StateStoreError) -> [PostgresRow] {
        try await run(operation) { [client, logger] in
            try await client.query(query, logger: logger).collect()
        }
    }

    /// `body` inside `BEGIN ISOLATION LEVEL READ COMMITTED … COMMIT` on one pooled connection,
    /// rolled back if it throws. READ COMMITTED is stated, not left to the server's default:
    /// the audit append reads the chain head *after* its advisory lock is granted, and only
    /// READ COMMITTED gives that statement a snapshot taken after the previous holder committed
    /// (REPEATABLE READ would freeze the snapshot at the lock statement, before the wait).
    func transaction<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T) async throws(StateStoreError) -> T {
        try await run(operation) { [client, logger] in
            try await client.withConnection { connection in
                try await connection.query("BEGIN ISOLATION LEVEL READ COMMITTED", logger: logger)
                let value: T
                do {
                    value = try await body(connection, logger)
                } catch {
                    do { try await connection.query("ROLLBACK", logger: logger) } catch {
                        // A connection that cannot roll back must not go back to the pool mid-transaction.
                        try? await connection.close()
                    }
                    throw error
                }
                do {
                    try await connection.query("COMMIT", logger: logger)
                } catch {
                    try? await connection.close()
                    throw error
                }
                return value
            }
        }
    }
}

extension PostgresConnection {
    /// Every row of `query` (the statements here return a handful).
    func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> [PostgresRow] {
        try await self.query(query, logger: logger).collect()
    }
}

/// PostgreSQL `text` cannot hold U+0000; a value with it is refused before it is sent, with the
/// field named (the server would only say "invalid byte sequence").
func requireNoNUL(_ values: KeyValuePairs<String, String>, operation: String, endpoint: String) throws(StateStoreError) {
    for (name, value) in values where value.utf8.contains(0) {
        throw StateStoreError(operation: operation, endpoint: endpoint,
                              kind: .data("\(name) contains a NUL character, which PostgreSQL text cannot hold"))
    }
}
