import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// One PostgreSQL connection for callers that must block: the SSH front's connection threads,
/// the issuance audit queue, the CLI. Each call waits on postgres-nio's event-loop futures
/// with a deadline, never on Swift's cooperative pool, so a thread of that pool blocked here
/// (an approval written from an HTTP handler) cannot starve the work that would wake it.
///
/// One caller at a time holds the connection (a transaction is a sequence of statements on one
/// connection). Any failure closes it; the next call connects again, so a database that went
/// away and came back is used again without a restart.
public final class BlockingConnection: Sendable {
    public let endpoint: String
    public let timeout: Duration
    let configuration: PostgresConnection.Configuration
    let logger: Logger
    private let current = Mutex<PostgresConnection?>(nil)
    private let turn = Mutex(())

    public init(store configuration: PostgresStoreConfiguration, timeout: Duration = .seconds(5),
                logger: Logger = Logger(label: "gatehouse.store")) throws(StateStoreError) {
        endpoint = configuration.endpoint
        self.timeout = timeout
        self.logger = logger
        self.configuration = try configuration.connectionConfiguration(connectTimeout: timeout)
    }

    /// A statement of a `run` or `transaction` body.
    public struct Session {
        let connection: PostgresConnection
        let deadline: TimeAmount
        let logger: Logger

        /// Runs one statement and returns its rows, within the connection's deadline.
        @discardableResult
        public func query(_ query: PostgresQuery) throws -> PostgresQueryResult {
            try BlockingConnection.wait(connection.query(query, logger: logger), within: deadline)
        }
    }

    /// Runs `body`'s statements on the connection, each under the deadline.
    public func run<T>(_ operation: String, _ body: (Session) throws -> T) throws(StateStoreError) -> T {
        do {
            return try turn.withLock { _ in
                let session = Session(connection: try connection(), deadline: deadline, logger: logger)
                do {
                    return try body(session)
                } catch {
                    // A statement the server refused leaves the connection usable (outside a
                    // transaction; `transaction` rolls back first). Anything else (a deadline,
                    // a lost connection) leaves it in an unknown state: closed.
                    if !Self.isServerRefusal(error) { drop() }
                    throw error
                }
            }
        } catch let error as StateStoreError {
            throw error
        } catch {
            throw StateStoreError.from(error, operation: operation, endpoint: endpoint)
        }
    }

    /// `body` in one READ COMMITTED transaction, committed when it returns. On a refusal by the
    /// server the transaction is rolled back; on any other failure the connection is closed,
    /// which rolls it back too.
    public func transaction<T>(_ operation: String, _ body: (Session) throws -> T) throws(StateStoreError) -> T {
        try run(operation) { session in
            try session.query("BEGIN ISOLATION LEVEL READ COMMITTED")
            do {
                let value = try body(session)
                try session.query("COMMIT")
                return value
            } catch {
                if Self.isServerRefusal(error) {
                    do { try session.query("ROLLBACK") } catch { throw Unusable(cause: error) }
                }
                throw error
            }
        }
    }

    /// A failed rollback: the connection must be closed, whatever the first error was.
    struct Unusable: Error {
        let cause: any Error
    }

    /// PostgreSQL answered with an error for the statement (it has a SQLSTATE).
    static func isServerRefusal(_ error: any Error) -> Bool {
        if let error = error as? StateStoreError { return error.sqlState != nil }
        return (error as? PSQLError)?.serverInfo?[.sqlState] != nil
    }

    deinit {
        // postgres-nio requires a connection to be closed before it is released.
        drop()
    }

    /// Closes the connection (the next call opens a new one).
    public func close() {
        turn.withLock { _ in drop() }
    }

    private var deadline: TimeAmount {
        let (seconds, attoseconds) = timeout.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    private func connection() throws -> PostgresConnection {
        if let open = current.withLock({ $0 }), !open.isClosed { return open }
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        let opened = try Self.wait(PostgresConnection.connect(on: loop, configuration: configuration, id: 0, logger: logger), within: deadline)
        current.withLock { $0 = opened }
        return opened
    }

    private func drop() {
        let open = current.withLock { c -> PostgresConnection? in
            defer { c = nil }
            return c
        }
        if let open { _ = try? Self.wait(open.close(), within: .seconds(1)) }
    }

    struct DeadlinePassed: Error {
        let seconds: Double
    }

    /// The future's value, or `DeadlinePassed` when it has none within `deadline`.
    static func wait<T: Sendable>(_ future: EventLoopFuture<T>, within deadline: TimeAmount) throws -> T {
        let promise = future.eventLoop.makePromise(of: T.self)
        future.cascade(to: promise)
        let timer = future.eventLoop.scheduleTask(in: deadline) {
            promise.fail(DeadlinePassed(seconds: Double(deadline.nanoseconds) / 1e9))
        }
        promise.futureResult.whenComplete { _ in timer.cancel() }
        return try promise.futureResult.wait()
    }
}
