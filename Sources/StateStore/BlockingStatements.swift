import Foundation
import PostgresNIO

/// The shared state's statements for threads that block (the SSH front), over a
/// `BlockingConnection`: the same SQL as the pool-based `SessionBudgets` and `nextSerial`.
extension BlockingConnection {
    /// The next serial of `certificate_serials`.
    public func nextSerial() throws(StateStoreError) -> UInt64 {
        try run("certificate serial") { session in
            guard let serial = try session.query("SELECT nextval('certificate_serials')").first?.decode(Int64.self), serial >= 1 else {
                throw StateStoreError(operation: "certificate serial", endpoint: endpoint, kind: .data("nextval returned no serial"))
            }
            return UInt64(serial)
        }
    }

    /// One session from a certificate's budget (see `SessionBudgets.take`).
    public func takeSessionBudget(key: String, max: Int, expiresAt: Date, now: Date = Date()) throws(StateStoreError) -> SessionBudgetTake {
        let operation = "session budget take"
        guard key.utf8.count == 64, key.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw StateStoreError(operation: operation, endpoint: endpoint, kind: .data("the budget key is not a SHA-256 hex digest"))
        }
        guard now < expiresAt else { return .expired }
        guard max >= 1 else { return .exhausted(used: 0) }
        let limit = Int32(clamping: max)
        return try run(operation) { session in
            if let row = try session.query(SessionBudgets.takeStatement(key: key, limit: limit, expiresAt: expiresAt, now: now)).first {
                return .granted(used: try row.decode(Int.self))
            }
            guard let row = try session.query("SELECT used, expires_at FROM session_budgets WHERE key = \(key)").first else {
                throw StateStoreError(operation: operation, endpoint: endpoint, kind: .data("the budget was refused but has no row (pruned meanwhile?)"))
            }
            let (used, expires) = try row.decode((Int, Date).self)
            return expires <= now ? .expired : .exhausted(used: used)
        }
    }

    /// Deletes budgets whose certificates expired by `now`.
    public func pruneSessionBudgets(now: Date = Date()) throws(StateStoreError) {
        try run("session budget prune") { session in try session.query("DELETE FROM session_budgets WHERE expires_at <= \(now)") }
    }

    /// `SELECT 1`: the store answers.
    public func probe() throws(StateStoreError) {
        try run("store probe") { session in try session.query("SELECT 1") }
    }
}
