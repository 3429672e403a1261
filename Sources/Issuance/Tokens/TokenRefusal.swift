import Refusals

/// Why a request was refused: a machine code for clients, the check that refused, and a precise
/// sentence for the human reading the log. Every refusal path in Issuance ends in one of these.
public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        // 401: the token itself was refused.
        case malformedToken = "malformed_token"
        case missingToken = "missing_token"
        case algNotAllowed = "alg_not_allowed"
        case badIssuer = "bad_issuer"
        case unknownKid = "unknown_kid"
        case badSignature = "bad_signature"
        case badAudience = "bad_audience"
        case tokenExpired = "token_expired"
        case tokenNotYetValid = "token_not_yet_valid"
        case badIssuedAt = "bad_issued_at"
        case wrongTokenType = "wrong_token_type"
        case tokenReplayed = "token_replayed"
        case missingClaim = "missing_claim"
        case keysUnavailable = "keys_unavailable"
        // 403: the token is fine but grants nothing, or not what the request narrows to.
        case noScopes = "no_scopes"
        case notGranted = "not_granted"
        // 400 / 413 / 429.
        case badRequest = "bad_request"
        case badPublicKey = "bad_public_key"
        case tooLarge = "too_large"
        case rateLimited = "rate_limited"
        // 500: our side failed (signing, audit).
        case internalError = "internal_error"
        // 503: the shared state store cannot be reached; another replica may answer.
        case storeUnavailable = "store_unavailable"
    }

    public let code: Code
    /// The check that refused: `exp`, `aud`, `iss`, `signature`, `alg`, `kid`, `body`, …
    public let check: String
    public let message: String
    /// For 429: seconds until the subject may ask again.
    public var retryAfter: Int?

    public init(_ code: Code, check: String, _ message: String, retryAfter: Int? = nil) {
        self.code = code
        self.check = check
        self.message = message
        self.retryAfter = retryAfter
    }

    public var status: Int {
        switch code {
        case .badRequest, .badPublicKey: return 400
        case .noScopes, .notGranted: return 403
        case .tooLarge: return 413
        case .rateLimited: return 429
        case .keysUnavailable, .storeUnavailable: return 503
        case .internalError: return 500
        default: return 401
        }
    }

    public var description: String { "\(code.rawValue) (\(check)): \(message)" }
}

extension Refusal: RefusalConvertible {
    /// The shared shape: the check that refused is the rule, the message the reason.
    public var refusal: Refusals.Refusal { Refusals.Refusal(code: code.rawValue, rule: check, reason: message) }
}
