import Audit
import Foundation
import SSHCertificates

/// Revocations the admin made, kept durably; the KRL is derived from them.
///
/// snake_case on disk (`key_ids`, `key_id`); files written before (`keyIDs`, `keyID`) load too.
struct RevocationsFile: Codable, Sendable {
    struct Serial: Codable, Sendable { var ca: AuthorityName; var serial: UInt64 }
    struct KeyID: Codable, Sendable {
        var ca: AuthorityName?
        var keyID: String
        enum CodingKeys: String, CodingKey { case ca, keyID = "key_id", legacyKeyID = "keyID" }
        init(ca: AuthorityName?, keyID: String) { self.ca = ca; self.keyID = keyID }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ca = try c.decodeIfPresent(AuthorityName.self, forKey: .ca)
            keyID = try c.decodeIfPresent(String.self, forKey: .keyID) ?? c.decode(String.self, forKey: .legacyKeyID)
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(ca, forKey: .ca)
            try c.encode(keyID, forKey: .keyID)
        }
    }
    var version: UInt64 = 0
    var serials: [Serial] = []
    var keyIDs: [KeyID] = []
    var keys: [String] = []

    enum CodingKeys: String, CodingKey { case version, serials, keyIDs = "key_ids", legacyKeyIDs = "keyIDs", keys }

    init() {}

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(UInt64.self, forKey: .version)
        serials = try c.decode([Serial].self, forKey: .serials)
        keyIDs = try c.decodeIfPresent([KeyID].self, forKey: .keyIDs) ?? c.decode([KeyID].self, forKey: .legacyKeyIDs)
        keys = try c.decode([String].self, forKey: .keys)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(serials, forKey: .serials)
        try c.encode(keyIDs, forKey: .keyIDs)
        try c.encode(keys, forKey: .keys)
    }

    static func load(_ path: String) throws -> RevocationsFile {
        guard let data = FileManager.default.contents(atPath: path) else { return RevocationsFile() }
        do { return try JSONDecoder().decode(RevocationsFile.self, from: data) } catch { throw CAStoreError("\(path) is not a valid revocations file: \(error)") }
    }
}

extension CAStore {
    public enum Revocation: Sendable {
        case serial(UInt64, ca: AuthorityName)
        case keyID(String, ca: AuthorityName?)
        case key(SSHPublicKey)
    }

    public func revoke(_ revocation: Revocation, actor: String) throws {
        var file = try RevocationsFile.load("\(root)/revocations.json")
        let object: String
        switch revocation {
        case .serial(let s, let ca): file.serials.append(.init(ca: ca, serial: s)); object = "serial \(s) of \(ca.rawValue) CA"
        case .keyID(let id, let ca): file.keyIDs.append(.init(ca: ca, keyID: id)); object = "key id \"\(id)\"" + (ca.map { " of \($0.rawValue) CA" } ?? " of any CA")
        case .key(let k): file.keys.append(k.openSSHLine); object = "key \(k.fingerprint)"
        }
        file.version += 1
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(Array(try encoder.encode(file)), to: "\(root)/revocations.json", mode: 0o600)
        try reloadRevocations()
        try audit.append(AuditEvent(actor: actor, action: "cert.revoke", object: object, outcome: .success, details: ["krl_version": String(file.version)]))
    }

    /// The KRL for Gatehouse's own checks and for targets' `RevokedKeys`. Serial and key-id
    /// revocations apply under every key the named CA trusts now.
    public func revocationList(now: Date = Date()) -> KeyRevocationList {
        let file = currentRevocations
        var krl = KeyRevocationList(version: file.version, generatedDate: UInt64(now.timeIntervalSince1970), comment: "gatehouse")
        for s in file.serials { for key in trustedPublicKeys(s.ca) { krl.revoke(serials: s.serial...s.serial, ca: key) } }
        for k in file.keyIDs {
            if let ca = k.ca { for key in trustedPublicKeys(ca) { krl.revoke(keyID: k.keyID, ca: key) } } else { krl.revoke(keyID: k.keyID, ca: nil) }
        }
        for line in file.keys { if let key = try? SSHPublicKey(openSSHLine: line) { krl.revoke(key: key) } }
        return krl
    }
}
