import Foundation

/// Why a signature was not accepted.
public enum SignatureError: Error, Equatable, Sendable, CustomStringConvertible {
    case malformed(SSHWireError)
    case unknownAlgorithm(String)
    case algorithmMismatch(signature: String, key: String)
    case sha1Refused
    case badSignature

    public var description: String {
        switch self {
        case .malformed(let e): return "malformed signature: \(e)"
        case .unknownAlgorithm(let a): return "unknown signature algorithm \"\(a)\""
        case .algorithmMismatch(let s, let k): return "signature algorithm \(s) does not fit a \(k) key"
        case .sha1Refused: return "SHA-1 RSA signatures (ssh-rsa) are refused"
        case .badSignature: return "the signature does not verify"
        }
    }
}

/// An SSH signature blob: `string algorithm, string signature`.
public struct SSHSignature: Sendable, Equatable {
    public let algorithm: SSHSignatureAlgorithm
    /// For Ed25519 and RSA the raw signature; for ECDSA the `mpint r, mpint s` encoding.
    public let bytes: [UInt8]

    public init(algorithm: SSHSignatureAlgorithm, bytes: [UInt8]) {
        self.algorithm = algorithm
        self.bytes = bytes
    }

    public init(blob: [UInt8]) throws(SignatureError) {
        var reader = SSHWireReader(blob)
        do {
            let name = try reader.readText("signature algorithm")
            guard let algorithm = SSHSignatureAlgorithm(rawValue: name) else { throw SignatureError.unknownAlgorithm(name) }
            self.algorithm = algorithm
            self.bytes = try reader.readString("signature")
            try reader.expectEnd("signature")
        } catch let e as SSHWireError {
            throw .malformed(e)
        } catch let e as SignatureError {
            throw e
        } catch {
            throw .badSignature
        }
    }

    public var blob: [UInt8] {
        var w = SSHWireWriter()
        w.writeString(algorithm.rawValue)
        w.writeString(bytes)
        return w.bytes
    }

    /// Converts the SSH ECDSA encoding (`mpint r, mpint s`) into fixed-width `r || s`.
    func ecdsaRawRepresentation(coordinateBytes: Int) -> [UInt8]? {
        var reader = SSHWireReader(bytes)
        guard let r = try? reader.readPositiveMPInt("r"), let s = try? reader.readPositiveMPInt("s"),
              reader.isAtEnd, r.count <= coordinateBytes, s.count <= coordinateBytes else { return nil }
        return [UInt8](repeating: 0, count: coordinateBytes - r.count) + r + [UInt8](repeating: 0, count: coordinateBytes - s.count) + s
    }

    static func ecdsaWireEncoding(raw: [UInt8]) -> [UInt8] {
        let half = raw.count / 2
        var w = SSHWireWriter()
        w.writePositiveMPInt(raw[..<half])
        w.writePositiveMPInt(raw[half...])
        return w.bytes
    }
}
