import Foundation

/// How a verified token's claims become a certificate's key id, principals and scopes.
///
///     key_id: "oidc:{sub}"            # template over claims, {a.b} for nested ones
///     principals: ["{preferred_username}", "agent"]
///     groups_claim: realm_access.roles   # array, or a comma-joined string
///     scopes_claim: scope                # optional: a claim whose values name scopes directly
///     group_scopes: {ops: [ops-read, ops-write], dev: [dev-read]}
///
/// A token that maps to no scope is refused (403): a certificate without scopes could do nothing
/// and would only hide a configuration mistake.
public struct ClaimMapping: Sendable, Equatable {
    public var keyID = ClaimTemplate("oidc:{iss}:{sub}")
    public var principals: [ClaimTemplate] = [ClaimTemplate("{sub}")]
    public var groupsClaim = ClaimPath("groups")
    /// Claim whose values are taken as scope names, filtered by `allowedScopes`.
    public var scopesClaim: ClaimPath?
    /// Scope names a `scopes_claim` may grant; nil means any valid scope name.
    public var allowedScopes: Set<String>?
    public var groupScopes: [String: [String]] = [:]

    public init() {}
}

/// A dotted path into the claims: `realm_access.roles`. Segments are plain names; a claim whose
/// own name contains a dot is reached with a quoted segment, `"https://example.com/groups"`.
public struct ClaimPath: Sendable, Equatable, CustomStringConvertible {
    public let segments: [String]

    public init(_ text: String) { segments = Self.split(text) ?? [text] }

    public init?(parsing text: String) {
        guard let s = Self.split(text), !s.isEmpty, s.allSatisfy({ !$0.isEmpty }) else { return nil }
        segments = s
    }

    public var description: String { segments.map { $0.contains(".") ? "\"\($0)\"" : $0 }.joined(separator: ".") }

    static func split(_ text: String) -> [String]? {
        var result: [String] = []
        var current = ""
        var quoted = false
        for c in text {
            if c == "\"" { quoted.toggle(); continue }
            if c == "." && !quoted { result.append(current); current = ""; continue }
            current.append(c)
        }
        guard !quoted else { return nil }
        result.append(current)
        return result
    }

    /// The value at this path, or nil if any segment is missing or not an object.
    public func lookup(_ claims: [String: JSONValue]) -> JSONValue? {
        var value: JSONValue = .object(claims)
        for segment in segments {
            guard case .object(let o) = value, let next = o[segment] else { return nil }
            value = next
        }
        return value
    }

    /// The claim as a list of strings: an array of strings, or a string split on commas (and
    /// spaces, for OAuth's space-separated `scope`). Anything else yields nil.
    public func strings(_ claims: [String: JSONValue]) -> [String]? {
        switch lookup(claims) {
        case .string(let s):
            return s.split(whereSeparator: { $0 == "," || $0 == " " }).map { String($0) }.filter { !$0.isEmpty }
        case .array(let items):
            var out: [String] = []
            for item in items {
                guard case .string(let s) = item else { return nil }
                out.append(s)
            }
            return out
        default:
            return nil
        }
    }
}

/// A string with `{claim.path}` placeholders, e.g. `oidc:{sub}`. A placeholder whose claim is
/// missing or not a scalar makes the template fail, so a certificate never carries a silently
/// empty key id or principal.
public struct ClaimTemplate: Sendable, Equatable, CustomStringConvertible {
    enum Part: Sendable, Equatable { case literal(String), claim(ClaimPath) }
    let parts: [Part]
    public let description: String

    public init(_ text: String) { self = (try? Self.parse(text)) ?? ClaimTemplate(parts: [.literal(text)], text: text) }

    private init(parts: [Part], text: String) {
        self.parts = parts
        description = text
    }

    public static func parse(_ text: String) throws -> ClaimTemplate {
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            if open > rest.startIndex { parts.append(.literal(String(rest[..<open]))) }
            guard let close = rest[open...].firstIndex(of: "}") else { throw TemplateError("unclosed { in \"\(text)\"") }
            let inner = String(rest[rest.index(after: open)..<close])
            guard let path = ClaimPath(parsing: inner) else { throw TemplateError("\"{\(inner)}\" is not a claim path") }
            parts.append(.claim(path))
            rest = rest[rest.index(after: close)...]
        }
        if rest.contains("}") { throw TemplateError("stray } in \"\(text)\"") }
        if !rest.isEmpty { parts.append(.literal(String(rest))) }
        return ClaimTemplate(parts: parts, text: text)
    }

    public struct TemplateError: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// Fills the template; returns the first claim path that was missing when it cannot.
    public func render(_ claims: [String: JSONValue]) -> Result<String, MissingClaim> {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let s): out += s
            case .claim(let path):
                switch path.lookup(claims) {
                case .string(let s): out += s
                case .number(let n): out += n.rounded() == n && abs(n) < 1e15 ? String(Int64(n)) : String(n)
                case .bool(let b): out += b ? "true" : "false"
                default: return .failure(MissingClaim(path: path))
                }
            }
        }
        return .success(out)
    }

    public struct MissingClaim: Error, Sendable { public let path: ClaimPath }
}
