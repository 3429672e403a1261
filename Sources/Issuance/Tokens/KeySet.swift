import Foundation
import JWTKit

/// One issuer's signing keys, parsed from its JWKS. Each key gets a jwt-kit collection of its
/// own holding only that key: jwt-kit falls back to a collection's default key when a `kid` is
/// unknown, and a fallback across keys is exactly what must never happen here.
struct KeySet: Sendable {
    struct Key: Sendable {
        let kid: String?
        let kty: String
        let alg: String?
        let crv: String?
        let verifier: JWTKeyCollection
    }

    let keys: [Key]
    /// Keys skipped and why (encryption keys, unsupported types), for logs.
    let skipped: [String]

    static let empty = KeySet(keys: [], skipped: [])

    init(keys: [Key], skipped: [String]) {
        self.keys = keys
        self.skipped = skipped
    }

    /// Parses a JWKS document. Encryption keys (`use: enc`) and unsupported key types are
    /// skipped; a document that is not a JWKS at all is an error.
    init(jwks data: [UInt8]) async throws {
        guard case .object(let root) = try JSONDecoder().decode(JSONValue.self, from: Data(data)), case .array(let list)? = root["keys"] else {
            throw KeySetError("the key set is not a JSON object with a \"keys\" array")
        }
        var keys: [Key] = [], skipped: [String] = []
        for (i, item) in list.enumerated() {
            guard case .object(let o) = item, let kty = o["kty"]?.string else { skipped.append("keys[\(i)]: no kty"); continue }
            let kid = o["kid"]?.string
            let name = kid.map { "kid \"\($0)\"" } ?? "keys[\(i)]"
            if let use = o["use"]?.string, use != "sig" { skipped.append("\(name): use \(use)"); continue }
            guard ["RSA", "EC", "OKP"].contains(kty) else { skipped.append("\(name): kty \(kty)"); continue }
            // Private parameters in a published key set mean a misconfigured provider; the
            // public part still verifies, so only the public fields are handed to jwt-kit.
            var publicFields = o.filter { ["kty", "kid", "alg", "crv", "n", "e", "x", "y"].contains($0.key) }
            if publicFields["kid"] == nil { publicFields["kid"] = .string("#\(i)") }
            do {
                let json = String(decoding: try JSONEncoder().encode(JSONValue.object(publicFields)), as: UTF8.self)
                let collection = JWTKeyCollection()
                try await collection.add(jwk: JWK(json: json), isDefault: true)
                keys.append(Key(kid: kid, kty: kty, alg: o["alg"]?.string, crv: o["crv"]?.string, verifier: collection))
            } catch {
                skipped.append("\(name): \(error)")
            }
        }
        self.keys = keys
        self.skipped = skipped
    }

    /// The key a token names. Without a `kid` only a set of exactly one key can answer.
    func key(kid: String?) -> Key? {
        guard let kid else { return keys.count == 1 ? keys[0] : nil }
        return keys.first { $0.kid == kid }
    }
}

struct KeySetError: Error, CustomStringConvertible, Sendable {
    let description: String
    init(_ d: String) { description = d }
}

/// Where an issuer's keys come from. The HTTP implementation does OIDC discovery; tests may
/// supply their own.
public protocol KeySetSource: Sendable {
    /// The JWKS document's bytes.
    func fetchKeySet() async throws -> [UInt8]
}
