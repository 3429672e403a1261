import Crypto
import Foundation
import PostgresNIO
import Synchronization

/// Issuance rate limits in `issuance_rate_limits`: the in-memory limiter's token bucket, one per
/// subject for every replica. A take is one statement: refill by the time since the row's last
/// update (the database's clock), and take a token only `WHERE` one is there, `RETURNING` what
/// is left; no row back means refused, and a second read only computes the retry time.
public final class SharedRateLimits: Sendable {
    public let store: PostgresStore
    public let perSecond: Double
    public let burst: Double
    private let lastPrune = Mutex<Date>(.distantPast)

    public init(store: PostgresStore, perMinute: Int, burst: Int) {
        self.store = store
        perSecond = Double(perMinute) / 60
        self.burst = Double(burst)
    }

    /// nil when allowed (a token taken); otherwise whole seconds until one is.
    public func take(_ subject: String, now: Date = Date()) async throws(StateStoreError) -> Int? {
        let operation = "rate limit take"
        let key = SHA256.hash(data: Array(subject.utf8)).map { String(format: "%02x", $0) }.joined()
        let (rate, burst) = (perSecond, self.burst)
        let taken = try await store.query(operation, """
            INSERT INTO issuance_rate_limits AS b (subject, tokens, updated_at) VALUES (\(key), \(burst - 1), now())
            ON CONFLICT (subject) DO UPDATE
              SET tokens = least(\(burst), b.tokens + extract(epoch FROM now() - b.updated_at) * \(rate)) - 1, updated_at = now()
              WHERE least(\(burst), b.tokens + extract(epoch FROM now() - b.updated_at) * \(rate)) >= 1
            RETURNING tokens
            """)
        if await pruneDue(now) { _ = try? await prune() }
        guard taken.isEmpty else { return nil }
        let rows = try await store.query(operation, """
            SELECT least(\(burst), tokens + extract(epoch FROM now() - updated_at) * \(rate))::double precision FROM issuance_rate_limits WHERE subject = \(key)
            """)
        do {
            let tokens = try rows.first?.decode(Double.self) ?? 0
            return max(1, Int(((1 - tokens) / rate).rounded(.up)))
        } catch {
            throw StateStoreError.from(error, operation: operation, endpoint: store.endpoint)
        }
    }

    private func pruneDue(_ now: Date) async -> Bool {
        lastPrune.withLock { last in
            guard now.timeIntervalSince(last) >= 60 else { return false }
            last = now
            return true
        }
    }

    /// Deletes buckets that are full again (refilled to `burst`): they hold nothing a new row
    /// would not.
    @discardableResult
    public func prune() async throws(StateStoreError) -> Int {
        let seconds = burst / perSecond
        let rows = try await store.query("rate limit prune", """
            WITH gone AS (DELETE FROM issuance_rate_limits WHERE updated_at < now() - make_interval(secs => \(seconds)) RETURNING 1)
            SELECT count(*) FROM gone
            """)
        do { return try rows.first?.decode(Int.self) ?? 0 } catch { throw StateStoreError.from(error, operation: "rate limit prune", endpoint: store.endpoint) }
    }
}
