import Crypto
import Synchronization

/// Remembers CA signatures that verified, keyed by a SHA-256 of the signed bytes and the
/// signature. A signature over identical bytes verifies identically forever, so a hit skips
/// only the public-key operation; every other rule (trust, revocation, time, options) still
/// runs on every validation. An agent's certificate is checked twice per login (probe and
/// signed request) and again on every later connection, so hits are the common case. Bounded:
/// when full, the cache is emptied and refills (no unbounded growth from hostile input, whose
/// failed verifications are never stored).
public final class VerifiedSignatureCache: Sendable {
    private let entries: Mutex<Set<[UInt8]>>
    public let capacity: Int

    public init(capacity: Int = 16_384) {
        self.capacity = capacity
        self.entries = Mutex([])
    }

    static func key(for c: SSHCertificate) -> [UInt8] {
        var h = SHA256()
        h.update(data: c.signedBytes)
        h.update(data: c.signature.blob)
        return Array(h.finalize())
    }

    func contains(_ key: [UInt8]) -> Bool { entries.withLock { $0.contains(key) } }

    func insert(_ key: [UInt8]) {
        entries.withLock { set in
            if set.count >= capacity { set.removeAll(keepingCapacity: true) }
            set.insert(key)
        }
    }

    public var count: Int { entries.withLock { $0.count } }
}
