import Foundation

/// Names of the critical options OpenSSH defines. Anything else is refused (auth-options.c).
public enum CriticalOption {
    public static let forceCommand = "force-command"
    public static let sourceAddress = "source-address"
    public static let verifyRequired = "verify-required"
    public static let known: Set<String> = [forceCommand, sourceAddress, verifyRequired]
}

/// Names of the extensions that grant permissions, plus Gatehouse's own.
public enum CertificateExtension {
    public static let permitPTY = "permit-pty"
    public static let permitPortForwarding = "permit-port-forwarding"
    public static let permitAgentForwarding = "permit-agent-forwarding"
    public static let permitX11Forwarding = "permit-X11-forwarding"
    public static let permitUserRC = "permit-user-rc"
    public static let noTouchRequired = "no-touch-required"
    /// Comma-separated scope names.
    public static let scopes = "scopes@gatehouse"
    /// The request context (task id, prompt hash) that ties actions back to the request.
    public static let context = "context@gatehouse"
    /// Task narrowing: comma-separated target names or globs the certificate may reach.
    public static let targets = "targets@gatehouse"
    /// Task narrowing: a JSON array of the command lines or patterns the task may run.
    public static let commands = "commands@gatehouse"
    /// Task narrowing: how many sessions the certificate may open, decimal.
    public static let maxSessions = "max-sessions@gatehouse"
    /// Gatehouse's own namespace: an extension in it that this version does not know makes the
    /// certificate unusable (it may narrow something this bastion cannot enforce).
    public static let namespace = "@gatehouse"
    public static let gatehouseKnown: Set<String> = [scopes, context, targets, commands, maxSessions]
}

/// What a validated user certificate permits, read once from its options and extensions.
public struct CertificatePermissions: Sendable, Equatable {
    public var pty: Bool
    public var portForwarding: Bool
    public var agentForwarding: Bool
    public var x11Forwarding: Bool
    public var userRC: Bool
    /// `force-command`: when present, the only command the certificate may run.
    public var forceCommand: String?
    /// `source-address`: the networks a connection must come from (nil: anywhere).
    public var sourceAddresses: [CIDRBlock]?
    public var scopes: [String]
    public var context: String?
    /// The task's narrowing, as written (the bastion compiles and enforces it): target names or
    /// globs, command lines or patterns, a session budget. nil: not narrowed.
    public var taskTargets: [String]?
    public var taskCommands: [String]?
    public var maxSessions: Int?

    /// Reads permissions from a certificate. Fails on malformed values of known options and on
    /// malformed Gatehouse extensions; unknown critical options are a validation rule's job.
    public init(certificate c: SSHCertificate) throws(CertificateParseError) {
        pty = c.hasExtension(CertificateExtension.permitPTY)
        portForwarding = c.hasExtension(CertificateExtension.permitPortForwarding)
        agentForwarding = c.hasExtension(CertificateExtension.permitAgentForwarding)
        x11Forwarding = c.hasExtension(CertificateExtension.permitX11Forwarding)
        userRC = c.hasExtension(CertificateExtension.permitUserRC)
        forceCommand = try c.criticalOption(CriticalOption.forceCommand)?.stringValue()
        if let source = try c.criticalOption(CriticalOption.sourceAddress)?.stringValue() {
            do { sourceAddresses = try CIDRBlock.parseList(source) } catch {
                throw .malformedOption(name: CriticalOption.sourceAddress, reason: error.description)
            }
        } else {
            sourceAddresses = nil
        }
        scopes = try Self.readScopes(c.extensionValue(CertificateExtension.scopes))
        context = try Self.readContext(c.extensionValue(CertificateExtension.context))
        for option in c.extensions where option.name.hasSuffix(CertificateExtension.namespace) && !CertificateExtension.gatehouseKnown.contains(option.name) {
            throw .malformedOption(name: option.name, reason: "is not a Gatehouse extension this bastion knows, so it cannot be enforced")
        }
        taskTargets = try Self.readTargets(c.extensionValue(CertificateExtension.targets))
        taskCommands = try Self.readCommands(c.extensionValue(CertificateExtension.commands))
        maxSessions = try Self.readMaxSessions(c.extensionValue(CertificateExtension.maxSessions))
    }

    /// `web-01,db-*`: names or globs, none empty.
    static func readTargets(_ option: CertificateOption?) throws(CertificateParseError) -> [String]? {
        guard let option else { return nil }
        let value = try option.stringValue()
        let targets = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !value.isEmpty, value.utf8.count <= 4096, !targets.contains(where: \.isEmpty) else {
            throw .malformedOption(name: CertificateExtension.targets, reason: "must be a comma-separated list of target names or globs")
        }
        return targets
    }

    /// A JSON array of strings, nothing else: `["uptime","systemctl status nginx"]`.
    static func readCommands(_ option: CertificateOption?) throws(CertificateParseError) -> [String]? {
        guard let option else { return nil }
        let value = try option.stringValue()
        guard value.utf8.count <= 65536, let parsed = try? JSONSerialization.jsonObject(with: Data(value.utf8)) as? [Any],
              !parsed.isEmpty, parsed.allSatisfy({ $0 is String }) else {
            throw .malformedOption(name: CertificateExtension.commands, reason: "must be a non-empty JSON array of command strings")
        }
        return parsed.map { $0 as! String }
    }

    static func readMaxSessions(_ option: CertificateOption?) throws(CertificateParseError) -> Int? {
        guard let option else { return nil }
        let value = try option.stringValue()
        guard (1...5).contains(value.utf8.count), value.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let n = Int(value), n >= 1 else {
            throw .malformedOption(name: CertificateExtension.maxSessions, reason: "must be a whole number of sessions from 1 to 99999")
        }
        return n
    }

    /// Scope names are the comma-separated value of `scopes@gatehouse`; each must be a plain
    /// name so a scope list can never smuggle syntax into policy or logs.
    static func readScopes(_ option: CertificateOption?) throws(CertificateParseError) -> [String] {
        guard let option else { return [] }
        let value = try option.stringValue()
        var scopes: [String] = []
        for raw in value.split(separator: ",", omittingEmptySubsequences: false) {
            let name = raw.trimmingCharacters(in: .whitespaces)
            guard ScopeName.isValid(name) else {
                throw .malformedOption(name: CertificateExtension.scopes, reason: "\"\(name)\" is not a valid scope name")
            }
            if !scopes.contains(name) { scopes.append(name) }
        }
        return scopes
    }

    static func readContext(_ option: CertificateOption?) throws(CertificateParseError) -> String? {
        guard let option else { return nil }
        let value = try option.stringValue()
        guard value.utf8.count <= 4096, !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw .malformedOption(name: CertificateExtension.context, reason: "longer than 4096 bytes or contains control characters")
        }
        return value
    }
}

/// The `context@gatehouse` value: a JSON object the issuer wrote (task id, reason, prompt hash).
public enum CertificateContext {
    /// Its `task_id`, if the value is a JSON object that has one.
    public static func taskID(_ context: String?) -> String? { field("task_id", of: context) }

    /// A string field of the value (`task_id`, `reason`, `prompt_sha256`), if it is a JSON object.
    public static func field(_ name: String, of context: String?) -> String? {
        guard let context, context.hasPrefix("{"), let object = try? JSONSerialization.jsonObject(with: Data(context.utf8)) as? [String: Any] else { return nil }
        return object[name] as? String
    }
}

/// Scope names: 1–64 characters of letters, digits, `-`, `_`, `.`, `:`, starting with a letter or digit.
public enum ScopeName {
    public static func isValid(_ name: String) -> Bool {
        let scalars = Array(name.unicodeScalars)
        guard (1...64).contains(scalars.count), isAlphanumeric(scalars[0]) else { return false }
        return scalars.allSatisfy { isAlphanumeric($0) || "-_.:".unicodeScalars.contains($0) }
    }

    private static func isAlphanumeric(_ s: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(s) || ("A"..."Z").contains(s) || ("0"..."9").contains(s)
    }
}
