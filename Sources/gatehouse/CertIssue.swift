import ArgumentParser
import Foundation
import CertificateAuthority
import Issuance
import Policy
import SSHCertificates

/// `gatehouse cert issue`: sign a certificate for a public key, with any CA key file.
struct CertIssue: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "issue", abstract: "Sign an OpenSSH certificate for a public key.")

    @Option(help: "Sign with this CA of the store (user, target, host).") var ca: AuthorityName?
    @Option(name: .customLong("ca-key"), help: "Or sign with this CA private key file (openssh-key-v1, unencrypted).") var caKey: String?
    @OptionGroup var store: StateOptions
    @Option(name: .customLong("public-key"), help: "The public key to certify.") var publicKey: String
    @Option(name: .customLong("key-id"), help: "The certificate's key id.") var keyID: String
    @Option(name: .customLong("principal"), help: "A principal (repeatable).") var principals: [String] = []
    @Option(help: "Lifetime, e.g. 90s, 10m, 8h, 2d.") var ttl: String = "10m"
    @Option(help: "user or host.") var type: String = "user"
    @Option(help: "Serial number (default: random).") var serial: UInt64?
    @Option(help: "Comma-separated scope names (extension scopes@gatehouse).") var scopes: String?
    @Option(help: "Request context (extension context@gatehouse).") var context: String?
    @Option(name: .customLong("target"), help: "Narrow to this target name or glob (repeatable; extension targets@gatehouse).") var targets: [String] = []
    @Option(name: .customLong("command"), help: "Narrow to this command line or pattern (repeatable; extension commands@gatehouse).") var commands: [String] = []
    @Option(name: .customLong("max-sessions"), help: "The certificate may open at most this many sessions (extension max-sessions@gatehouse).") var maxSessions: Int?
    @Option(name: .customLong("option"), help: "Critical option K=V (force-command, source-address).") var options: [String] = []
    @Option(name: .customLong("extension"), help: "Extension K or K=V.") var extensions: [String] = []
    @Flag(name: .customLong("no-default-extensions"), help: "Do not add permit-pty and permit-user-rc.") var noDefaultExtensions = false
    @Option(name: .shortAndLong, help: "Output file (default: PUBLIC_KEY with .pub replaced by -cert.pub).") var output: String?

    func run() throws {
        guard (ca == nil) != (caKey == nil) else { throw CLIError("give exactly one of --ca NAME (the store's CA) or --ca-key FILE") }
        let subject: SSHPublicKey
        do { subject = try SSHPublicKey(openSSHLine: try readFile(publicKey).trimmingCharacters(in: .whitespacesAndNewlines)) } catch let e as CLIError { throw e } catch {
            throw CLIError("\(publicKey): \(error)")
        }
        guard let certificateType = CertificateType(name: type) else { throw CLIError("--type must be user or host, not \"\(type)\"") }
        guard !principals.isEmpty else { throw CLIError("at least one --principal is required (OpenSSH refuses certificates without principals)") }
        let lifetime = try Duration.parseSeconds(ttl, option: "--ttl")
        var critical: [CertificateOption] = []
        for option in options {
            let (name, value) = Self.split(option)
            guard CriticalOption.known.contains(name) else { throw CLIError("unknown critical option \"\(name)\" (known: \(CriticalOption.known.sorted().joined(separator: ", ")))") }
            critical.append(value.map { CertificateOption(name: name, value: $0) } ?? .flag(name))
        }
        var exts = noDefaultExtensions || certificateType == .host ? [] : CertificateTemplate.defaultUserExtensions
        for e in extensions {
            let (name, value) = Self.split(e)
            exts.removeAll { $0.name == name }
            exts.append(value.map { CertificateOption(name: name, value: $0) } ?? .flag(name))
        }
        if let scopes { exts.append(CertificateOption(name: CertificateExtension.scopes, value: scopes)) }
        if let context { exts.append(CertificateOption(name: CertificateExtension.context, value: context)) }
        // The same syntax checks the bastion makes at login, so a narrowing that would make the
        // certificate unusable is refused here.
        let task: TaskNarrowing
        do { task = try TaskNarrowing(targets: targets.isEmpty ? nil : targets, commands: commands.isEmpty ? nil : commands, maxSessions: maxSessions) } catch {
            throw CLIError("--\(error.field == "max_sessions" ? "max-sessions" : String(error.field.dropLast())) \(error.description)")
        }
        for option in TaskExtensions.options(task) {
            exts.removeAll { $0.name == option.name }
            exts.append(option)
        }
        let (after, before) = CertificateTemplate.validFor(lifetime, from: UInt64(Date().timeIntervalSince1970))
        let template = CertificateTemplate(key: subject, type: certificateType, serial: serial ?? UInt64.random(in: 1 ... .max),
                                           keyID: keyID, principals: principals, validAfter: after, validBefore: before,
                                           criticalOptions: critical, extensions: exts)
        let certificate: SSHCertificate
        do {
            if let ca {
                certificate = try store.open().issue(ca, template, actor: adminActor, assignSerial: serial == nil)
            } else {
                certificate = try template.sign(with: try OpenSSHPrivateKeyFile.parse(try readFile(caKey!)))
            }
        } catch let e as CLIError { throw e } catch { throw CLIError("cannot sign: \(error)") }
        // Check the result the way the server will, so a certificate with a malformed scope or
        // source-address is refused here rather than at login.
        do { _ = try CertificatePermissions(certificate: certificate) } catch { throw CLIError("\(error)") }
        let path = output ?? (publicKey.hasSuffix(".pub") ? String(publicKey.dropLast(4)) + "-cert.pub" : publicKey + "-cert.pub")
        do { try Data((certificate.openSSHLine + "\n").utf8).write(to: URL(fileURLWithPath: path)) } catch { throw CLIError("cannot write \(path): \(error.localizedDescription)") }
        print("Signed \(certificateType.name) certificate \(path): key id \"\(keyID)\", serial \(certificate.serial), valid \(Timestamps.format(after)) to \(Timestamps.format(before))")
    }

    static func split(_ s: String) -> (String, String?) {
        guard let eq = s.firstIndex(of: "=") else { return (s, nil) }
        return (String(s[..<eq]), String(s[s.index(after: eq)...]))
    }
}

extension CertificateType {
    init?(name: String) {
        switch name {
        case "user": self = .user
        case "host": self = .host
        default: return nil
        }
    }
}

enum Duration {
    /// Parses `90`, `90s`, `10m`, `8h`, `2d` into seconds; anything else is an error naming the option.
    static func parseSeconds(_ text: String, option: String) throws -> UInt64 {
        let units: [Character: UInt64] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var digits = Substring(text), unit: UInt64 = 1
        if let last = text.last, let u = units[last] { digits = text.dropLast(); unit = u }
        guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = UInt64(digits), value > 0, value <= 366 * 86400 / unit else {
            throw CLIError("\(option) \"\(text)\" is not a duration like 90s, 10m, 8h or 2d (at most a year)")
        }
        return value * unit
    }
}
