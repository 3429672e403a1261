import Crypto
import CryptoExtras
import Foundation
import Hummingbird
import Logging
import NIOCore

/// A test-side OIDC provider: its own keys (RSA, P-256, Ed25519), a signer written directly on
/// swift-crypto (independent of the jwt-kit code under test, and able to forge the hostile tokens
/// no real provider would), and discovery + JWKS served over loopback HTTP by Hummingbird.
/// The real-provider test (GlewlwydTests) uses Debian's glewlwyd instead.
final class TestProvider: @unchecked Sendable {
    let rsa = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
    let ec = P256.Signing.PrivateKey()
    let ed = Curve25519.Signing.PrivateKey()
    /// Claims kid "ec-1" but is not in the JWKS: a signature from it must fail.
    let outsider = P256.Signing.PrivateKey()
    var port = 0
    var issuer: String { "http://127.0.0.1:\(port)" }
    private var task: Task<Void, any Error>?
    /// Extra keys published after a "rotation".
    var extraKeys: [[String: String]] = []
    let rotated = P256.Signing.PrivateKey()
    var jwksRequests = 0

    func start() async throws {
        let router = Router()
        router.get("/.well-known/openid-configuration") { _, _ -> Response in
            let doc = ["issuer": self.issuer, "jwks_uri": "\(self.issuer)/jwks", "authorization_endpoint": "\(self.issuer)/auth"]
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: doc))))
        }
        router.get("/jwks") { _, _ -> Response in
            self.jwksRequests += 1
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["keys": self.jwks]))))
        }
        let ready = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "test-provider")
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { ready.continuation.yield($0.localAddress?.port ?? 0) }, logger: logger)
        task = Task { try await app.runService(gracefulShutdownSignals: []) }
        for await p in ready.stream { port = p; break }
    }

    func stop() { task?.cancel() }

    var jwks: [[String: String]] {
        let p = try! rsa.publicKey.getKeyPrimitives()
        let ecRaw = ec.publicKey.rawRepresentation
        return [
            ["kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": b64(p.modulus), "e": b64(p.publicExponent)],
            ["kty": "EC", "kid": "ec-1", "use": "sig", "crv": "P-256", "x": b64(ecRaw.prefix(32)), "y": b64(ecRaw.suffix(32))],
            ["kty": "OKP", "kid": "ed-1", "use": "sig", "crv": "Ed25519", "x": b64(ed.publicKey.rawRepresentation)],
        ] + extraKeys
    }

    func publishRotatedKey() {
        let raw = rotated.publicKey.rawRepresentation
        extraKeys = [["kty": "EC", "kid": "ec-2", "use": "sig", "crv": "P-256", "x": b64(raw.prefix(32)), "y": b64(raw.suffix(32))]]
    }

    enum Signer { case rsa, ec, ed, outsider, rotated, none, hmac(Data) }

    /// Claims that pass every check for `audience`, valid now for `lifetime` seconds.
    func claims(sub: String = "agent-7", groups: Any = ["ops"], audience: Any = "gatehouse", lifetime: Int = 600, extra: [String: Any] = [:]) -> [String: Any] {
        let now = Int(Date().timeIntervalSince1970)
        var c: [String: Any] = ["iss": issuer, "sub": sub, "aud": audience, "iat": now, "exp": now + lifetime, "groups": groups, "jti": UUID().uuidString]
        for (k, v) in extra { c[k] = v }
        return c
    }

    func token(_ claims: [String: Any], signer: Signer = .ec, alg: String? = nil, kid: String? = nil, typ: String? = "JWT") -> String {
        var header: [String: Any] = [:]
        let defaultAlg: String, defaultKid: String?
        switch signer {
        case .rsa: (defaultAlg, defaultKid) = ("RS256", "rsa-1")
        case .ec, .outsider: (defaultAlg, defaultKid) = ("ES256", "ec-1")
        case .rotated: (defaultAlg, defaultKid) = ("ES256", "ec-2")
        case .ed: (defaultAlg, defaultKid) = ("EdDSA", "ed-1")
        case .none: (defaultAlg, defaultKid) = ("none", nil)
        case .hmac: (defaultAlg, defaultKid) = ("HS256", "rsa-1")
        }
        header["alg"] = alg ?? defaultAlg
        if let k = kid ?? defaultKid { header["kid"] = k }
        if let typ { header["typ"] = typ }
        let input = b64(try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) + "." + b64(try! JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
        let data = Data(input.utf8)
        let signature: Data
        switch signer {
        case .rsa: signature = try! rsa.signature(for: data, padding: .insecurePKCS1v1_5).rawRepresentation
        case .ec: signature = try! ec.signature(for: data).rawRepresentation
        case .outsider: signature = try! outsider.signature(for: data).rawRepresentation
        case .rotated: signature = try! rotated.signature(for: data).rawRepresentation
        case .ed: signature = try! ed.signature(for: data)
        case .none: signature = Data()
        case .hmac(let secret): signature = Data(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: secret)))
        }
        return input + "." + b64(signature)
    }

    /// The RSA public key as PEM, the "secret" of the classic RS256→HS256 confusion attack.
    var rsaPublicPEM: Data { Data(rsa.publicKey.pemRepresentation.utf8) }
}

func b64<D: DataProtocol>(_ d: D) -> String {
    Data(d).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
}
