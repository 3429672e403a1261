import Foundation

/// The checks a signature-verified token must pass, each a small rule that names itself when it
/// refuses (in the style of swift-certificates' verifier policies). Refusal is the default: a
/// missing or mistyped claim fails the rule that needs it.
public protocol ClaimRule: Sendable {
    /// The claim or header this rule checks, reported as `check` on refusal.
    var check: String { get }
    func evaluate(header: [String: JSONValue], claims: [String: JSONValue], now: UInt64) -> Refusal?
}

/// `iss` equals the configured issuer exactly (OIDC Core §3.1.3.7 step 2).
public struct IssuerRule: ClaimRule {
    public let issuer: String
    public var check: String { "iss" }
    public func evaluate(header: [String: JSONValue], claims: [String: JSONValue], now: UInt64) -> Refusal? {
        guard let iss = claims["iss"]?.string else { return Refusal(.badIssuer, check: check, "the token has no string \"iss\" claim") }
        guard iss == issuer else { return Refusal(.badIssuer, check: check, "the token's issuer \"\(iss)\" is not the configured issuer \"\(issuer)\"") }
        return nil
    }
}

/// `aud` (string or array) names at least one configured audience. When it names several,
/// `azp` must be one of ours too, so a token minted for another client is never accepted
/// because it also lists us (OIDC Core §3.1.3.7 steps 3–5).
public struct AudienceRule: ClaimRule {
    public let audiences: [String]
    public var check: String { "aud" }
    public func evaluate(header: [String: JSONValue], claims: [String: JSONValue], now: UInt64) -> Refusal? {
        let values: [String]
        switch claims["aud"] {
        case .string(let s)?: values = [s]
        case .array(let a)?: values = a.compactMap(\.string)
            if values.count != a.count { return Refusal(.badAudience, check: check, "the \"aud\" array holds a value that is not a string") }
        case nil: return Refusal(.badAudience, check: check, "the token has no \"aud\" claim")
        default: return Refusal(.badAudience, check: check, "the \"aud\" claim is neither a string nor an array of strings")
        }
        guard values.contains(where: audiences.contains) else {
            return Refusal(.badAudience, check: check, "the token is for audience \(values.map { "\"\($0)\"" }.joined(separator: ", ")), not for \(audiences.map { "\"\($0)\"" }.joined(separator: " or "))")
        }
        if values.count > 1 {
            guard let azp = claims["azp"]?.string, audiences.contains(azp) else {
                return Refusal(.badAudience, check: "azp", "the token names several audiences and its authorized party (\"azp\") is not a configured audience")
            }
        }
        return nil
    }
}

/// Reads a NumericDate claim: a JSON number of seconds, finite and non-negative.
func numericDate(_ claims: [String: JSONValue], _ name: String) -> Result<UInt64?, Refusal> {
    switch claims[name] {
    case nil: return .success(nil)
    case .number(let n)?:
        guard n.isFinite, n >= 0, n < 1e12 else { return .failure(Refusal(.malformedToken, check: name, "\"\(name)\" is not a valid time")) }
        return .success(UInt64(n))
    default: return .failure(Refusal(.malformedToken, check: name, "\"\(name)\" is not a number of seconds"))
    }
}

/// `exp` is required and not past (plus skew).
public struct ExpiryRule: ClaimRule {
    public let skew: UInt64
    public var check: String { "exp" }
    public func evaluate(header: [String: JSONValue], claims: [String: JSONValue], now: UInt64) -> Refusal? {
        switch numericDate(claims, "exp") {
        case .failure(let r): return r
        case .success(nil): return Refusal(.missingClaim, check: check, "the token has no \"exp\" claim; tokens without an expiry are never accepted")
        case .success(let exp?):
            if now >= exp + skew { return Refusal(.tokenExpired, check: check, "the token expired at \(exp) (\(now - exp) s ago; allowed skew \(skew) s)") }
            return nil
        }
    }
}

/// `nbf`, when present, has been reached (minus skew).
public struct NotBeforeRule: ClaimRule {
    public let skew: UInt64
    public var check: String { "nbf" }
    public func evaluate(header: [String: JSONValue], claims: [String: JSONValue], now: UInt64) -> Refusal? {
        switch numericDate(claims, "nbf") {
        case .failure(let r): return r
        case .success(nil): return nil
        case .success(let nbf?):
            if nbf > now + skew { return Refusal(.tokenNotYetValid, check: check, "the token is not valid before \(nbf) (\(nbf - now) s from now; allowed skew \(skew) s)") }
            return nil
        }
    }
}

/// `iat` is required, not in the future (plus skew) and not older than the configured age.
public struct IssuedAtRule: ClaimRule {
    public let skew: UInt64
    public let maxAge: UInt64
    public var check: String { "iat" }
    public func evaluate(header: [String: JSONValue], claims: [String: JSONValue], now: UInt64) -> Refusal? {
        switch numericDate(claims, "iat") {
        case .failure(let r): return r
        case .success(nil): return Refusal(.missingClaim, check: check, "the token has no \"iat\" claim")
        case .success(let iat?):
            if iat > now + skew { return Refusal(.badIssuedAt, check: check, "the token claims to be issued \(iat - now) s in the future (allowed skew \(skew) s)") }
            if now > iat + maxAge + skew { return Refusal(.badIssuedAt, check: check, "the token was issued \(now - iat) s ago; at most \(maxAge) s is accepted") }
            return nil
        }
    }
}

/// `sub` is a non-empty string: the subject every certificate and rate limit is keyed on.
/// No email is required (machine subjects have none).
public struct SubjectRule: ClaimRule {
    public var check: String { "sub" }
    public func evaluate(header: [String: JSONValue], claims: [String: JSONValue], now: UInt64) -> Refusal? {
        guard let sub = claims["sub"]?.string, !sub.isEmpty, sub.utf8.count <= 255 else {
            return Refusal(.missingClaim, check: check, "the token has no \"sub\" claim of 1 to 255 bytes")
        }
        guard !sub.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            return Refusal(.missingClaim, check: check, "the \"sub\" claim contains control characters")
        }
        return nil
    }
}

/// The token is of the configured kind. ID tokens and JWT access tokens are both signed JWTs
/// from the same keys, so without this an access token meant for an API could be replayed here
/// as an identity proof (or the reverse).
public struct TokenTypeRule: ClaimRule {
    public let type: TokenType
    public var check: String { "typ" }
    static let accessTypes: Set<String> = ["at+jwt", "application/at+jwt"]

    public func evaluate(header: [String: JSONValue], claims: [String: JSONValue], now: UInt64) -> Refusal? {
        let typ = header["typ"]?.string?.lowercased()
        let isAccess = typ.map(Self.accessTypes.contains) ?? false
        if let typ, !isAccess, typ != "jwt" {
            return Refusal(.wrongTokenType, check: check, "the token's type \"\(typ)\" is neither JWT nor at+jwt")
        }
        switch type {
        case .idToken where isAccess:
            return Refusal(.wrongTokenType, check: check, "an access token (typ \"\(typ!)\") was given where an ID token is required")
        case .accessToken where !isAccess:
            return Refusal(.wrongTokenType, check: check, "the token's type is \(typ.map { "\"\($0)\"" } ?? "absent"); an RFC 9068 access token (typ \"at+jwt\") is required")
        default:
            return nil
        }
    }
}

/// `jti` is required when replay protection is on (the replay cache then refuses a second use).
public struct TokenIDRule: ClaimRule {
    public var check: String { "jti" }
    public func evaluate(header: [String: JSONValue], claims: [String: JSONValue], now: UInt64) -> Refusal? {
        guard let jti = claims["jti"]?.string, !jti.isEmpty, jti.utf8.count <= 256 else {
            return Refusal(.missingClaim, check: check, "replay protection is on and the token has no \"jti\" claim of 1 to 256 bytes")
        }
        return nil
    }
}

extension IssuerConfiguration {
    /// The rules in the order they are reported: identity of the issuer first, then audience,
    /// then time, then the kind of token.
    public var claimRules: [any ClaimRule] {
        var rules: [any ClaimRule] = [IssuerRule(issuer: issuer), AudienceRule(audiences: audiences),
                                      ExpiryRule(skew: skewSeconds), NotBeforeRule(skew: skewSeconds),
                                      IssuedAtRule(skew: skewSeconds, maxAge: maxTokenAgeSeconds),
                                      SubjectRule(), TokenTypeRule(type: tokenType)]
        if jtiReplay { rules.append(TokenIDRule()) }
        return rules
    }
}
