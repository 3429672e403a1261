import Foundation
import PostgresNIO
import Synchronization

/// The `jti` replay cache shared by replicas: a token's (issuer, jti) is accepted once until
/// it expires, whichever replica sees it.
///
/// A claim is one `INSERT … ON CONFLICT` on the primary key (issuer, jti), never a read then a
/// write: of two replicas claiming one jti at the same instant, PostgreSQL makes the second
/// insert wait for the first and then conflict. A row whose expiry has passed is taken over in
/// the same statement (an issuer that reuses a jti after its token expired is not a replay,
/// as in the in-memory cache). Expired rows are pruned at most once a `pruneInterval` by the
/// claims themselves, in a separate statement, so a claim stays one round trip.
public final class TokenReplayCache: Sendable {
    public let store: PostgresStore
    public let pruneInterval: TimeInterval
    private let lastPrune = Mutex<Date>(.distantPast)

    public init(store: PostgresStore, pruneInterval: TimeInterval = 60) {
        self.store = store
        self.pruneInterval = pruneInterval
    }

    /// True the first time (issuer, jti) is claimed while unexpired; false on a replay.
    /// `expiresAt` is the token's expiry plus the allowed skew.
    public func claim(issuer: String, jti: String, expiresAt: Date, now: Date = Date()) async throws(StateStoreError) -> Bool {
        let operation = "jti claim"
        try requireNoNUL(["issuer": issuer, "jti": jti], operation: operation, endpoint: store.endpoint)
        let rows = try await store.query(operation, """
            INSERT INTO token_jti AS t (issuer, jti, expires_at) VALUES (\(issuer), \(jti), \(expiresAt))
            ON CONFLICT (issuer, jti) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE t.expires_at <= \(now)
            RETURNING true
            """)
        let due = lastPrune.withLock { last in
            guard now.timeIntervalSince(last) >= pruneInterval else { return false }
            last = now
            return true
        }
        if due { _ = try? await prune(now: now) }
        return !rows.isEmpty
    }

    /// Deletes the rows that expired by `now`; returns how many.
    @discardableResult
    public func prune(now: Date = Date()) async throws(StateStoreError) -> Int {
        let rows = try await store.query("jti prune", "WITH gone AS (DELETE FROM token_jti WHERE expires_at <= \(now) RETURNING 1) SELECT count(*) FROM gone")
        do { return try rows.first?.decode(Int.self) ?? 0 } catch { throw StateStoreError.from(error, operation: "jti prune", endpoint: store.endpoint) }
    }
}
