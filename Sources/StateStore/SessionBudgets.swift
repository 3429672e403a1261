import Foundation
import PostgresNIO

/// What a take from a certificate's session budget decided.
public enum SessionBudgetTake: Sendable, Equatable {
    /// Granted: `used` sessions so far, this one included.
    case granted(used: Int)
    /// Refused: the budget is spent.
    case exhausted(used: Int)
    /// Refused: the certificate (and so its budget) has expired.
    case expired
}

/// Per-certificate session budgets (`max-sessions@gatehouse`) shared by replicas: the
/// PostgreSQL counterpart of the bastion's `SessionBudgetLedger` (STATE/session-budgets).
///
/// A take is one atomic statement: insert the budget with `used = 1`, or on conflict add one
/// only `WHERE used < max_sessions` and the budget is unexpired, `RETURNING used`. No row back
/// means refused; the refusal is decided by that statement alone, and a second read only finds
/// out why (spent or expired) for the message.
public final class SessionBudgets: Sendable {
    public let store: PostgresStore

    public init(store: PostgresStore) {
        self.store = store
    }

    public func take(key: String, max: Int, expiresAt: Date, now: Date = Date()) async throws(StateStoreError) -> SessionBudgetTake {
        let operation = "session budget take"
        guard key.utf8.count == 64, key.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw StateStoreError(operation: operation, endpoint: store.endpoint, kind: .data("the budget key is not a SHA-256 hex digest"))
        }
        guard now < expiresAt else { return .expired }
        guard max >= 1 else { return .exhausted(used: 0) }
        let limit = Int32(clamping: max)
        let taken = try await store.query(operation, Self.takeStatement(key: key, limit: limit, expiresAt: expiresAt, now: now))
        do {
            if let row = taken.first { return .granted(used: try row.decode(Int.self)) }
            let current = try await store.query(operation, "SELECT used, expires_at FROM session_budgets WHERE key = \(key)")
            guard let row = current.first else {
                throw StateStoreError(operation: operation, endpoint: store.endpoint, kind: .data("the budget was refused but has no row (pruned meanwhile?)"))
            }
            let (used, expires) = try row.decode((Int, Date).self)
            return expires <= now ? .expired : .exhausted(used: used)
        } catch {
            throw StateStoreError.from(error, operation: operation, endpoint: store.endpoint)
        }
    }

    /// Deletes budgets whose certificates expired by `now`; returns how many.
    @discardableResult
    public func prune(now: Date = Date()) async throws(StateStoreError) -> Int {
        let rows = try await store.query("session budget prune", "WITH gone AS (DELETE FROM session_budgets WHERE expires_at <= \(now) RETURNING 1) SELECT count(*) FROM gone")
        do { return try rows.first?.decode(Int.self) ?? 0 } catch { throw StateStoreError.from(error, operation: "session budget prune", endpoint: store.endpoint) }
    }

    /// The atomic take: no row back means refused.
    static func takeStatement(key: String, limit: Int32, expiresAt: Date, now: Date) -> PostgresQuery {
        """
        INSERT INTO session_budgets AS b (key, max_sessions, used, expires_at) VALUES (\(key), \(limit), 1, \(expiresAt))
        ON CONFLICT (key) DO UPDATE SET used = b.used + 1
        WHERE b.used < b.max_sessions AND b.expires_at > \(now)
        RETURNING used
        """
    }
}
