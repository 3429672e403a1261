import Crypto
import CryptoExtras
import Foundation

/// Why a public key could not be read.
public enum SSHKeyError: Error, Equatable, Sendable, CustomStringConvertible {
    case wire(SSHWireError)
    case unknownKeyType(String)
    case certificateWherePlainKeyExpected
    case curveMismatch(expected: String, found: String)
    case invalidKeyMaterial(String)
    case malformedText(String)
    case unsupportedPrivateKey(String)

    public var description: String {
        switch self {
        case .wire(let e): return e.description
        case .unknownKeyType(let t): return "unknown or unsupported key type \"\(t)\""
        case .certificateWherePlainKeyExpected: return "a certificate was given where a plain public key is required"
        case .curveMismatch(let e, let f): return "ECDSA curve \"\(f)\" does not match key type (expected \"\(e)\")"
        case .invalidKeyMaterial(let why): return "invalid key material: \(why)"
        case .malformedText(let why): return "malformed key text: \(why)"
        case .unsupportedPrivateKey(let why): return "unsupported private key: \(why)"
        }
    }
}

/// A plain (non-certificate) OpenSSH public key. The key material is kept as wire bytes and
/// the crypto key object is built once at parse time, so a parsed key is known to be usable.
public struct SSHPublicKey: Sendable, Hashable, CustomStringConvertible {
    public let algorithm: SSHKeyAlgorithm
    /// The RFC 4253 public key blob (`string type, ...`).
    public let blob: [UInt8]
    /// For RSA: modulus size in bits. For others: the curve/field size.
    public let bits: Int
    let verifier: SignatureVerifier

    public static func == (a: SSHPublicKey, b: SSHPublicKey) -> Bool { a.blob == b.blob }
    public func hash(into h: inout Hasher) { h.combine(blob) }

    /// Parses a complete plain key blob; trailing bytes are an error.
    public init(blob: [UInt8]) throws(SSHKeyError) {
        var reader = SSHWireReader(blob)
        do {
            let typeName = try reader.readText("key type")
            if SSHKeyAlgorithm(certificateTypeName: typeName) != nil { throw SSHKeyError.certificateWherePlainKeyExpected }
            guard let algorithm = SSHKeyAlgorithm(keyTypeName: typeName) else { throw SSHKeyError.unknownKeyType(typeName) }
            let material = try KeyMaterial.read(algorithm, from: &reader)
            try reader.expectEnd("public key")
            self.algorithm = algorithm
            self.blob = blob
            self.bits = material.bits
            self.verifier = material.verifier
        } catch let e as SSHWireError {
            throw .wire(e)
        } catch let e as SSHKeyError {
            throw e
        } catch {
            throw .invalidKeyMaterial("\(error)")
        }
    }

    init(algorithm: SSHKeyAlgorithm, material: KeyMaterial) {
        var w = SSHWireWriter()
        w.writeString(algorithm.keyTypeName)
        material.write(to: &w)
        self.algorithm = algorithm
        self.blob = w.bytes
        self.bits = material.bits
        self.verifier = material.verifier
    }

    /// Parses an `authorized_keys`-style line: `type base64 [comment]`.
    public init(openSSHLine line: String) throws(SSHKeyError) {
        let parsed = try OpenSSHKeyLine(line)
        if SSHKeyAlgorithm(certificateTypeName: parsed.typeName) != nil { throw .certificateWherePlainKeyExpected }
        try self.init(blob: parsed.blob)
        if parsed.typeName != algorithm.keyTypeName {
            throw .malformedText("line says \"\(parsed.typeName)\" but the key is \"\(algorithm.keyTypeName)\"")
        }
    }

    /// `type base64`, the form for authorized_keys, TrustedUserCAKeys and known_hosts.
    public var openSSHLine: String { "\(algorithm.keyTypeName) \(Data(blob).base64EncodedString())" }

    /// `SHA256:` followed by unpadded base64, as `ssh-keygen -l` prints.
    public var fingerprint: String { SSHPublicKey.fingerprint(ofBlob: blob) }

    public static func fingerprint(ofBlob blob: [UInt8]) -> String {
        // A SHA-256 digest's base64 always ends in exactly one "=": drop it without a
        // Foundation string search (this runs on every login and every issuance).
        var digest = Data(SHA256.hash(data: blob)).base64EncodedString()
        while digest.utf8.last == UInt8(ascii: "=") { digest.removeLast() }
        return "SHA256:" + digest
    }

    public var description: String { "\(algorithm.keyTypeName) \(fingerprint)" }

    /// Verifies an SSH signature blob (`string alg, string sig`) over `data`.
    public func verify(signatureBlob: [UInt8], over data: [UInt8], allowSHA1: Bool = false) throws(SignatureError) {
        let signature = try SSHSignature(blob: signatureBlob)
        try verify(signature, over: data, allowSHA1: allowSHA1)
    }

    public func verify(_ signature: SSHSignature, over data: [UInt8], allowSHA1: Bool = false) throws(SignatureError) {
        guard signature.algorithm.fits(algorithm) else {
            throw .algorithmMismatch(signature: signature.algorithm.rawValue, key: algorithm.keyTypeName)
        }
        if signature.algorithm == .rsaSHA1 && !allowSHA1 { throw .sha1Refused }
        guard verifier.isValid(signature: signature, over: data) else { throw .badSignature }
    }
}

/// One `type base64 [comment]` line.
struct OpenSSHKeyLine {
    let typeName: String
    let blob: [UInt8]
    let comment: String?

    init(_ line: String) throws(SSHKeyError) {
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count >= 2 else { throw .malformedText("expected \"<type> <base64> [comment]\"") }
        guard let data = Data(base64Encoded: fields[1]) else { throw .malformedText("the key is not valid base64") }
        typeName = fields[0]
        blob = Array(data)
        comment = fields.count > 2 ? fields[2...].joined(separator: " ") : nil
        // The type named in the text must be the type inside the blob.
        var reader = SSHWireReader(blob)
        guard let inner = try? reader.readText("key type") else { throw .malformedText("the key blob has no type") }
        guard inner == typeName else { throw .malformedText("line says \"\(typeName)\" but the blob holds \"\(inner)\"") }
    }
}
