import Foundation

/// A target as policy sees it: its name and labels (e.g. env=prod).
public struct TargetDescriptor: Sendable, Equatable {
    public let name: String
    public let labels: [String: String]
    public init(name: String, labels: [String: String] = [:]) {
        self.name = name
        self.labels = labels
    }
}

/// Which targets a scope reaches: a name or glob (`web-*`), or a label (`env=prod`).
public enum TargetSelector: Sendable, Equatable, CustomStringConvertible {
    case name(String)
    case label(key: String, value: String)

    /// `key=value` selects by label; anything else is a name glob.
    public init(_ text: String) {
        if let eq = text.firstIndex(of: "=") {
            self = .label(key: String(text[..<eq]), value: String(text[text.index(after: eq)...]))
        } else {
            self = .name(text)
        }
    }

    public func matches(_ target: TargetDescriptor) -> Bool {
        switch self {
        case .name(let glob): return fnmatch(glob, target.name, 0) == 0
        case .label(let key, let value): return target.labels[key] == value
        }
    }

    public var description: String {
        switch self {
        case .name(let g): return g
        case .label(let k, let v): return "\(k)=\(v)"
        }
    }
}

/// Rights a scope can grant, each decided on its own channel request.
public enum Right: String, Sendable, CaseIterable {
    case exec, shell, pty, sftp, scp
    case forwardLocal = "forward-local"
    case forwardRemote = "forward-remote"
    case agentForwarding = "agent-forwarding"
    case x11
    case env
}

/// One scope: where it reaches, as which login, with which rights and commands.
public struct Scope: Sendable {
    public let name: String
    public let targets: [TargetSelector]
    public let login: String?
    public let rights: Set<Right>
    public let commands: CommandAllowlist
    /// Environment variable names the agent may set (with the `env` right).
    public let environment: Set<String>
    /// Destinations the target may connect to for the agent (`-L`, `-D`, `-W`): forward-local.
    public let forwards: [ForwardPattern]
    /// Addresses the target may listen on for the agent (`-R`): forward-remote.
    public let remoteForwards: [ForwardPattern]
    public let recordInput: Bool
    /// Whether denials may list this scope's accepted patterns to the agent.
    public let disclosePatterns: Bool
    /// Session limits in seconds (nil: none).
    public let maxDuration: Int?
    public let idleTimeout: Int?
    /// Commands that are neither run nor refused: a person must approve each one first.
    public let review: CommandAllowlist
    /// Who may decide this scope's reviews: group names or key-id globs (empty: anyone but the requester).
    public let approvers: [String]
    /// How long an approval stays usable after the decision, in seconds.
    public let approvalTTL: Int
    /// Where this scope's approval requests are announced (instead of the global webhook).
    public let approvalWebhook: Webhook?
    /// Which masking rules apply to the output of sessions this scope allows (nil: the global set).
    public let masking: MaskingSelection?

    /// A signed notification endpoint: the URL and the file holding the HMAC key.
    public struct Webhook: Sendable, Equatable {
        public let url: String
        public let secretFile: String
        public init(url: String, secretFile: String) {
            self.url = url
            self.secretFile = secretFile
        }
    }

    public static let defaultApprovalTTL = 15 * 60

    public init(name: String, targets: [TargetSelector], login: String? = nil, rights: Set<Right>, commands: [CommandPattern] = [],
                environment: Set<String> = [], forwards: [ForwardPattern] = [], remoteForwards: [ForwardPattern] = [], recordInput: Bool = true, disclosePatterns: Bool = true, maxDuration: Int? = nil, idleTimeout: Int? = nil,
                review: [CommandPattern] = [], approvers: [String] = [], approvalTTL: Int = Scope.defaultApprovalTTL, approvalWebhook: Webhook? = nil,
                masking: MaskingSelection? = nil) {
        self.masking = masking
        self.review = CommandAllowlist(review)
        self.approvalWebhook = approvalWebhook
        self.approvers = approvers
        self.approvalTTL = approvalTTL
        self.maxDuration = maxDuration
        self.idleTimeout = idleTimeout
        self.name = name
        self.targets = targets
        self.login = login
        self.rights = rights
        self.commands = CommandAllowlist(commands)
        self.environment = environment
        self.forwards = forwards
        self.remoteForwards = remoteForwards
        self.recordInput = recordInput
        self.disclosePatterns = disclosePatterns
    }

    public func reaches(_ target: TargetDescriptor) -> Bool { targets.contains { $0.matches(target) } }
}
