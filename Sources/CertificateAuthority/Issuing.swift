import Audit
import Foundation
import SSHCertificates

extension CAStore {
    /// Signs `template` with the authority's signing key, assigning a serial, and audits it.
    /// Serials come from the store's `serials` (see `SerialSource`).
    public func issue(_ name: AuthorityName, _ template: CertificateTemplate, actor: String, assignSerial: Bool = true) throws -> SSHCertificate {
        var t = template
        if assignSerial { t.serial = try serials.next() }
        let key = signingKey(name)
        let cert = try t.sign(with: key)
        try audit.append(AuditEvent(actor: actor, action: "cert.issue", object: "\(name.rawValue) certificate \"\(cert.keyID)\"", outcome: .success,
                                    details: Self.issuanceDetails(cert, caKey: key.publicKey)))
        return cert
    }

    /// The audit details of an issued certificate, the same for every path that signs one
    /// (`cert issue`, the HTTP issuance service).
    public static func issuanceDetails(_ cert: SSHCertificate, caKey: SSHPublicKey) -> [String: String] {
        var details = ["serial": String(cert.serial), "key_id": cert.keyID, "principals": cert.principals.joined(separator: ","),
                       "valid_after": Timestamps.format(cert.validAfter), "valid_before": Timestamps.format(cert.validBefore),
                       "ca_fingerprint": caKey.fingerprint, "subject_key": cert.key.fingerprint]
        if let scopes = try? cert.extensionValue(CertificateExtension.scopes)?.stringValue() { details["scopes"] = scopes }
        if let context = try? cert.extensionValue(CertificateExtension.context)?.stringValue() { details["context"] = context }
        for (name, key) in [(CertificateExtension.targets, "task_targets"), (CertificateExtension.commands, "task_commands"), (CertificateExtension.maxSessions, "task_max_sessions")] {
            if let value = try? cert.extensionValue(name)?.stringValue() { details[key] = value }
        }
        return details
    }
}

/// Where certificate serials come from.
public struct SerialSource: Sendable {
    public let next: @Sendable () throws -> UInt64

    public init(_ next: @escaping @Sendable () throws -> UInt64) { self.next = next }

    /// Random, non-zero 64-bit numbers: no counter file can be lost or rolled back by a crash,
    /// collisions among one machine's certificates are negligible, and revocation by serial
    /// works the same. Replicas take serials from one database sequence instead, unique by
    /// construction.
    public static let random = SerialSource { UInt64.random(in: 1 ... .max) }
}
