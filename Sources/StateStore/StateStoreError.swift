import Foundation
import PostgresNIO

/// Why a state store operation failed, stated precisely: which operation, on which server, and
/// what PostgreSQL said (its SQLSTATE and message), not postgres-nio's deliberately vague
/// "PSQLError – Generic description". The text is for operators and logs; it holds no password.
public struct StateStoreError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The store's URL or options are wrong (nothing was sent).
        case configuration(String)
        /// PostgreSQL refused: its SQLSTATE (e.g. "23505"), message and detail.
        case server(sqlState: String, message: String, detail: String?)
        /// No answer from PostgreSQL: connection refused or lost, TLS or protocol failure.
        case unreachable(String)
        /// No connection (or answer) within the store's deadline.
        case timeout(seconds: Double)
        /// The database's schema is not the one this build runs on.
        case schema(SchemaMismatch)
        /// A value cannot be stored, or a stored row is not what this build wrote.
        case data(String)
    }

    /// What was being done, in words ("audit append", "schema check", "jti claim").
    public let operation: String
    /// `host:port/database` of the store (empty before one is configured).
    public let endpoint: String
    public let kind: Kind

    public init(operation: String, endpoint: String, kind: Kind) {
        self.operation = operation
        self.endpoint = endpoint
        self.kind = kind
    }

    /// The server's SQLSTATE when PostgreSQL refused the statement.
    public var sqlState: String? {
        if case .server(let state, _, _) = kind { return state }
        return nil
    }

    public var description: String {
        let at = endpoint.isEmpty ? "" : " on PostgreSQL \(endpoint)"
        switch kind {
        case .configuration(let text):
            return "\(operation): \(text)"
        case .server(let state, let message, let detail):
            let name = Self.conditionNames[state].map { " \($0)" } ?? ""
            return "\(operation)\(at): PostgreSQL refused it (SQLSTATE \(state)\(name)): \(message)" + (detail.map { " (\($0))" } ?? "")
        case .unreachable(let text):
            return "\(operation)\(at): the state store is unreachable: \(text)"
        case .timeout(let seconds):
            return "\(operation)\(at): no answer within \(Self.format(seconds)) s (the state store is unreachable, or every connection is busy)"
        case .schema(let mismatch):
            return "\(operation)\(at): \(mismatch)"
        case .data(let text):
            return "\(operation)\(at): \(text)"
        }
    }

    static func format(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.1f", seconds)
    }

    /// Names of the conditions an operator is likely to meet (PostgreSQL's appendix A).
    static let conditionNames: [String: String] = [
        "23505": "unique_violation", "23514": "check_violation", "23502": "not_null_violation",
        "40001": "serialization_failure", "40P01": "deadlock_detected", "55P03": "lock_not_available",
        "57014": "query_canceled", "57P01": "admin_shutdown", "57P03": "cannot_connect_now",
        "53300": "too_many_connections", "28P01": "invalid_password", "28000": "invalid_authorization_specification",
        "3D000": "invalid_catalog_name", "42P01": "undefined_table", "42501": "insufficient_privilege",
        "22021": "character_not_in_repertoire", "25006": "read_only_sql_transaction", "P0001": "raise_exception",
    ]

    /// Maps whatever postgres-nio (or the pool, or a deadline) threw to the precise error.
    static func from(_ error: any Error, operation: String, endpoint: String) -> StateStoreError {
        if let error = error as? StateStoreError { return error }
        if let error = error as? PostgresTransactionError {
            // The first thing that went wrong is the cause; a failed rollback after it is not.
            if let cause = error.beginError ?? error.closureError ?? error.commitError ?? error.rollbackError {
                return from(cause, operation: operation, endpoint: endpoint)
            }
        }
        if let error = error as? PSQLError {
            if let info = error.serverInfo, let state = info[.sqlState] {
                return StateStoreError(operation: operation, endpoint: endpoint,
                                       kind: .server(sqlState: state, message: info[.message] ?? "", detail: info[.detail]))
            }
            var text: String
            switch error.code {
            case .sslUnsupported: text = "the server does not offer TLS, and this store requires it (tls: require)"
            case .connectionError: text = "cannot connect"
            case .serverClosedConnection: text = "the server closed the connection"
            case .clientClosedConnection: text = "the connection was closed"
            case .poolClosed: text = "the store is shut down"
            case .queryCancelled: text = "the statement was cancelled"
            case .authMechanismRequiresPassword: text = "the server asks for a password and the store's URL has none"
            case .unsupportedAuthMechanism: text = "the server asks for an authentication method postgres-nio does not support"
            default: text = "\(error.code)"
            }
            if let underlying = error.underlying { text += ": \(underlying)" }
            return StateStoreError(operation: operation, endpoint: endpoint, kind: .unreachable(text))
        }
        if let error = error as? PostgresDecodingError {
            return StateStoreError(operation: operation, endpoint: endpoint,
                                   kind: .data("a column is not of the type this build expects (column \(error.columnName): \(error.code) decoding \(error.targetType) from \(error.postgresType))"))
        }
        if let passed = error as? BlockingConnection.DeadlinePassed {
            return StateStoreError(operation: operation, endpoint: endpoint, kind: .timeout(seconds: passed.seconds))
        }
        if error is CancellationError {
            return StateStoreError(operation: operation, endpoint: endpoint, kind: .unreachable("the operation was cancelled"))
        }
        return StateStoreError(operation: operation, endpoint: endpoint, kind: .unreachable(String(describing: error)))
    }
}

/// How the database's schema differs from the one this build was written for. Each case says
/// what to run.
public enum SchemaMismatch: Sendable, Equatable, CustomStringConvertible {
    /// No `schema_migrations` table: `gatehouse store migrate` was never run on this database.
    case notInitialised(expected: Int)
    /// Migrations this build knows are missing from the database.
    case older(database: Int, expected: Int)
    /// The database was migrated past what this build knows (by a newer Gatehouse).
    case newer(database: Int, expected: Int)
    /// A migration with this number was applied from different SQL than this build's.
    case modified(version: Int)

    public var description: String {
        switch self {
        case .notInitialised(let expected):
            return "the database has no Gatehouse schema (no schema_migrations table); this build needs schema version \(expected): run `gatehouse store migrate` first"
        case .older(let database, let expected):
            return "the database schema is at version \(database), older than this build needs (\(expected)): run `gatehouse store migrate` with this build, then start it"
        case .newer(let database, let expected):
            return "the database schema is at version \(database), newer than this build knows (\(expected)): a newer Gatehouse migrated it; run that version on this replica (schemas are never migrated down)"
        case .modified(let version):
            return "schema migration \(version) in the database was applied from different SQL than this build's: the database was migrated by another build; refusing to run on a schema this build did not write"
        }
    }
}
