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
