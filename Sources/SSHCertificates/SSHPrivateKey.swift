import Crypto
import CryptoExtras
import Foundation

/// A private key that can sign SSH signatures, for any supported algorithm.
public struct SSHPrivateKey: Sendable {
    enum Backing: Sendable {
        case ed25519(Curve25519.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
        case p384(P384.Signing.PrivateKey)
        case p521(P521.Signing.PrivateKey)
        case rsa(_RSA.Signing.PrivateKey, RSAComponents)
    }

    /// The integers OpenSSH stores for an RSA key (big-endian magnitudes).
    struct RSAComponents: Sendable {
        var n, e, d, iqmp, p, q: [UInt8]
    }

    let backing: Backing
    public let publicKey: SSHPublicKey
    public var comment: String

    public var algorithm: SSHKeyAlgorithm { publicKey.algorithm }

    init(backing: Backing, comment: String = "") throws(SSHKeyError) {
        self.backing = backing
        self.comment = comment
        let material: KeyMaterial
        switch backing {
        case .ed25519(let k): material = .ed25519(k.publicKey)
        case .p256(let k): material = .p256(k.publicKey)
        case .p384(let k): material = .p384(k.publicKey)
        case .p521(let k): material = .p521(k.publicKey)
        case .rsa(let k, let c): material = .rsa(e: c.e, n: c.n, key: k.publicKey)
        }
        self.publicKey = SSHPublicKey(algorithm: Self.algorithm(of: backing), material: material)
    }

    static func algorithm(of backing: Backing) -> SSHKeyAlgorithm {
        switch backing {
        case .ed25519: return .ed25519
        case .p256: return .ecdsaP256
        case .p384: return .ecdsaP384
        case .p521: return .ecdsaP521
        case .rsa: return .rsa
        }
    }

    /// A fresh key. RSA keys are 3072 bits unless `rsaBits` says otherwise (2048, 3072 or 4096).
    public static func generate(_ algorithm: SSHKeyAlgorithm, rsaBits: Int = 3072, comment: String = "") throws -> SSHPrivateKey {
        switch algorithm {
        case .ed25519: return try SSHPrivateKey(backing: .ed25519(.init()), comment: comment)
        case .ecdsaP256: return try SSHPrivateKey(backing: .p256(.init()), comment: comment)
        case .ecdsaP384: return try SSHPrivateKey(backing: .p384(.init()), comment: comment)
        case .ecdsaP521: return try SSHPrivateKey(backing: .p521(.init()), comment: comment)
        case .rsa:
            let size: _RSA.Signing.KeySize
            switch rsaBits {
            case 2048: size = .bits2048
            case 3072: size = .bits3072
            case 4096: size = .bits4096
            default: throw SSHKeyError.unsupportedPrivateKey("RSA keys are generated with 2048, 3072 or 4096 bits")
            }
            let key = try _RSA.Signing.PrivateKey(keySize: size)
            let c = try PKCS1.components(ofPrivateKeyDER: Array(key.derRepresentation))
            return try SSHPrivateKey(backing: .rsa(key, c), comment: comment)
        }
    }

    /// Signs `data` with the algorithm's preferred signature (rsa-sha2-512 for RSA).
    public func sign(_ data: [UInt8], algorithm requested: SSHSignatureAlgorithm? = nil) throws -> SSHSignature {
        let algorithm = requested ?? SSHSignatureAlgorithm.preferred(for: self.algorithm)
        guard algorithm.fits(self.algorithm) else {
            throw SignatureError.algorithmMismatch(signature: algorithm.rawValue, key: self.algorithm.keyTypeName)
        }
        switch backing {
        case .ed25519(let k): return SSHSignature(algorithm: algorithm, bytes: Array(try k.signature(for: data)))
        case .p256(let k): return SSHSignature(algorithm: algorithm, bytes: SSHSignature.ecdsaWireEncoding(raw: Array(try k.signature(for: data).rawRepresentation)))
        case .p384(let k): return SSHSignature(algorithm: algorithm, bytes: SSHSignature.ecdsaWireEncoding(raw: Array(try k.signature(for: data).rawRepresentation)))
        case .p521(let k): return SSHSignature(algorithm: algorithm, bytes: SSHSignature.ecdsaWireEncoding(raw: Array(try k.signature(for: data).rawRepresentation)))
        case .rsa(let k, _):
            let signature: _RSA.Signing.RSASignature
            switch algorithm {
            case .rsaSHA512: signature = try k.signature(for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5)
            case .rsaSHA256: signature = try k.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5)
            default: throw SignatureError.sha1Refused
            }
            return SSHSignature(algorithm: algorithm, bytes: Array(signature.rawRepresentation))
        }
    }
}

/// The few DER shapes needed to move RSA keys between swift-crypto and OpenSSH's format.
enum PKCS1 {
    /// Reads `RSAPrivateKey ::= SEQUENCE { version, n, e, d, p, q, dp, dq, qinv }`.
    static func components(ofPrivateKeyDER der: [UInt8]) throws -> SSHPrivateKey.RSAComponents {
        var reader = DERReader(der)
        var seq = try reader.sequence()
        _ = try seq.integer()
        let n = try seq.integer(), e = try seq.integer(), d = try seq.integer()
        let p = try seq.integer(), q = try seq.integer()
        _ = try seq.integer(); _ = try seq.integer()
        let qinv = try seq.integer()
        return .init(n: n, e: e, d: d, iqmp: qinv, p: p, q: q)
    }
}

struct DERReader {
    var bytes: ArraySlice<UInt8>
    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }
    init(slice: ArraySlice<UInt8>) { self.bytes = slice }

    mutating func tlv(_ expectedTag: UInt8) throws -> ArraySlice<UInt8> {
        guard let tag = bytes.popFirst(), tag == expectedTag, let first = bytes.popFirst() else {
            throw SSHKeyError.unsupportedPrivateKey("malformed DER")
        }
        var length = 0
        if first < 0x80 { length = Int(first) } else {
            let count = Int(first & 0x7f)
            guard count > 0, count <= 4, bytes.count >= count else { throw SSHKeyError.unsupportedPrivateKey("malformed DER length") }
            for _ in 0..<count { length = length << 8 | Int(bytes.popFirst()!) }
        }
        guard bytes.count >= length else { throw SSHKeyError.unsupportedPrivateKey("truncated DER") }
        let value = bytes.prefix(length)
        bytes = bytes.dropFirst(length)
        return value
    }

    mutating func sequence() throws -> DERReader { DERReader(slice: try tlv(0x30)) }
    mutating func integer() throws -> [UInt8] { Array(try tlv(0x02).drop(while: { $0 == 0 })) }
}
