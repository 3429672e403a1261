import Foundation
import SSHCertificates

/// The phases of one agent connection. Each phase owns exactly the state that exists in it: an
/// event that arrives in the wrong phase finds nothing to act on and is refused by construction
/// (a channel before login has no agent to decide for; a key offered after login has no
/// `Authenticating` to count it).
///
///     handshake ──kex──▶ authenticating ──certificate──▶ authenticated ──▶ closing
///         └───────────────────┴── deadline, failures, disconnect ──────────▲
enum ConnectionPhase {
    /// TCP accepted; version and key exchange under the login deadline (libssh's own timeout).
    case handshake
    /// Keys exchanged; the client offers keys. Only a certificate OpenSSH would accept moves on.
    case authenticating(Authenticating)
    /// A certificate was accepted: session channels, forwards and the one target connection.
    case authenticated(AuthenticatedConnection)
    /// Ending: nothing new is accepted; what is open was closed and audited with `reason`.
    case closing(reason: String)

    var name: String {
        switch self {
        case .handshake: return "handshake"
        case .authenticating: return "authenticating"
        case .authenticated: return "authenticated"
        case .closing: return "closing"
        }
    }
}

/// What exists while the client authenticates.
struct Authenticating {
    /// Login must finish by then (`limits.login_grace`), counted from accept.
    let deadline: ContinuousClock.Instant
    /// The target named by the SSH user name of the last attempt.
    var targetName: String?
    var failures = 0
    /// Keys refused at the probe stage: clients offer every key they hold, plain ones first, so
    /// a refused probe is kept and audited with the login's outcome (one login, one decision).
    var probeRefusals: [[String: String]] = []
    /// A signed attempt was refused (not only probes or other methods).
    var refusedSignedAttempt = false
    /// The client sent an authentication request of any kind ("none" included): from then on
    /// its connection's end is audited on its own, not only counted.
    var attempted = false

    static let maxFailures = 6
}
