import Foundation
import Logging

/// An issuer's keys, cached. Refreshed when older than `maxAge` (so rotated-out keys stop
/// verifying) and when a token names an unknown `kid` (so a rotated-in key works at once) — but
/// unknown-kid refreshes are rate-limited, so a flood of tokens with made-up kids cannot turn
/// Gatehouse into a load generator against the provider. Concurrent refreshes are coalesced.
actor KeySetCache {
    let source: any KeySetSource
    let maxAge: UInt64
    let minRefreshInterval: UInt64
    let logger: Logger
    private var keys = KeySet.empty
    private var fetchedAt: UInt64?
    private var lastAttempt: UInt64?
    private var inFlight: Task<Void, Never>?
    private(set) var fetchCount = 0
    private var lastError: String?

    init(source: any KeySetSource, maxAge: UInt64, minRefreshInterval: UInt64, logger: Logger) {
        self.source = source
        self.maxAge = maxAge
        self.minRefreshInterval = minRefreshInterval
        self.logger = logger
    }

    /// The key for `kid`, refreshing as described above. Refusals: `unknown_kid` when the set
    /// (after any allowed refresh) does not hold it, `keys_unavailable` when no set was ever fetched.
    func key(kid: String?, now: UInt64) async -> Result<KeySet.Key, Refusal> {
        // Never fetched, or too old: fetch, but at most once a second even while the provider
        // is down, so an outage does not turn every request into an outgoing fetch.
        if fetchedAt.map({ now >= $0 + maxAge }) ?? true { await refresh(now: now, minInterval: 1) }
        if let key = keys.key(kid: kid) { return .success(key) }
        await refresh(now: now, minInterval: minRefreshInterval)
        if let key = keys.key(kid: kid) { return .success(key) }
        if fetchedAt == nil {
            return .failure(Refusal(.keysUnavailable, check: "jwks", "the issuer's keys could not be fetched: \(lastError ?? "no attempt yet")"))
        }
        if kid == nil {
            return .failure(Refusal(.unknownKid, check: "kid", "the token names no key (\"kid\") and the issuer publishes \(keys.keys.count) keys"))
        }
        return .failure(Refusal(.unknownKid, check: "kid", "the issuer's key set has no key \"\(kid!)\" (known: \(keys.keys.compactMap(\.kid).map { "\"\($0)\"" }.joined(separator: ", ")))"))
    }

    /// Fetches the key set unless a fetch was attempted within `minInterval` seconds; joins a
    /// fetch already in flight instead of starting another.
    private func refresh(now: UInt64, minInterval: UInt64) async {
        if let inFlight { await inFlight.value; return }
        if let lastAttempt, now < lastAttempt + minInterval { return }
        lastAttempt = now
        let task = Task { await self.fetch(now: now) }
        inFlight = task
        await task.value
        inFlight = nil
    }

    private func fetch(now: UInt64) async {
        fetchCount += 1
        do {
            let fresh = try await KeySet(jwks: try await source.fetchKeySet())
            for s in fresh.skipped { logger.debug("JWKS key skipped", metadata: ["key": "\(s)"]) }
            keys = fresh
            fetchedAt = now
            lastError = nil
        } catch {
            // The previous keys stay in force: a provider blip must not lock every agent out,
            // and a key it removed is dropped at the next successful fetch.
            lastError = "\(error)"
            logger.warning("JWKS fetch failed; keeping the previous keys", metadata: ["error": "\(error)"])
        }
    }
}
