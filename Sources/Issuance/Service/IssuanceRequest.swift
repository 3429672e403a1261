import Crypto
import Foundation
import JSONWriting
import Policy
import SSHCertificates

/// `POST /v1/certificates` body, parsed strictly: unknown keys, wrong types and out-of-range
/// values are refused with `bad_request` naming the field, never ignored or coerced.
///
///     {"public_key": "ssh-ed25519 AAAA… comment", "ttl": 600,
///      "context": {"task_id": "…", "prompt_sha256": "<hex>", "prompt": "…", "reason": "…"},
///      "scopes": ["ops-read"], "targets": ["web-01"], "commands": ["systemctl status nginx"],
///      "max_sessions": 1}
///
/// `scopes`, `targets`, `commands` and `max_sessions` narrow the certificate to one task; each
/// is checked against what the token grants and refused, never trimmed, when it asks for more.
public struct IssuanceRequest: Sendable {
    public var publicKey: SSHPublicKey
    public var ttl: UInt64?
    public var context: AgentContext?
    public var scopes: [String]?
    public var targets: [String]?
    public var commands: [String]?
    public var maxSessions: Int?

    static let topKeys: Set<String> = ["public_key", "ttl", "context", "scopes", "targets", "commands", "max_sessions"]

    public init(json body: [UInt8]) throws(Refusal) {
        guard !body.isEmpty else { throw Refusal(.badRequest, check: "body", "the request body is empty; a JSON object with \"public_key\" is required") }
        guard case .object(let o)? = try? StrictJSON.parse(body) else {
            throw Refusal(.badRequest, check: "body", "the request body is not a JSON object (or repeats a field)")
        }
        for key in o.keys.sorted() where !Self.topKeys.contains(key) {
            throw Refusal(.badRequest, check: "body", "unknown field \"\(key)\" (allowed: \(Self.topKeys.sorted().joined(separator: ", ")))")
        }
        guard case .string(let line)? = o["public_key"] else {
            throw Refusal(.badRequest, check: "public_key", "\"public_key\" is required and must be a string holding an OpenSSH public key line")
        }
        do { publicKey = try SSHPublicKey(openSSHLine: line.trimmingCharacters(in: .whitespacesAndNewlines)) } catch {
            throw Refusal(.badPublicKey, check: "public_key", "\"public_key\" is not a usable OpenSSH public key: \(error)")
        }
        if publicKey.algorithm == .rsa && publicKey.bits < 2048 {
            throw Refusal(.badPublicKey, check: "public_key", "RSA keys shorter than 2048 bits are refused (this one has \(publicKey.bits))")
        }
        switch o["ttl"] {
        case nil, .null?: ttl = nil
        case .number(let n)?:
            guard n.rounded() == n, n >= 1, n <= 366 * 86400 else {
                throw Refusal(.badRequest, check: "ttl", "\"ttl\" must be a whole number of seconds from 1 to 31622400")
            }
            ttl = UInt64(n)
        default: throw Refusal(.badRequest, check: "ttl", "\"ttl\" must be a number of seconds")
        }
        switch o["context"] {
        case nil, .null?: context = nil
        case .object(let c)?: context = try AgentContext(c)
        default: throw Refusal(.badRequest, check: "context", "\"context\" must be an object")
        }
        scopes = try Self.strings(o, "scopes")
        targets = try Self.strings(o, "targets")
        commands = try Self.strings(o, "commands")
        switch o["max_sessions"] {
        case nil, .null?: maxSessions = nil
        case .number(let n)?:
            guard n.rounded() == n, n >= 1, n <= Double(TaskNarrowing.maximumSessions) else {
                throw Refusal(.badRequest, check: "max_sessions", "\"max_sessions\" must be a whole number from 1 to \(TaskNarrowing.maximumSessions)")
            }
            maxSessions = Int(n)
        default: throw Refusal(.badRequest, check: "max_sessions", "\"max_sessions\" must be a number")
        }
    }

    /// A narrowing list: absent or null means "not narrowed"; present, it must be a non-empty
    /// array of strings (an empty list would be a certificate for nothing).
    static func strings(_ o: [String: JSONValue], _ key: String) throws(Refusal) -> [String]? {
        switch o[key] {
        case nil, .null?: return nil
        case .array(let items)?:
            guard !items.isEmpty, items.count <= TaskNarrowing.maximumEntries else {
                throw Refusal(.badRequest, check: key, "\"\(key)\" must list 1 to \(TaskNarrowing.maximumEntries) entries")
            }
            var values: [String] = []
            for item in items {
                guard case .string(let text) = item else { throw Refusal(.badRequest, check: key, "\"\(key)\" must be an array of strings") }
                if !values.contains(text) { values.append(text) }
            }
            return values
        default: throw Refusal(.badRequest, check: key, "\"\(key)\" must be an array of strings")
        }
    }
}

/// Who asked and why, carried in the certificate as `context@gatehouse` so every later action
/// of the session ties back to it. The certificate carries only the prompt's SHA-256; its text
/// goes to the issuance audit record alone (`issuance.audit_prompt`).
public struct AgentContext: Sendable, Equatable {
    public var taskID: String?
    public var promptSHA256: String?
    public var reason: String?
    public var prompt: String?

    static let keys: Set<String> = ["task_id", "prompt_sha256", "prompt", "reason"]

    init(_ o: [String: JSONValue]) throws(Refusal) {
        for key in o.keys.sorted() where !Self.keys.contains(key) {
            throw Refusal(.badRequest, check: "context", "unknown context field \"\(key)\" (allowed: prompt, prompt_sha256, reason, task_id)")
        }
        func text(_ key: String, max: Int) throws(Refusal) -> String? {
            switch o[key] {
            case nil, .null?: return nil
            case .string(let s)?:
                guard s.utf8.count <= max else { throw Refusal(.badRequest, check: "context.\(key)", "context.\(key) is longer than \(max) bytes") }
                guard !s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) || key == "prompt" else {
                    throw Refusal(.badRequest, check: "context.\(key)", "context.\(key) contains control characters")
                }
                return s
            default: throw Refusal(.badRequest, check: "context.\(key)", "context.\(key) must be a string")
            }
        }
        taskID = try text("task_id", max: 256)
        reason = try text("reason", max: 1024)
        var hash = try text("prompt_sha256", max: 64)?.lowercased()
        if let hash, hash.count != 64 || !hash.allSatisfy(\.isHexDigit) {
            throw Refusal(.badRequest, check: "context.prompt_sha256", "context.prompt_sha256 must be 64 hexadecimal digits")
        }
        prompt = try text("prompt", max: 1 << 20)
        if let prompt {
            let computed = SHA256.hash(data: Data(prompt.utf8)).map { String(format: "%02x", $0) }.joined()
            if let given = hash, given != computed {
                throw Refusal(.badRequest, check: "context.prompt_sha256", "context.prompt_sha256 does not match the SHA-256 of context.prompt (\(computed))")
            }
            hash = computed
        }
        promptSHA256 = hash
    }

    public var isEmpty: Bool { taskID == nil && promptSHA256 == nil && reason == nil }

    /// The `context@gatehouse` value: a JSON object with sorted keys, so it is both readable
    /// and parseable by tools, and JSON escaping keeps control characters out of it.
    public var extensionValue: String {
        var w = JSONWriter()
        w.beginObject()
        if let promptSHA256 { w.member("prompt_sha256", promptSHA256) }
        if let reason { w.member("reason", reason) }
        if let taskID { w.member("task_id", taskID) }
        w.endObject()
        return w.text
    }
}

/// The 200 answer. Field names are the contract the Python client is written against.
public struct IssuanceResponse: Sendable, Codable, Equatable {
    public var certificate: String
    public var serial: UInt64
    public var key_id: String
    public var principals: [String]
    public var scopes: [String]
    public var context: String
    public var valid_after: UInt64
    public var valid_before: UInt64
    /// Where to connect with the certificate: the bastion's SSH addresses (`host:port`).
    public var bastion_addresses: [String]

    /// The body, keys sorted, written by the JSON writer: JSONEncoder was a measurable share of each issuance.
    public var json: String {
        var w = JSONWriter(capacity: 1024 + certificate.utf8.count)
        w.beginObject()
        w.member("bastion_addresses", strings: bastion_addresses)
        w.member("certificate", certificate)
        w.member("context", context)
        w.member("key_id", key_id)
        w.member("principals", strings: principals)
        w.member("scopes", strings: scopes)
        w.member("serial", serial)
        w.member("valid_after", valid_after)
        w.member("valid_before", valid_before)
        w.endObject()
        return w.text
    }
}
