import Synchronization

/// Where used `jti`s are remembered: this process's memory on a single machine, or the shared
/// store, so a token used on one replica is a replay on every other.
public protocol TokenReplayGuard: Sendable {
    /// `.first` the first time `(issuer, jti)` is seen before `expiry` (Unix seconds).
    func claim(issuer: String, jti: String, expiry: UInt64, now: UInt64) async -> ReplayClaim
}

public enum ReplayClaim: Sendable, Equatable {
    case first
    case replayed
    /// The claim could not be made (the shared store is unreachable): the token is refused,
    /// never accepted unchecked.
    case unavailable(String)
}

/// `jti`s already used, kept until their token would have expired anyway. Bounded: when full
/// of live entries new tokens are refused rather than old ones forgotten (forgetting would
/// re-open replay).
final class ReplayCache: TokenReplayGuard {
    static let capacity = 1_000_000
    private let seen = Mutex([String: UInt64]())

    /// True the first time `(issuer, jti)` is seen; false on any later use or when full.
    func firstUse(issuer: String, jti: String, expiry: UInt64, now: UInt64) -> Bool {
        seen.withLock { s in
            let key = issuer + "\u{0}" + jti
            if let until = s[key], until > now { return false }
            if s.count >= Self.capacity { s = s.filter { $0.value > now } }
            guard s.count < Self.capacity else { return false }
            s[key] = expiry
            return true
        }
    }

    func claim(issuer: String, jti: String, expiry: UInt64, now: UInt64) async -> ReplayClaim {
        firstUse(issuer: issuer, jti: jti, expiry: expiry, now: now) ? .first : .replayed
    }
}
