import Crypto
import CryptoExtras
import Foundation

/// The public half of a key as a usable crypto object, with its wire encoding.
enum KeyMaterial: Sendable {
    case ed25519(Curve25519.Signing.PublicKey)
    case p256(P256.Signing.PublicKey)
    case p384(P384.Signing.PublicKey)
    case p521(P521.Signing.PublicKey)
    /// `key` is nil when the modulus is below what the crypto library accepts (2048 bits); such a
    /// key still parses so that validation can refuse it with "RSA key too small".
    case rsa(e: [UInt8], n: [UInt8], key: _RSA.Signing.PublicKey?)

    var verifier: SignatureVerifier { SignatureVerifier(material: self) }

    var bits: Int {
        switch self {
        case .ed25519: return 256
        case .p256: return 256
        case .p384: return 384
        case .p521: return 521
        case .rsa(_, let n, _): return KeyMaterial.bitLength(n)
        }
    }

    static func bitLength(_ magnitude: [UInt8]) -> Int {
        guard let first = magnitude.first(where: { $0 != 0 }), let index = magnitude.firstIndex(of: first) else { return 0 }
        return (magnitude.count - index - 1) * 8 + (8 - first.leadingZeroBitCount)
    }

    static func read(_ algorithm: SSHKeyAlgorithm, from reader: inout SSHWireReader) throws -> KeyMaterial {
        switch algorithm {
        case .ed25519:
            let pk = try reader.readString("ed25519 public key")
            guard pk.count == 32 else { throw SSHKeyError.invalidKeyMaterial("ed25519 public key is \(pk.count) bytes, not 32") }
            return .ed25519(try Curve25519.Signing.PublicKey(rawRepresentation: pk))
        case .ecdsaP256, .ecdsaP384, .ecdsaP521:
            let curve = try reader.readText("ECDSA curve name")
            guard curve == algorithm.curveName else { throw SSHKeyError.curveMismatch(expected: algorithm.curveName ?? "", found: curve) }
            let q = try reader.readString("ECDSA public point")
            guard q.first == 0x04 else { throw SSHKeyError.invalidKeyMaterial("ECDSA point is not in uncompressed form") }
            do {
                switch algorithm {
                case .ecdsaP256: return .p256(try P256.Signing.PublicKey(x963Representation: q))
                case .ecdsaP384: return .p384(try P384.Signing.PublicKey(x963Representation: q))
                default: return .p521(try P521.Signing.PublicKey(x963Representation: q))
                }
            } catch {
                throw SSHKeyError.invalidKeyMaterial("ECDSA point is not on curve \(curve)")
            }
        case .rsa:
            let e = try reader.readPositiveMPInt("RSA exponent")
            let n = try reader.readPositiveMPInt("RSA modulus")
            guard !e.isEmpty, e.count <= 8, e.last! & 1 == 1 else { throw SSHKeyError.invalidKeyMaterial("RSA public exponent is not a small odd number") }
            let bits = bitLength(n)
            guard bits >= 512, bits <= 16384 else { throw SSHKeyError.invalidKeyMaterial("RSA modulus of \(bits) bits is out of range") }
            let key = bits >= 2048 ? try? _RSA.Signing.PublicKey(n: n, e: e) : nil
            if bits >= 2048 && key == nil { throw SSHKeyError.invalidKeyMaterial("RSA key rejected by the crypto library") }
            return .rsa(e: e, n: n, key: key)
        }
    }

    func write(to w: inout SSHWireWriter) {
        switch self {
        case .ed25519(let k): w.writeString(Array(k.rawRepresentation))
        case .p256(let k): w.writeString("nistp256"); w.writeString(Array(k.x963Representation))
        case .p384(let k): w.writeString("nistp384"); w.writeString(Array(k.x963Representation))
        case .p521(let k): w.writeString("nistp521"); w.writeString(Array(k.x963Representation))
        case .rsa(let e, let n, _): w.writePositiveMPInt(e); w.writePositiveMPInt(n)
        }
    }
}

/// Checks SSH signatures for one public key.
struct SignatureVerifier: Sendable {
    let material: KeyMaterial

    func isValid(signature: SSHSignature, over data: [UInt8]) -> Bool {
        switch material {
        case .ed25519(let k):
            return signature.bytes.count == 64 && k.isValidSignature(signature.bytes, for: data)
        case .p256(let k):
            guard let raw = signature.ecdsaRawRepresentation(coordinateBytes: 32),
                  let sig = try? P256.Signing.ECDSASignature(rawRepresentation: raw) else { return false }
            return k.isValidSignature(sig, for: data)
        case .p384(let k):
            guard let raw = signature.ecdsaRawRepresentation(coordinateBytes: 48),
                  let sig = try? P384.Signing.ECDSASignature(rawRepresentation: raw) else { return false }
            return k.isValidSignature(sig, for: data)
        case .p521(let k):
            guard let raw = signature.ecdsaRawRepresentation(coordinateBytes: 66),
                  let sig = try? P521.Signing.ECDSASignature(rawRepresentation: raw) else { return false }
            return k.isValidSignature(sig, for: data)
        case .rsa(_, let n, let key):
            guard let key else { return false }
            // PKCS#1 v1.5 signatures are exactly the modulus length (RFC 8332 allows shorter, but
            // OpenSSH pads; libcrypto accepts shorter only when left-padded, so pad here).
            let modulusBytes = (KeyMaterial.bitLength(n) + 7) / 8
            guard signature.bytes.count <= modulusBytes else { return false }
            let padded = [UInt8](repeating: 0, count: modulusBytes - signature.bytes.count) + signature.bytes
            let sig = _RSA.Signing.RSASignature(rawRepresentation: padded)
            switch signature.algorithm {
            case .rsaSHA512: return key.isValidSignature(sig, for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5)
            case .rsaSHA256: return key.isValidSignature(sig, for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5)
            case .rsaSHA1: return key.isValidSignature(sig, for: Insecure.SHA1.hash(data: data), padding: .insecurePKCS1v1_5)
            default: return false
            }
        }
    }
}
