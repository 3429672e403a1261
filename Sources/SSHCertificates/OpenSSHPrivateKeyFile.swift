import Crypto
import CryptoExtras
import Foundation

/// Reads and writes unencrypted `openssh-key-v1` private key files (what `ssh-keygen` writes),
/// so an existing ssh-keygen CA can be imported and a Gatehouse CA exported.
public enum OpenSSHPrivateKeyFile {
    static let armorBegin = "-----BEGIN OPENSSH PRIVATE KEY-----"
    static let armorEnd = "-----END OPENSSH PRIVATE KEY-----"
    static let magic = Array("openssh-key-v1".utf8) + [0]

    public static func parse(_ text: String) throws(SSHKeyError) -> SSHPrivateKey {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let begin = lines.firstIndex(of: armorBegin), let end = lines.firstIndex(of: armorEnd), begin < end else {
            throw .malformedText("not an OpenSSH private key (no \(armorBegin) block)")
        }
        guard let data = Data(base64Encoded: lines[(begin + 1)..<end].joined()) else {
            throw .malformedText("the private key block is not valid base64")
        }
        return try parse(binary: Array(data))
    }

    public static func parse(binary: [UInt8]) throws(SSHKeyError) -> SSHPrivateKey {
        do {
            guard binary.starts(with: magic) else { throw SSHKeyError.malformedText("missing openssh-key-v1 magic") }
            var r = SSHWireReader(Array(binary.dropFirst(magic.count)))
            let cipher = try r.readText("cipher name")
            let kdf = try r.readText("kdf name")
            _ = try r.readString("kdf options")
            guard cipher == "none", kdf == "none" else {
                throw SSHKeyError.unsupportedPrivateKey("the key is encrypted (\(cipher)); remove the passphrase with ssh-keygen -p first")
            }
            let count = try r.readUInt32("key count")
            guard count == 1 else { throw SSHKeyError.unsupportedPrivateKey("the file holds \(count) keys; exactly one is supported") }
            let publicBlob = try r.readString("public key")
            let privateSection = try r.readString("private section")
            try r.expectEnd("private key file")

            var p = SSHWireReader(privateSection)
            let check1 = try p.readUInt32("check integer"), check2 = try p.readUInt32("check integer")
            guard check1 == check2 else { throw SSHKeyError.malformedText("check integers differ (wrong passphrase or corrupt file)") }
            let typeName = try p.readText("private key type")
            guard let algorithm = SSHKeyAlgorithm(keyTypeName: typeName) else { throw SSHKeyError.unknownKeyType(typeName) }
            let backing = try readBacking(algorithm, from: &p)
            let comment = try p.readText("comment")
            // Padding is 1, 2, 3, ... up to the cipher block size; anything else is corruption.
            var expected: UInt8 = 1
            while !p.isAtEnd {
                guard try p.readByte("padding") == expected else { throw SSHKeyError.malformedText("bad padding in private section") }
                expected += 1
            }
            let key = try SSHPrivateKey(backing: backing, comment: comment)
            guard key.publicKey.blob == publicBlob else {
                throw SSHKeyError.invalidKeyMaterial("the public key does not match the private key")
            }
            return key
        } catch let e as SSHKeyError {
            throw e
        } catch let e as SSHWireError {
            throw .wire(e)
        } catch {
            throw .invalidKeyMaterial("\(error)")
        }
    }

    private static func readBacking(_ algorithm: SSHKeyAlgorithm, from p: inout SSHWireReader) throws -> SSHPrivateKey.Backing {
        switch algorithm {
        case .ed25519:
            let pk = try p.readString("ed25519 public key")
            let sk = try p.readString("ed25519 secret key")
            guard pk.count == 32, sk.count == 64, Array(sk[32...]) == pk else {
                throw SSHKeyError.invalidKeyMaterial("ed25519 private key has the wrong shape")
            }
            return .ed25519(try Curve25519.Signing.PrivateKey(rawRepresentation: sk[..<32]))
        case .ecdsaP256, .ecdsaP384, .ecdsaP521:
            let curve = try p.readText("ECDSA curve")
            guard curve == algorithm.curveName else { throw SSHKeyError.curveMismatch(expected: algorithm.curveName ?? "", found: curve) }
            _ = try p.readString("ECDSA public point")
            let d = try p.readPositiveMPInt("ECDSA private scalar")
            let width = algorithm == .ecdsaP256 ? 32 : algorithm == .ecdsaP384 ? 48 : 66
            guard d.count <= width else { throw SSHKeyError.invalidKeyMaterial("ECDSA private scalar too long") }
            let raw = [UInt8](repeating: 0, count: width - d.count) + d
            switch algorithm {
            case .ecdsaP256: return .p256(try P256.Signing.PrivateKey(rawRepresentation: raw))
            case .ecdsaP384: return .p384(try P384.Signing.PrivateKey(rawRepresentation: raw))
            default: return .p521(try P521.Signing.PrivateKey(rawRepresentation: raw))
            }
        case .rsa:
            let n = try p.readPositiveMPInt("RSA n"), e = try p.readPositiveMPInt("RSA e")
            let d = try p.readPositiveMPInt("RSA d"), iqmp = try p.readPositiveMPInt("RSA iqmp")
            let pp = try p.readPositiveMPInt("RSA p"), q = try p.readPositiveMPInt("RSA q")
            guard KeyMaterial.bitLength(n) >= 2048 else { throw SSHKeyError.unsupportedPrivateKey("RSA keys below 2048 bits are not accepted") }
            let key = try _RSA.Signing.PrivateKey(n: n, e: e, d: d, p: pp, q: q)
            return .rsa(key, .init(n: n, e: e, d: d, iqmp: iqmp, p: pp, q: q))
        }
    }

    /// Serializes `key` as an unencrypted openssh-key-v1 file, PEM-armored with 70-column lines.
    public static func serialize(_ key: SSHPrivateKey, checkInteger: UInt32 = UInt32.random(in: .min ... .max)) -> String {
        var priv = SSHWireWriter()
        priv.writeUInt32(checkInteger)
        priv.writeUInt32(checkInteger)
        priv.writeString(key.algorithm.keyTypeName)
        switch key.backing {
        case .ed25519(let k):
            let pk = Array(k.publicKey.rawRepresentation)
            priv.writeString(pk)
            priv.writeString(Array(k.rawRepresentation) + pk)
        case .p256(let k):
            priv.writeString("nistp256"); priv.writeString(Array(k.publicKey.x963Representation)); priv.writePositiveMPInt(Array(k.rawRepresentation))
        case .p384(let k):
            priv.writeString("nistp384"); priv.writeString(Array(k.publicKey.x963Representation)); priv.writePositiveMPInt(Array(k.rawRepresentation))
        case .p521(let k):
            priv.writeString("nistp521"); priv.writeString(Array(k.publicKey.x963Representation)); priv.writePositiveMPInt(Array(k.rawRepresentation))
        case .rsa(_, let c):
            for v in [c.n, c.e, c.d, c.iqmp, c.p, c.q] { priv.writePositiveMPInt(v) }
        }
        priv.writeString(key.comment)
        var pad: UInt8 = 1
        while priv.bytes.count % 8 != 0 { priv.writeByte(pad); pad += 1 }

        var file = SSHWireWriter()
        file.writeRaw(magic)
        file.writeString("none"); file.writeString("none"); file.writeString([UInt8]())
        file.writeUInt32(1)
        file.writeString(key.publicKey.blob)
        file.writeString(priv.bytes)
        let b64 = Data(file.bytes).base64EncodedString()
        var out = armorBegin + "\n"
        var i = b64.startIndex
        while i < b64.endIndex {
            let j = b64.index(i, offsetBy: 70, limitedBy: b64.endIndex) ?? b64.endIndex
            out += b64[i..<j] + "\n"
            i = j
        }
        return out + armorEnd + "\n"
    }
}
