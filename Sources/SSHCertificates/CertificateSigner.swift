import Foundation

/// What to certify. `sign(with:)` produces the certificate blob, sorting options bytewise and
/// refusing duplicates, so every certificate Gatehouse emits is one OpenSSH accepts.
public struct CertificateTemplate: Sendable {
    public var key: SSHPublicKey
    public var type: CertificateType
    public var serial: UInt64
    public var keyID: String
    public var principals: [String]
    public var validAfter: UInt64
    public var validBefore: UInt64
    public var criticalOptions: [CertificateOption]
    public var extensions: [CertificateOption]

    /// How far `validAfter` is backdated by `validFor`, because sshd allows no clock skew.
    public static let defaultBackdate: UInt64 = 120

    /// The extensions `ssh-keygen` grants by default to user certificates.
    public static let defaultUserExtensions: [CertificateOption] = [
        .flag(CertificateExtension.permitPTY), .flag(CertificateExtension.permitUserRC),
    ]

    public init(key: SSHPublicKey, type: CertificateType, serial: UInt64, keyID: String, principals: [String],
                validAfter: UInt64, validBefore: UInt64, criticalOptions: [CertificateOption] = [], extensions: [CertificateOption] = []) {
        self.key = key
        self.type = type
        self.serial = serial
        self.keyID = keyID
        self.principals = principals
        self.validAfter = validAfter
        self.validBefore = validBefore
        self.criticalOptions = criticalOptions
        self.extensions = extensions
    }

    /// A template valid from `backdate` seconds before `now` for `lifetime` seconds after it.
    public static func validFor(_ lifetime: UInt64, from now: UInt64, backdate: UInt64 = defaultBackdate) -> (UInt64, UInt64) {
        (now >= backdate ? now - backdate : 0, now + lifetime)
    }

    public enum TemplateError: Error, Sendable, CustomStringConvertible, Equatable {
        case duplicateOption(String)
        case invalidText(String)
        case tooManyPrincipals
        case emptyValidity

        public var description: String {
            switch self {
            case .duplicateOption(let n): return "option \"\(n)\" is given twice"
            case .invalidText(let f): return "\(f) contains a NUL byte"
            case .tooManyPrincipals: return "at most \(SSHCertificate.maxPrincipals) principals are allowed"
            case .emptyValidity: return "valid_before must be later than valid_after"
            }
        }
    }

    /// Signs the certificate with the CA key and returns the parsed result.
    public func sign(with ca: SSHPrivateKey, nonce: [UInt8] = (0..<32).map { _ in UInt8.random(in: 0...255) }) throws -> SSHCertificate {
        for list in [criticalOptions, extensions] {
            var names = Set<String>()
            for o in list where !names.insert(o.name).inserted { throw TemplateError.duplicateOption(o.name) }
        }
        if keyID.utf8.contains(0) { throw TemplateError.invalidText("key id") }
        if principals.contains(where: { $0.utf8.contains(0) }) { throw TemplateError.invalidText("a principal") }
        if principals.count > SSHCertificate.maxPrincipals { throw TemplateError.tooManyPrincipals }
        if validBefore <= validAfter { throw TemplateError.emptyValidity }

        var w = SSHWireWriter()
        w.writeString(key.algorithm.certificateTypeName)
        w.writeString(nonce)
        // The key fields follow the type name inside the plain key blob.
        var keyReader = SSHWireReader(key.blob)
        _ = try keyReader.readString("key type")
        w.writeRaw(key.blob[keyReader.offset...])
        w.writeUInt64(serial)
        w.writeUInt32(type.rawValue)
        w.writeString(keyID)
        var p = SSHWireWriter()
        for principal in principals { p.writeString(principal) }
        w.writeString(p.bytes)
        w.writeUInt64(validAfter)
        w.writeUInt64(validBefore)
        w.writeString(CertificateOption.writeList(criticalOptions))
        w.writeString(CertificateOption.writeList(extensions))
        w.writeString([UInt8]())
        w.writeString(ca.publicKey.blob)
        let signature = try ca.sign(w.bytes)
        w.writeString(signature.blob)
        return try SSHCertificate(blob: w.bytes)
    }
}
