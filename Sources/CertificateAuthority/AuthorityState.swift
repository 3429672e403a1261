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
}

/// What `state.json` holds for one authority.
struct AuthorityState: Codable, Sendable, Equatable {
    var phase: RotationPhase
    var keys: [StoredKey]
    /// When the update phase began; retire is allowed `gracePeriod` seconds later.
    var updateStarted: Date?
    var gracePeriod: TimeInterval
    var changed: Date

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
    }
    public let name: AuthorityName
    public let phase: RotationPhase
    public let keys: [Key]
    public let retireAllowedAt: Date?
}
