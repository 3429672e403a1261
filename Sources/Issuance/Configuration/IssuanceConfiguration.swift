import Foundation

/// The `issuance:` section of the configuration file: the HTTP listener that trades OIDC tokens
/// for user certificates. Absent section: no listener. Every field has a conservative default.
public struct IssuanceConfiguration: Sendable {
    /// `host:port`; plain HTTP is allowed only on a loopback address.
    public var listenHost = "127.0.0.1"
    public var listenPort = 8022
    /// PEM certificate chain and private key; both or neither.
    public var tls: TLSFiles?
    public var issuers: [IssuerConfiguration] = []
    public var mapping = ClaimMapping()
    /// Longest certificate lifetime, whatever the request asks.
    public var maxTTL: UInt64 = 3600
    /// Lifetime when the request names none.
    public var defaultTTL: UInt64 = 600
    /// Per-subject issuance budget.
    public var rateLimit = RateLimit()
    /// Largest request body and bearer token accepted; larger ones get 413 before any parsing.
    public var maxBodyBytes = 16 * 1024
    public var maxTokenBytes = 16 * 1024
    /// The bastion's SSH address(es) as agents reach it (`host:port`, e.g. a load balancer's),
    /// returned in every issuance answer so `gatehouse login` prints a command that works.
    /// Empty in the file: `serve` fills in the addresses the SSH front listens on.
    public var bastionAddresses: [String] = []
    /// What the issuance audit record keeps of the prompt a client sent: its text (bounded by
    /// `auditPromptMaxBytes`), only its SHA-256, or nothing. Never the certificate: only the hash
    /// goes there.
    public var auditPrompt = PromptAuditMode.full
    public var auditPromptMaxBytes = 64 * 1024

    public init() {}

    public struct TLSFiles: Sendable, Equatable {
        public var certificate: String
        public var key: String
        public init(certificate: String, key: String) {
            self.certificate = certificate
            self.key = key
        }
    }

    /// A token bucket per subject: `burst` issuances at once, refilled at `perMinute`.
    public struct RateLimit: Sendable, Equatable {
        public var perMinute = 60
        public var burst = 10
        public init(perMinute: Int = 60, burst: Int = 10) {
            self.perMinute = perMinute
            self.burst = burst
        }
    }

    /// Plain HTTP carries bearer tokens in the clear: refused anywhere but loopback.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// `issuance.audit_prompt`.
public enum PromptAuditMode: String, Sendable {
    case full, hash, none
}

/// One trusted OIDC provider.
public struct IssuerConfiguration: Sendable {
    /// Must equal the token's `iss` exactly (no trailing-slash leniency).
    public var issuer: String
    /// Accepted `aud` values; a token must name at least one.
    public var audiences: [String]
    /// Signature algorithms accepted from this issuer; never `none`, never HMAC.
    public var algorithms: [JWSAlgorithm] = [.rs256, .es256, .edDSA]
    public var tokenType: TokenType = .idToken
    /// Clock skew allowed on exp, nbf and iat.
    public var skewSeconds: UInt64 = 60
    /// Tokens older than this (by iat) are refused, whatever their exp.
    public var maxTokenAgeSeconds: UInt64 = 3600
    /// Refuse a second use of the same `jti` (and refuse tokens without one).
    public var jtiReplay = false
    /// Overrides discovery: fetch keys from here directly.
    public var jwksURI: String?
    /// Shortest time between two key-set fetches caused by unknown `kid`s.
    public var refreshIntervalSeconds: UInt64 = 30
    /// Key sets are re-fetched when older than this, so rotated-out keys stop verifying.
    public var keyMaxAgeSeconds: UInt64 = 3600
    /// Per-issuer claim mapping; nil uses the section's default.
    public var mapping: ClaimMapping?

    public init(issuer: String, audiences: [String]) {
        self.issuer = issuer
        self.audiences = audiences
    }

    public var discoveryURL: String {
        (issuer.hasSuffix("/") ? String(issuer.dropLast()) : issuer) + "/.well-known/openid-configuration"
    }
}

/// JWS algorithms Gatehouse accepts at all. `none` and HS* are not representable.
public enum JWSAlgorithm: String, Sendable, CaseIterable, Codable {
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case es256 = "ES256", es384 = "ES384", es512 = "ES512"
    case edDSA = "EdDSA"

    /// The JWK key type (`kty`) this algorithm needs.
    public var keyType: String {
        switch self {
        case .rs256, .rs384, .rs512, .ps256, .ps384, .ps512: return "RSA"
        case .es256, .es384, .es512: return "EC"
        case .edDSA: return "OKP"
        }
    }
}

/// Which kind of token an issuer's tokens must be.
public enum TokenType: String, Sendable, CaseIterable {
    /// An OIDC ID token: `typ` absent or `JWT`, and never `at+jwt`.
    case idToken = "id_token"
    /// An RFC 9068 JWT access token: `typ` must be `at+jwt` (or `application/at+jwt`).
    case accessToken = "access_token"
    /// Either; the `typ` header still must be one of the above.
    case any
}
