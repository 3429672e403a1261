import Crypto
import Foundation
import Policy
import SSHCertificates

/// A certificate that passed every OpenSSH rule and whose task narrowing compiled: what an
/// authenticated connection acts on. A narrowing that does not compile refuses the login, so a
/// certificate is never used wider than it says.
struct AgentCredential {
    let validated: ValidatedCertificate
    let entitlement: Entitlement
    /// The task id from `context@gatehouse`, carried into every audit record of the connection.
    let taskID: String?

    static func compile(_ validated: ValidatedCertificate) -> Result<AgentCredential, CertificateRefusal> {
        let permissions = validated.permissions
        let task: TaskNarrowing
        do {
            task = try TaskNarrowing(targets: permissions.taskTargets, commands: permissions.taskCommands, maxSessions: permissions.maxSessions)
        } catch {
            let name = error.field == "targets" ? CertificateExtension.targets
                : error.field == "commands" ? CertificateExtension.commands : CertificateExtension.maxSessions
            return .failure(.malformedOption(.malformedOption(name: name, reason: error.description)))
        }
        return .success(AgentCredential(validated: validated, entitlement: Entitlement(scopes: permissions.scopes, task: task),
                                        taskID: CertificateContext.taskID(permissions.context)))
    }

    /// This exact certificate, for the durable session budget: the bytes its CA signed (not the
    /// signature, which an ECDSA holder can re-encode into another valid one, s → n−s, and so a
    /// fresh budget). Serials are the issuer's choice and `ssh-keygen -s` defaults to 0, so they
    /// cannot key it.
    var budgetKey: String { Self.budgetKey(of: validated.certificate) }

    static func budgetKey(of certificate: SSHCertificate) -> String {
        SHA256.hash(data: certificate.signedBytes).map { String(format: "%02x", $0) }.joined()
    }
}
