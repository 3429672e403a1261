import Audit
import Foundation
import SSHCertificates

/// Revocations the admin made, kept durably; the KRL is derived from them.
struct RevocationsFile: Codable, Sendable {
    struct Serial: Codable, Sendable { var ca: AuthorityName; var serial: UInt64 }
    struct KeyID: Codable, Sendable { var ca: AuthorityName?; var keyID: String }
    var version: UInt64 = 0
    var serials: [Serial] = []
    var keyIDs: [KeyID] = []
    var keys: [String] = []

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
