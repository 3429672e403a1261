import Foundation
import JSONWriting
import Refusals

/// What an agent asks for on a session channel.
public enum ChannelRequest: Sendable, Equatable {
    case exec(String)
    case shell
    case pty(term: String)
    case subsystem(String)
    case env(name: String)
    case forwardLocal(host: String, port: Int)
    case forwardRemote(host: String, port: Int)
    case agentForwarding
    case x11

    public var right: Right {
        switch self {
        case .exec(let command):
            // Legacy scp arrives as an exec of `scp -t …` / `scp -f …`: its own right, not a pattern.
            let words = (try? ShellWords.split(command).get()) ?? []
            return words.first == "scp" && (words.contains("-t") || words.contains("-f")) ? .scp : .exec
        case .shell: return .shell
        case .pty: return .pty
        case .subsystem: return .sftp
        case .env: return .env
        case .forwardLocal: return .forwardLocal
        case .forwardRemote: return .forwardRemote
        case .agentForwarding: return .agentForwarding
        case .x11: return .x11
        }
    }
}

/// Why a request was denied, in a form an agent can act on.
public struct PolicyDenial: RefusalConvertible, Equatable {
    public enum Code: String, Sendable {
        case noScope = "no-scope-reaches-target"
        case rightNotGranted = "right-not-granted"
        case command = "command-refused"
        case notAllowed = "not-allowed"
        /// The scopes would allow it, but the certificate's task does not (rule `task-targets`
        /// or `task-commands`).
        case outsideTask = "outside-task"
    }

    /// Exit status for every policy denial: 77 (EX_NOPERM in sysexits.h), distinct from the
    /// shell's 126/127 and from 128+N signal deaths, so a client can tell Gatehouse refused.
    public static let exitStatus: Int32 = 77

    public let code: Code
    public let reason: String
    /// The rule that decided: for command refusals the splitter's or matcher's rule (e.g.
    /// `shell-operator`), otherwise the part of the scope that refused (`targets`, `rights`,
    /// `forwards`, `remote_forwards`, `env`).
    public let rule: String
    public let scopesTried: [String]
    public let unknownScopes: [String]
    public let acceptedPatterns: [String]

    /// One paragraph for a human, then one `gatehouse-denial: {json}` line for programs.
    public var message: String {
        var text = "gatehouse: denied: \(reason)."
        text += scopesTried.isEmpty ? " No scope of this certificate reaches this target." : " Scopes tried: \(scopesTried.joined(separator: ", "))."
        if !unknownScopes.isEmpty { text += " Unknown scopes (grant nothing): \(unknownScopes.joined(separator: ", "))." }
        if !acceptedPatterns.isEmpty { text += " Accepted here: " + acceptedPatterns.map { "`\($0)`" }.joined(separator: "; ") + "." }
        return text + "\ngatehouse-denial: " + json + "\n"
    }

    /// The refusal's `code`, `rule` and `reason`, with what an agent needs to retry: the scopes
    /// tried, the unknown ones, the patterns that would be accepted, the exit status.
    public var json: String {
        var writer = JSONWriter()
        writer.beginObject()
        func strings(_ values: [String]) {
            writer.beginArray()
            for value in values { writer.string(value) }
            writer.endArray()
        }
        writer.key("accepted_patterns"); strings(acceptedPatterns)
        writer.key("code"); writer.string(code.rawValue)
        writer.key("exit_status"); writer.number(Self.exitStatus)
        writer.key("reason"); writer.string(reason)
        writer.key("rule"); writer.string(rule)
        writer.key("scopes_tried"); strings(scopesTried)
        writer.key("unknown_scopes"); strings(unknownScopes)
        writer.endObject()
        return writer.text
    }

    public var refusal: Refusal { Refusal(code: code.rawValue, rule: rule, reason: reason) }

    static func defaultRule(_ code: Code) -> String {
        switch code {
        case .noScope: return "targets"
        case .rightNotGranted, .notAllowed: return "rights"
        case .command: return "commands"
        case .outsideTask: return "task-commands"
        }
    }
}

public enum PolicyDecision: Sendable, Equatable {
    /// `command` is set for exec: the rebuilt command line to send.
    case allow(scope: String, command: String?)
    case deny(PolicyDenial)
    /// An exec no scope allows outright but a scope's `review:` pattern matches: it runs only
    /// once a person approves this exact `command` (the rebuilt line that would be sent).
    case review(ReviewRequirement)
}

/// What an approval request is made of: the scope and pattern that asked for review, who may
/// decide, how long an approval lasts, and the exact command line that would be sent.
public struct ReviewRequirement: Sendable, Equatable {
    public let scope: String
    public let pattern: String
    public let command: String
    public let approvers: [String]
    public let approvalTTL: Int
}

/// All configured scopes. A certificate with several scopes gets their union; a scope name the
/// configuration does not know grants nothing and is reported.
public struct PolicySet: Sendable {
    public let scopes: [String: Scope]

    public init(_ scopes: [Scope]) {
        self.scopes = Dictionary(scopes.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The scopes of the entitlement that reach `target`, in certificate order, and the unknown
    /// names. A target outside the task is reached by none.
    public func applicable(_ entitlement: Entitlement, to target: TargetDescriptor) -> (scopes: [Scope], unknown: [String]) {
        let names = entitlement.scopes
        let unknown = names.filter { scopes[$0] == nil }
        guard entitlement.task.covers(target) else { return ([], unknown) }
        return (names.compactMap { scopes[$0] }.filter { $0.reaches(target) }, unknown)
    }

    /// The login to use on the target: the first applicable scope that names one.
    public func login(_ entitlement: Entitlement, target: TargetDescriptor) -> String? {
        applicable(entitlement, to: target).scopes.compactMap(\.login).first
    }

    /// The decision for one request: the task's narrowing first (it is the tighter limit and
    /// its denial tells the agent it strayed from its plan), then the scopes' rules.
    public func decide(_ entitlement: Entitlement, target: TargetDescriptor, request: ChannelRequest) -> PolicyDecision {
        let (reaching, unknown) = applicable(entitlement, to: target)
        func deny(_ code: PolicyDenial.Code, _ reason: String, rule: String, patterns: [String]) -> PolicyDecision {
            .deny(PolicyDenial(code: code, reason: reason, rule: rule, scopesTried: reaching.map(\.name), unknownScopes: unknown, acceptedPatterns: patterns))
        }
        let task = entitlement.task
        if !task.covers(target) {
            return deny(.outsideTask, "target \"\(target.name)\" is not among this task's targets (\(task.targets!.joined(separator: ", ")))", rule: "task-targets",
                        patterns: task.targets!)
        }
        if let commands = task.commands {
            let listed = commands.map(\.source)
            switch request {
            case .exec(let command):
                // Words the splitter refuses fall through to the scopes, whose denial names the rule.
                if case .success(let argv) = ShellWords.split(command), task.command(matching: argv) == nil {
                    return deny(.outsideTask, "\"\(argv.joined(separator: " ").prefix(200))\" is not among this task's commands", rule: "task-commands", patterns: listed)
                }
            case .pty, .env:
                break
            case .shell, .subsystem, .forwardLocal, .forwardRemote, .agentForwarding, .x11:
                return deny(.outsideTask, "this task's certificate may only run its listed commands, not \(request.right.rawValue)", rule: "task-commands",
                            patterns: listed)
            }
        }
        return decideByScopes(reaching: reaching, unknown: unknown, target: target, request: request)
    }

    private func decideByScopes(reaching: [Scope], unknown: [String], target: TargetDescriptor, request: ChannelRequest) -> PolicyDecision {
        func deny(_ code: PolicyDenial.Code, _ reason: String, rule: String? = nil, patterns: [String] = []) -> PolicyDecision {
            .deny(PolicyDenial(code: code, reason: reason, rule: rule ?? PolicyDenial.defaultRule(code), scopesTried: reaching.map(\.name),
                               unknownScopes: unknown, acceptedPatterns: patterns))
        }
        guard !reaching.isEmpty else { return deny(.noScope, "no scope of this certificate reaches target \"\(target.name)\"") }
        let right = request.right
        let granting = reaching.filter { $0.rights.contains(right) }
        guard !granting.isEmpty else { return deny(.rightNotGranted, "the \(right.rawValue) right is not granted on \"\(target.name)\"") }
        switch request {
        case .exec(let command) where right == .exec:
            var firstRefusal: CommandRefusal?
            for scope in granting {
                switch scope.commands.decide(command) {
                case .allow(_, let line, _): return .allow(scope: scope.name, command: line)
                case .deny(let refusal): firstRefusal = firstRefusal ?? refusal
                }
            }
            // Allowed outright nowhere: a review pattern makes it a request to a person.
            for scope in granting where !scope.review.patterns.isEmpty {
                if case .allow(_, let line, let pattern) = scope.review.decide(command) {
                    return .review(ReviewRequirement(scope: scope.name, pattern: pattern, command: line, approvers: scope.approvers, approvalTTL: scope.approvalTTL))
                }
            }
            let patterns = granting.filter(\.disclosePatterns).flatMap { $0.commands.patterns.map(\.source) }
            return deny(.command, firstRefusal!.description, rule: firstRefusal!.code.rawValue, patterns: patterns)
        case .exec(let command):
            // scp: the right is enough, but the words must still be plain (no shell syntax).
            if case .failure(let refusal) = ShellWords.split(command) { return deny(.command, refusal.description, rule: refusal.code.rawValue) }
            return .allow(scope: granting[0].name, command: ShellWords.join((try? ShellWords.split(command).get()) ?? []))
        case .subsystem(let name):
            return name == "sftp" ? .allow(scope: granting[0].name, command: nil) : deny(.notAllowed, "subsystem \"\(name)\" is not supported")
        case .env(let name):
            if let scope = granting.first(where: { $0.environment.contains(name) }) { return .allow(scope: scope.name, command: nil) }
            return deny(.notAllowed, "environment variable \"\(name)\" may not be set")
        case .forwardLocal(let host, let port):
            if let scope = granting.first(where: { $0.forwards.contains { $0.matches(host: host, port: port) } }) { return .allow(scope: scope.name, command: nil) }
            let patterns = granting.filter(\.disclosePatterns).flatMap { $0.forwards.map(\.source) }
            return deny(.notAllowed, "forwarding to \(host):\(port) is not allowed", rule: "forwards", patterns: patterns)
        case .forwardRemote(let host, let port):
            if let scope = granting.first(where: { $0.remoteForwards.contains { $0.matches(host: host, port: port) } }) { return .allow(scope: scope.name, command: nil) }
            let patterns = granting.filter(\.disclosePatterns).flatMap { $0.remoteForwards.map(\.source) }
            return deny(.notAllowed, "listening on \(host):\(port) on the target is not allowed", rule: "remote_forwards", patterns: patterns)
        case .shell, .pty, .agentForwarding, .x11:
            return .allow(scope: granting[0].name, command: nil)
        }
    }

    /// An exec request as the raw bytes that arrived: bytes that are not UTF-8 are refused with
    /// the splitter's own rule before anything else looks at them.
    public func decide(_ entitlement: Entitlement, target: TargetDescriptor, execBytes bytes: [UInt8]) -> PolicyDecision {
        if case .failure(let refusal) = ShellWords.split(bytes: bytes) {
            let (reaching, unknown) = applicable(entitlement, to: target)
            return .deny(PolicyDenial(code: .command, reason: refusal.description, rule: refusal.code.rawValue,
                                      scopesTried: reaching.map(\.name), unknownScopes: unknown, acceptedPatterns: []))
        }
        return decide(entitlement, target: target, request: .exec(String(decoding: bytes, as: UTF8.self)))
    }

    /// Whether input is recorded for this session: if any applicable scope asks for it.
    public func recordsInput(_ entitlement: Entitlement, target: TargetDescriptor) -> Bool {
        applicable(entitlement, to: target).scopes.contains { $0.recordInput }
    }
}
