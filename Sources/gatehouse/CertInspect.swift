import ArgumentParser
import Foundation
import CertificateAuthority
import SSHCertificates

/// `gatehouse cert inspect FILE`: what `ssh-keygen -L` shows, plus the verdict of Gatehouse's
/// validator against the trusted CA keys and KRL given, with the rule that refused.
struct CertInspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show a certificate and whether Gatehouse would accept it.")

    @Argument(help: "A *-cert.pub file.") var file: String
    @Option(name: .customLong("trusted-ca"), help: "A file of trusted CA public keys (TrustedUserCAKeys format).") var trustedCA: String?
    @Option(help: "A binary KRL to check revocation against.") var krl: String?
    @Option(help: "Peer address to check source-address against.") var peer: String?
    @OptionGroup var store: StateOptions

    func run() throws {
        let text = try readFile(file)
        let certificate: SSHCertificate
        do { certificate = try SSHCertificate(openSSHLine: text.trimmingCharacters(in: .whitespacesAndNewlines)) } catch {
            throw CLIError("\(file): \(error)")
        }
        print(CertificateListing(certificate).text)
        if trustedCA == nil, let ca = try? CAStore.open(at: store.state) {
            let context = ValidationContext(now: UInt64(Date().timeIntervalSince1970), peerAddress: peer,
                                            trustedCAs: ca.trustedPublicKeys(certificate.type == .user ? .user : .host), revocations: ca.revocationList())
            return try report(certificate, context, against: "the \(certificate.type.name) CA of \(store.state)")
        }
        guard let trustedCA else { return }
        let keys = try readFile(trustedCA).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
            .enumerated().map { index, line in
                do { return try SSHPublicKey(openSSHLine: line) } catch { throw CLIError("\(trustedCA):\(index + 1): \(error)") }
            }
        var revocations = KeyRevocationList()
        if let krl {
            do { revocations = try KeyRevocationList(binary: Array(try Data(contentsOf: URL(fileURLWithPath: krl)))) } catch { throw CLIError("\(krl): \(error)") }
        }
        try report(certificate, ValidationContext(now: UInt64(Date().timeIntervalSince1970), peerAddress: peer, trustedCAs: keys, revocations: revocations), against: trustedCA)
    }

    func report(_ certificate: SSHCertificate, _ context: ValidationContext, against source: String) throws {
        let validator = certificate.type == .user ? CertificateValidator.openSSHUser() : CertificateValidator(rules: [CASignatureRule(), RevocationRule(), TrustedCARule(), ValidityWindowRule(), PrincipalsRule(), CriticalOptionsRule()])
        print("        Checked against: \(source)")
        switch validator.validate(certificate, in: context) {
        case .success: print("        Verdict: accepted")
        case .failure(let refusal):
            print("        Verdict: refused (\(refusal.code)): \(refusal)")
            print("        Rule: \(refusal.rule)")
            throw ExitCode(1)
        }
    }
}

/// The `ssh-keygen -L` layout.
struct CertificateListing {
    let text: String

    init(_ c: SSHCertificate) {
        var lines = [
            "        Type: \(c.key.algorithm.certificateTypeName) \(c.type.name) certificate",
            "        Public key: \(c.key.description)",
            "        Signing CA: \(c.signatureKey.description) (using \(c.signature.algorithm.rawValue))",
            "        Key ID: \"\(c.keyID)\"",
            "        Serial: \(c.serial)",
            "        Valid: " + (c.validAfter == 0 && c.validBefore == .max ? "forever" : "from \(Timestamps.format(c.validAfter)) to \(Timestamps.format(c.validBefore))"),
            "        Principals: " + (c.principals.isEmpty ? "(none)" : ""),
        ]
        lines += c.principals.map { "                \($0)" }
        lines.append("        Critical Options: " + (c.criticalOptions.isEmpty ? "(none)" : ""))
        lines += c.criticalOptions.map { "                " + Self.describe($0) }
        lines.append("        Extensions: " + (c.extensions.isEmpty ? "(none)" : ""))
        lines += c.extensions.map { "                " + Self.describe($0) }
        text = lines.joined(separator: "\n")
    }

    static func describe(_ o: CertificateOption) -> String {
        if o.isFlag { return o.name }
        if let value = try? o.stringValue() { return "\(o.name) \"\(value)\"" }
        return "\(o.name) (\(o.data.count) bytes of binary data)"
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func readFile(_ path: String) throws -> String {
    do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
        throw CLIError("cannot read \(path): \((error as NSError).localizedDescription)")
    }
}
