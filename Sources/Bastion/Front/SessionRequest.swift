import Policy

/// A request the agent sent on a session channel, as libssh delivered it (through a channel
/// callback or, for X11 and unknown requests, a message). Every one is decided by
/// `SessionChannel.handle(_:)`, whatever state the channel is in.
enum SessionRequest {
    case pty(PTYRequest)
    case env(name: String, value: String)
    /// The command's raw bytes: policy sees them before any UTF-8 repair could change them.
    case exec([UInt8])
    case shell
    case subsystem(String)
    case windowChange(columns: Int32, rows: Int32)
    case signal(String)
    case agentForwarding
    case x11(X11Request)
    /// A request type libssh does not parse (its name is not kept by libssh).
    case unknown

    /// The request's SSH name, for audit records.
    var name: String {
        switch self {
        case .pty: return "pty-req"
        case .env: return "env"
        case .exec: return "exec"
        case .shell: return "shell"
        case .subsystem: return "subsystem"
        case .windowChange: return "window-change"
        case .signal: return "signal"
        case .agentForwarding: return "auth-agent-req@openssh.com"
        case .x11: return "x11-req"
        case .unknown: return "unknown channel request"
        }
    }

    /// The audit record's object: the short kind earlier records used ("pty", "env", …).
    var auditObject: String {
        switch self {
        case .pty: return "pty"
        case .agentForwarding: return "agent-forwarding"
        case .x11: return "x11"
        default: return name
        }
    }

    /// Requests that set a session up or start it: accepted only before it has started.
    var beforeStartOnly: Bool {
        switch self {
        case .pty, .env, .exec, .shell, .subsystem, .agentForwarding, .x11: return true
        case .windowChange, .signal, .unknown: return false
        }
    }
}

/// The answer libssh sends for a request that wants one.
enum RequestReply {
    case success
    case failure

    var libssh: Int32 { self == .success ? 0 : -1 }
}

/// What the agent may set up before the session starts.
struct SessionSetup {
    var pty: PTYRequest?
    var environment: [(String, String)] = []
    var agentForwarding = false
    var x11: X11Request?
}

/// What will happen to the session, decided once, when its start request arrives.
enum SessionPlan {
    case proceed(target: TargetConfiguration, login: String, start: SessionStart, scope: String)
    /// Refused before anything reaches a target: the message goes to the agent's stderr.
    case refuse(SessionRefusal)
    /// A command of the reserved target (`approval wait …`), answered off the connection's thread.
    case answerLater(ApprovalDesk.Command)
}
