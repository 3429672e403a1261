import Foundation
import Policy

/// What the issuer checks a task's narrowing against: the bastion's scopes and targets as they
/// are live (the same policy code the bastion decides with).
public struct TaskPolicyView: Sendable {
    public let policy: PolicySet
    public let targets: [TargetDescriptor]

    public init(policy: PolicySet, targets: [TargetDescriptor]) {
        self.policy = policy
        self.targets = targets
    }
}

/// A request's narrowing, checked: the scopes the certificate will carry and its task.
struct NarrowedGrant {
    var scopes: [String]
    var task: TaskNarrowing
}

/// Checks `scopes`, `targets`, `commands` and `max_sessions` of a request against what the token
/// grants. Asking for more is refused, naming the first entry not granted; nothing is trimmed.
enum TaskNarrowingCheck {
    static func narrow(_ request: IssuanceRequest, granted: [String], view: TaskPolicyView?) -> Result<NarrowedGrant, Refusal> {
        var scopes = granted
        if let asked = request.scopes {
            for scope in asked where !granted.contains(scope) {
                return .failure(Refusal(.notGranted, check: "scopes", "scope \"\(scope.prefix(80))\" is not granted by this token (granted: \(granted.joined(separator: ", ")))"))
            }
            scopes = asked
        }
        let task: TaskNarrowing
        do { task = try TaskNarrowing(targets: request.targets, commands: request.commands, maxSessions: request.maxSessions) } catch {
            return .failure(Refusal(.badRequest, check: error.field, "\"\(error.field)\" \(error.description)"))
        }
        guard task.targets != nil || task.commands != nil else { return .success(NarrowedGrant(scopes: scopes, task: task)) }
        guard let view else {
            return .failure(Refusal(.badRequest, check: task.targets != nil ? "targets" : "commands",
                                    "this issuance service runs without the bastion's policy, so it cannot check targets or commands"))
        }
        let entitlement = Entitlement(scopes: scopes)
        let reachable = view.targets.filter { !view.policy.applicable(entitlement, to: $0).scopes.isEmpty }
        for glob in task.targets ?? [] {
            let named = view.targets.filter { fnmatch(glob, $0.name, 0) == 0 }
            guard !named.isEmpty else {
                return .failure(Refusal(.notGranted, check: "targets", "no configured target is named \"\(glob)\""))
            }
            guard named.contains(where: { target in reachable.contains { $0.name == target.name } }) else {
                return .failure(Refusal(.notGranted, check: "targets", "target \"\(glob)\" is not reached by the scopes \(scopes.joined(separator: ", "))"))
            }
        }
        // Targets named: every command must be allowed on each of them the scopes reach.
        // None named: on at least one target the scopes reach.
        let onEvery = task.targets != nil
        let covered = reachable.filter(task.covers)
        for command in task.commands ?? [] {
            var firstDenial: String?
            var allowedSomewhere = false
            for target in covered {
                if let denial = denial(of: command, on: target, view: view, entitlement: entitlement) {
                    firstDenial = firstDenial ?? "on target \"\(target.name)\": \(denial)"
                    if onEvery { break }
                } else {
                    allowedSomewhere = true
                }
            }
            if onEvery ? firstDenial != nil : !allowedSomewhere {
                return .failure(Refusal(.notGranted, check: "commands",
                                        "command \"\(command.source.prefix(200))\" is not allowed by the granted scopes \(firstDenial ?? "on any target they reach")"))
            }
        }
        return .success(NarrowedGrant(scopes: scopes, task: task))
    }

    /// Why the bastion would refuse the command on the target, or nil when it would run it. An
    /// exact command is decided by the bastion's own code; a pattern must lie inside a pattern
    /// of a scope that grants exec there.
    private static func denial(of command: TaskCommand, on target: TargetDescriptor, view: TaskPolicyView, entitlement: Entitlement) -> String? {
        switch command.form {
        case .exact(let argv):
            if case .deny(let denial) = view.policy.decide(entitlement, target: target, request: .exec(ShellWords.join(argv))) {
                return "\(denial.reason) (rule \(denial.rule))"
            }
            return nil
        case .pattern(let pattern):
            let granting = view.policy.applicable(entitlement, to: target).scopes.filter { $0.rights.contains(.exec) }
            // A review pattern counts too: such a command is allowed once a person approves it.
            if granting.contains(where: { scope in (scope.commands.patterns + scope.review.patterns).contains { $0.covers(pattern) } }) { return nil }
            return "no pattern of a scope granting exec there contains the pattern (rule no-matching-pattern)"
        }
    }
}
