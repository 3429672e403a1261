import Synchronization

/// Where issuance rate limits are counted: this process's memory (`RateLimiter`), or the shared
/// store, so a subject's budget is one across every replica behind the balancer.
public protocol IssuanceRateLimit: Sendable {
    /// nil when one more certificate is allowed for `subject` (taking it); otherwise the whole
    /// seconds until one is. Throws when the count cannot be kept (the issuance is refused).
    func take(_ subject: String, now: Double) async throws -> Int?
}

/// A token bucket per subject (issuer + sub): `burst` certificates at once, refilled at
/// `perMinute`. A leaked token, or an agent stuck in a loop, gets 429 instead of thousands of
/// certificates. Buckets that are full again are dropped, so memory follows active subjects.
final class RateLimiter: IssuanceRateLimit {
    struct Bucket { var tokens: Double; var updated: Double }
    let perSecond: Double
    let burst: Double
    private let buckets = Mutex([String: Bucket]())

    init(_ limit: IssuanceConfiguration.RateLimit) {
        perSecond = Double(limit.perMinute) / 60
        burst = Double(limit.burst)
    }

    /// nil when allowed; otherwise the whole seconds until one more is allowed.
    func take(_ subject: String, now: Double) -> Int? {
        buckets.withLock { b in
            var bucket = b[subject] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = min(burst, bucket.tokens + max(0, now - bucket.updated) * perSecond)
            bucket.updated = now
            if b.count > 100_000 { b = b.filter { $0.value.tokens + (now - $0.value.updated) * perSecond < burst } }
            guard bucket.tokens >= 1 else {
                b[subject] = bucket
                return max(1, Int(((1 - bucket.tokens) / perSecond).rounded(.up)))
            }
            bucket.tokens -= 1
            b[subject] = bucket
            return nil
        }
    }
}
