import Foundation
import SSHCertificates

/// The authorities Gatehouse keeps. `recording` signs session recordings.
public enum AuthorityName: String, CaseIterable, Sendable, Codable {
    case user, target, host, recording
}

/// Rotation phases, modeled on Teleport's.
/// - standby: one active key signs and is trusted.
/// - initialized: a next key is published and trusted; the active key still signs.
/// - updating: the next key signs; the previous key is still trusted until retired.
public enum RotationPhase: String, Sendable, Codable {
    case standby, initialized = "init", updating = "update"
}

public enum KeyRole: String, Sendable, Codable {
    case active, next, previous
}

struct StoredKey: Codable, Sendable, Equatable {
    var id: String
    var algorithm: String
    var fingerprint: String
    var publicKey: String
    var role: KeyRole
    var created: Date
    /// When the key began signing (µs since the epoch): set when it becomes the active key, so a
    /// `next` key that was never promoted has none. Absent in stores written before key history;
    /// `created` stands in for it there (it is never later than the true start).
    var activeFromMicros: UInt64?

    var activeFrom: UInt64? {
        if let activeFromMicros { return activeFromMicros }
        return role == .next ? nil : UInt64(max(0, created.timeIntervalSince1970.rounded(.down))) * 1_000_000
    }
}

/// A key that left the authority (retired, rolled back, replaced): kept forever, public half
/// only, so what it signed while active stays verifiable and `ca status` can show it.
struct RetiredKey: Codable, Sendable, Equatable {
    var id: String
    var algorithm: String
    var fingerprint: String
    var publicKey: String
    var created: Date
    /// When it began signing; nil for a key that never signed (rolled back from init).
    var activeFromMicros: UInt64?
    /// When it left the trusted set: from then on nothing it signs is accepted.
    var retiredMicros: UInt64
    /// "retired" (rotation finished) or "rolled-back".
    var how: String
}

/// What `state.json` holds for one authority.
struct AuthorityState: Codable, Sendable, Equatable {
    var phase: RotationPhase
    var keys: [StoredKey]
    /// When the update phase began; retire is allowed `gracePeriod` seconds later.
    var updateStarted: Date?
    var gracePeriod: TimeInterval
    var changed: Date
    /// Verify-only keys, oldest first. Optional so state files from before key history load.
    var retiredKeys: [RetiredKey]?

    var history: [RetiredKey] { retiredKeys ?? [] }

    /// Moves `key` out of the authority into the verify-only history.
    mutating func retire(_ key: StoredKey, at micros: UInt64, how: String) {
        keys.removeAll { $0.id == key.id }
        retiredKeys = history + [RetiredKey(id: key.id, algorithm: key.algorithm, fingerprint: key.fingerprint, publicKey: key.publicKey,
                                            created: key.created, activeFromMicros: key.activeFrom, retiredMicros: micros, how: how)]
    }

    func key(_ role: KeyRole) -> StoredKey? { keys.first { $0.role == role } }

    /// Keys that verify in this phase: every key the state still lists.
    var trusted: [StoredKey] { keys }

    /// The key that signs: the active one in every phase (in update, the former next key).
    var signing: StoredKey? { key(.active) }

    /// Phase and roles must agree; anything else is a corrupt state file.
    func checkConsistency() -> String? {
        let roles = keys.map(\.role)
        switch phase {
        case .standby where roles == [.active]: return nil
        case .initialized where Set(roles) == [.active, .next] && roles.count == 2: return nil
        case .updating where Set(roles) == [.active, .previous] && roles.count == 2 && updateStarted != nil: return nil
        default: return "phase \(phase.rawValue) does not match keys \(roles.map(\.rawValue))"
        }
    }
}

/// Status of one authority, as `gatehouse ca status` prints it.
public struct AuthorityStatus: Sendable {
    public struct Key: Sendable {
        public let id: String
        public let role: KeyRole
        public let algorithm: String
        public let fingerprint: String
        public let created: Date
        /// When the key began signing (µs since the epoch); nil for a `next` key.
        public let activeFromMicros: UInt64?
    }
    /// A verify-only key: no longer signs or authorizes anything new.
    public struct RetiredKey: Sendable {
        public let id: String
        public let algorithm: String
        public let fingerprint: String
        public let activeFromMicros: UInt64?
        public let retiredMicros: UInt64
        /// "retired" or "rolled-back".
        public let how: String
    }
    public let name: AuthorityName
    public let phase: RotationPhase
    public let keys: [Key]
    public let retireAllowedAt: Date?
    /// Oldest first.
    public let retired: [RetiredKey]
}

extension Date {
    var micros: UInt64 { UInt64(max(0, (timeIntervalSince1970 * 1_000_000).rounded(.down))) }
}
