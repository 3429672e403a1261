import Foundation

/// Why a certificate blob could not be parsed. Parsing is strict: it accepts only what
/// OpenSSH would accept and names the first thing that is wrong.
public enum CertificateParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case wire(SSHWireError)
    case notACertificate(String)
    case key(SSHKeyError)
    case invalidType(UInt32)
    case tooManyPrincipals(Int)
    case duplicateOption(kind: String, name: String)
    case malformedOption(name: String, reason: String)
    case certificateAsSigningKey
    case signature(SignatureError)

    public var description: String {
        switch self {
        case .wire(let e): return "malformed certificate: \(e)"
        case .notACertificate(let t): return "\"\(t)\" is not a certificate type"
        case .key(let e): return "certificate key: \(e)"
        case .invalidType(let t): return "certificate type \(t) is neither user (1) nor host (2)"
        case .tooManyPrincipals(let n): return "certificate lists \(n) principals (at most 256)"
        case .duplicateOption(let kind, let name): return "duplicate \(kind) \"\(name)\""
        case .malformedOption(let name, let reason): return "option \"\(name)\" is malformed: \(reason)"
        case .certificateAsSigningKey: return "the signature key is itself a certificate"
        case .signature(let e): return "certificate signature: \(e)"
        }
    }
}

public enum CertificateType: UInt32, Sendable {
    case user = 1
    case host = 2

    public var name: String { self == .user ? "user" : "host" }
}

/// An OpenSSH certificate (PROTOCOL.certkeys / draft-ietf-sshm-cert), user or host.
public struct SSHCertificate: Sendable, Equatable {
    public let nonce: [UInt8]
    public let key: SSHPublicKey
    public let serial: UInt64
    public let type: CertificateType
    public let keyID: String
    public let principals: [String]
    public let validAfter: UInt64
    public let validBefore: UInt64
    /// Name → raw data (for values, the nested string; for flags, empty). In wire order.
    public let criticalOptions: [CertificateOption]
    public let extensions: [CertificateOption]
    public let reserved: [UInt8]
    public let signatureKey: SSHPublicKey
    public let signature: SSHSignature
    /// Bytes the CA signature covers: offset 0 through the end of the signature key field.
    public let signedBytes: [UInt8]
    /// The whole certificate blob as it appears (base64) in `*-cert.pub`.
    public let blob: [UInt8]

    public var algorithm: SSHKeyAlgorithm { key.algorithm }

    public static let maxPrincipals = 256

    /// Parses a certificate blob; any trailing byte, a certificate as signing key, a NUL inside a
    /// string field, or a duplicate option is refused. The CA signature is *parsed* here and
    /// *verified* by `verifySignature` (validation does both).
    public init(blob: [UInt8]) throws(CertificateParseError) {
        var r = SSHWireReader(blob)
        do {
            let typeName = try r.readText("certificate type")
            guard let algorithm = SSHKeyAlgorithm(certificateTypeName: typeName) else {
                throw CertificateParseError.notACertificate(typeName)
            }
            nonce = try r.readString("nonce")
            let material: KeyMaterial
            do { material = try KeyMaterial.read(algorithm, from: &r) } catch let e as SSHKeyError { throw CertificateParseError.key(e) }
            key = SSHPublicKey(algorithm: algorithm, material: material)
            serial = try r.readUInt64("serial")
            let rawType = try r.readUInt32("certificate type")
            guard let type = CertificateType(rawValue: rawType) else { throw CertificateParseError.invalidType(rawType) }
            self.type = type
            keyID = try r.readText("key id")
            var principalReader = SSHWireReader(try r.readString("valid principals"))
            var principals: [String] = []
            while !principalReader.isAtEnd {
                principals.append(try principalReader.readText("principal"))
                if principals.count > Self.maxPrincipals { throw CertificateParseError.tooManyPrincipals(principals.count) }
            }
            self.principals = principals
            validAfter = try r.readUInt64("valid after")
            validBefore = try r.readUInt64("valid before")
            criticalOptions = try CertificateOption.readList(try r.readString("critical options"), kind: "critical option")
            extensions = try CertificateOption.readList(try r.readString("extensions"), kind: "extension")
            reserved = try r.readString("reserved")
            let signatureKeyBlob = try r.readString("signature key")
            do {
                signatureKey = try SSHPublicKey(blob: signatureKeyBlob)
            } catch SSHKeyError.certificateWherePlainKeyExpected {
                throw CertificateParseError.certificateAsSigningKey
            } catch {
                throw CertificateParseError.key(error)
            }
            signedBytes = Array(blob[0..<r.offset])
            let signatureBlob = try r.readString("signature")
            do { signature = try SSHSignature(blob: signatureBlob) } catch { throw CertificateParseError.signature(error) }
            try r.expectEnd("certificate")
            self.blob = blob
        } catch let e as CertificateParseError {
            throw e
        } catch let e as SSHWireError {
            throw .wire(e)
        } catch {
            throw .wire(.truncated(field: "certificate"))
        }
    }

    /// Parses a `*-cert.pub` line: `type base64 [comment]`.
    public init(openSSHLine line: String) throws(CertificateParseError) {
        let parsed: OpenSSHKeyLine
        do { parsed = try OpenSSHKeyLine(line) } catch { throw .key(error) }
        try self.init(blob: parsed.blob)
    }

    public var openSSHLine: String { "\(key.algorithm.certificateTypeName) \(Data(blob).base64EncodedString())" }

    /// Verifies the CA signature over the signed bytes.
    public func verifySignature(allowSHA1: Bool = false) throws(SignatureError) {
        try signatureKey.verify(signature, over: signedBytes, allowSHA1: allowSHA1)
    }

    public func criticalOption(_ name: String) -> CertificateOption? { criticalOptions.first { $0.name == name } }
    public func hasExtension(_ name: String) -> Bool { extensions.contains { $0.name == name } }
    public func extensionValue(_ name: String) -> CertificateOption? { extensions.first { $0.name == name } }

    public static func == (a: SSHCertificate, b: SSHCertificate) -> Bool { a.blob == b.blob }
}

/// A critical option or extension: a name and its data. Values are a string nested inside the
/// data field (`force-command "a"` is `00000005 00000001 61`); flags have empty data.
public struct CertificateOption: Sendable, Equatable, Hashable {
    public let name: String
    public let data: [UInt8]

    public init(name: String, data: [UInt8]) {
        self.name = name
        self.data = data
    }

    /// An option whose data is the string `value`, encoded as OpenSSH does.
    public init(name: String, value: String) {
        var w = SSHWireWriter()
        w.writeString(value)
        self.init(name: name, data: w.bytes)
    }

    public static func flag(_ name: String) -> CertificateOption { CertificateOption(name: name, data: []) }

    public var isFlag: Bool { data.isEmpty }

    /// The nested string value, or an error if the data is not exactly one string.
    public func stringValue() throws(CertificateParseError) -> String {
        var r = SSHWireReader(data)
        do {
            let v = try r.readText("value of \(name)")
            try r.expectEnd("value of \(name)")
            return v
        } catch {
            throw .malformedOption(name: name, reason: error.description)
        }
    }

    static func readList(_ raw: [UInt8], kind: String) throws -> [CertificateOption] {
        var r = SSHWireReader(raw)
        var seen = Set<String>()
        var out: [CertificateOption] = []
        while !r.isAtEnd {
            let name = try r.readText("\(kind) name")
            let data = try r.readString("\(kind) data")
            guard seen.insert(name).inserted else { throw CertificateParseError.duplicateOption(kind: kind, name: name) }
            out.append(CertificateOption(name: name, data: data))
        }
        return out
    }

    static func writeList(_ options: [CertificateOption]) -> [UInt8] {
        var w = SSHWireWriter()
        for o in options.sorted(by: { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }) {
            w.writeString(o.name)
            w.writeString(o.data)
        }
        return w.bytes
    }
}
