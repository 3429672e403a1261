import Foundation
import JWTKit
import Logging

/// A token that passed every check, with the issuer that vouched for it.
public struct VerifiedToken: Sendable {
    public let issuer: IssuerConfiguration
    public let header: [String: JSONValue]
    public let claims: [String: JSONValue]
    public var subject: String { claims["sub"]?.string ?? "" }
    public var expiry: UInt64 { claims["exp"]?.number.map { UInt64($0) } ?? 0 }
    public var tokenID: String? { claims["jti"]?.string }
}

/// Verifies bearer tokens against the configured issuers. Order matters and is fixed: the
/// token's form, then which issuer it claims (only to pick keys), the algorithm allowlist, the
/// key, the signature, and only then the claim rules and replay, so no claim of an unverified
/// token ever decides anything but which keys to try.
public final class TokenVerifier: Sendable {
    struct Issuer: Sendable {
        let configuration: IssuerConfiguration
        let keys: KeySetCache
        let rules: [any ClaimRule]
    }

    let issuers: [String: Issuer]
    let replay: any TokenReplayGuard

    /// `replay` remembers used `jti`s (default: this process's memory).
    public init(issuers: [IssuerConfiguration], source: (IssuerConfiguration) -> any KeySetSource, logger: Logger, replay: (any TokenReplayGuard)? = nil) {
        self.replay = replay ?? ReplayCache()
        var map: [String: Issuer] = [:]
        for i in issuers {
            map[i.issuer] = Issuer(configuration: i,
                                   keys: KeySetCache(source: source(i), maxAge: i.keyMaxAgeSeconds, minRefreshInterval: i.refreshIntervalSeconds, logger: logger),
                                   rules: i.claimRules)
        }
        self.issuers = map
    }

    public func verify(_ token: String, now: UInt64) async -> Result<VerifiedToken, Refusal> {
        let jws: CompactJWS
        do throws(Refusal) { jws = try CompactJWS(token) } catch { return .failure(error) }
        // The unverified `iss` only selects whose keys to try; IssuerRule re-checks it once the
        // signature holds.
        guard let claimed = jws.claims["iss"]?.string else { return .failure(Refusal(.badIssuer, check: "iss", "the token has no string \"iss\" claim")) }
        guard let issuer = issuers[claimed] else {
            return .failure(Refusal(.badIssuer, check: "iss", "the token's issuer \"\(claimed)\" is not a configured issuer (configured: \(issuers.keys.sorted().map { "\"\($0)\"" }.joined(separator: ", ")))"))
        }
        let c = issuer.configuration
        guard let alg = JWSAlgorithm(rawValue: jws.alg), c.algorithms.contains(alg) else {
            let why = jws.alg.lowercased() == "none" ? "unsigned tokens (alg \"none\") are never accepted"
                : jws.alg.uppercased().hasPrefix("HS") ? "HMAC algorithms are never accepted: a shared secret cannot prove which party signed"
                : "the algorithm is not allowed for this issuer"
            return .failure(Refusal(.algNotAllowed, check: "alg", "alg \"\(jws.alg)\": \(why) (allowed: \(c.algorithms.map(\.rawValue).joined(separator: ", ")))"))
        }
        let key: KeySet.Key
        switch await issuer.keys.key(kid: jws.kid, now: now) {
        case .failure(let r): return .failure(r)
        case .success(let k): key = k
        }
        // The key must be of the kind the header's algorithm needs, and agree with the key's
        // own `alg`: the classic confusion attacks (RS256 key used as an HMAC secret, an EC key
        // read as RSA) die here before any cryptography runs.
        guard key.kty == alg.keyType else {
            return .failure(Refusal(.algNotAllowed, check: "alg", "alg \"\(alg.rawValue)\" needs a \(alg.keyType) key but key \"\(key.kid ?? "?")\" is \(key.kty)"))
        }
        if let keyAlg = key.alg, keyAlg != alg.rawValue {
            return .failure(Refusal(.algNotAllowed, check: "alg", "key \"\(key.kid ?? "?")\" is published for \(keyAlg), the token says \(alg.rawValue)"))
        }
        if let crv = key.crv, let expected = alg.curve, crv != expected {
            return .failure(Refusal(.algNotAllowed, check: "alg", "alg \"\(alg.rawValue)\" needs curve \(expected) but key \"\(key.kid ?? "?")\" is on \(crv)"))
        }
        do {
            _ = try await key.verifier.verify(token, as: AnyClaims.self)
        } catch {
            return .failure(Refusal(.badSignature, check: "signature", "the signature does not verify with key \"\(key.kid ?? "?")\" of \(c.issuer)"))
        }
        for rule in issuer.rules {
            if let refusal = rule.evaluate(header: jws.header, claims: jws.claims, now: now) { return .failure(refusal) }
        }
        let verified = VerifiedToken(issuer: c, header: jws.header, claims: jws.claims)
        if c.jtiReplay, let jti = verified.tokenID {
            switch await replay.claim(issuer: c.issuer, jti: jti, expiry: verified.expiry + c.skewSeconds, now: now) {
            case .first: break
            case .replayed:
                return .failure(Refusal(.tokenReplayed, check: "jti", "token \"\(jti)\" was already used; this issuer's tokens are single-use"))
            case .unavailable(let why):
                return .failure(Refusal(.storeUnavailable, check: "jti", "the token's single use cannot be checked: \(why)"))
            }
        }
        return .success(verified)
    }

    /// How often each issuer's keys were fetched (tests check the unknown-kid rate limit).
    public func keyFetchCount(issuer: String) async -> Int { await issuers[issuer]?.keys.fetchCount ?? 0 }
}

extension JWSAlgorithm {
    var curve: String? {
        switch self {
        case .es256: return "P-256"
        case .es384: return "P-384"
        case .es512: return "P-521"
        case .edDSA: return "Ed25519"
        default: return nil
        }
    }
}

/// jwt-kit decodes the payload into this and checks nothing: every claim check is a named rule
/// above, so each refusal can say which one failed.
struct AnyClaims: JWTPayload {
    init(from decoder: Decoder) throws {}
    func encode(to encoder: Encoder) throws {}
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
