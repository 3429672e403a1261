import Crypto
import Foundation
import JSONWriting

/// Who asks for an approval: the agent's certificate as the bastion verified it.
public struct ApprovalRequester: Sendable, Equatable {
    /// The certificate's key id: `oidc:{iss}:{sub}` for certificates the issuance service mints,
    /// so it names the person on whose behalf the agent runs.
    public var keyID: String
    public var serial: UInt64
    /// `task_id` from the certificate's `context@gatehouse`, when the certificate carries one.
    public var taskID: String?
    /// `prompt_sha256` from `context@gatehouse` (shown to the approver; not part of the key).
    public var promptSHA256: String?

    public init(keyID: String, serial: UInt64, taskID: String? = nil, promptSHA256: String? = nil) {
        self.keyID = keyID
        self.serial = serial
        self.taskID = taskID.flatMap { $0.isEmpty ? nil : $0 }
        self.promptSHA256 = promptSHA256
    }

    /// The identity an approval is bound to (see `ApprovalRequestKey`):
    /// `key_id="<key id>" task_id="<task>"` when the certificate names a task,
    /// `key_id="<key id>" serial=<serial>` otherwise. The strings are JSON-quoted so no key id
    /// or task id, whatever it holds, can spell another pair's identity.
    public var boundIdentity: String {
        if let taskID { return "key_id=\(JSONWriter.quoted(keyID)) task_id=\(JSONWriter.quoted(taskID))" }
        return "key_id=\(JSONWriter.quoted(keyID)) serial=\(serial)"
    }
}

/// What identifies an approval request, and so what a resend must repeat exactly to be
/// released: the exact command line that would be sent to the target (its bytes, hashed), the
/// target, the login on the target, and the requesting identity.
///
/// The requesting identity is the certificate's key id plus its **task id** when the
/// certificate carries one (`context@gatehouse` `task_id`), and the key id plus the
/// **certificate serial** when it does not. Why:
///
/// - Certificates are short-lived (minutes) and a person may take longer than that to decide.
///   An agent working on one task renews its certificate (`gatehouse login --task-id T`) and
///   must be able to resend under the renewed certificate, or every slow approval would end in
///   a new request and a second round of asking. So a resend with **another certificate of the
///   same task and the same key id matches**.
/// - The key id is always part of the identity: it names the person the issuer vouched for,
///   and only that person's OIDC token can mint a certificate with that key id. Another
///   person's agent, or the same person's agent on another task, never matches.
/// - Without a task id there is nothing but the certificate to say "the same piece of work",
///   so the serial binds the approval to that one certificate: a second certificate of the
///   same person (a break-glass `ssh-keygen -s` one, another agent) does not match.
///
/// The task id is chosen by the client when it asks for the certificate, but it is signed into
/// the certificate by the CA after the OIDC check, so claiming someone else's task needs their
/// key id too. What the approval releases is still only what the certificate's scopes allow:
/// the resending certificate must pass policy on its own; the approval only ever narrows.
///
/// Equality compares the digest, i.e. bytes: Swift's `String ==` would call canonically
/// equivalent Unicode spellings equal, and a command that differs by one byte must not match.
public struct ApprovalRequestKey: Sendable, Hashable, CustomStringConvertible {
    /// The exact command line the bastion would send (after policy rebuilt it).
    public let command: String
    public let target: String
    public let login: String
    /// `ApprovalRequester.boundIdentity` of the requester.
    public let identity: String

    public init(command: String, target: String, login: String, requester: ApprovalRequester) {
        self.init(command: command, target: target, login: login, identity: requester.boundIdentity)
    }

    /// A key read back from a store, its identity already rendered by `boundIdentity`.
    public init(command: String, target: String, login: String, identity: String) {
        self.command = command
        self.target = target
        self.login = login
        self.identity = identity
    }

    /// SHA-256 of the command's bytes, hex: what audit records and the approver's view name.
    public var commandSHA256: String { Self.hex(SHA256.hash(data: Array(command.utf8))) }

    /// SHA-256 over the four parts, each length-prefixed so no two different keys can share an
    /// encoding ("ab"+"c" vs "a"+"bc").
    public var digest: String {
        var hasher = SHA256()
        for part in [command, target, login, identity] {
            let bytes = Array(part.utf8)
            withUnsafeBytes(of: UInt64(bytes.count).bigEndian) { hasher.update(bufferPointer: $0) }
            hasher.update(data: bytes)
        }
        return Self.hex(hasher.finalize())
    }

    public static func == (a: Self, b: Self) -> Bool { a.digest == b.digest }
    public func hash(into hasher: inout Hasher) { hasher.combine(digest) }

    public var description: String { "\(login)@\(target): \(command) [\(identity)]" }

    /// The first part that differs from `other`, for a refusal that says what did not match.
    func firstDifference(from other: ApprovalRequestKey) -> ApprovalRefusal.Mismatch? {
        if Array(command.utf8) != Array(other.command.utf8) { return .command }
        if Array(target.utf8) != Array(other.target.utf8) { return .target }
        if Array(login.utf8) != Array(other.login.utf8) { return .login }
        if Array(identity.utf8) != Array(other.identity.utf8) { return .identity }
        return nil
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
