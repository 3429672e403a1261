import Foundation

/// A JWS in compact serialization, split and decoded strictly before anything trusts it:
/// exactly three base64url parts without padding, a header that is a JSON object with a string
/// `alg`, and a payload that is a JSON object. Nothing here is verified yet.
public struct CompactJWS: Sendable {
    public let header: [String: JSONValue]
    public let claims: [String: JSONValue]
    public let alg: String
    public let kid: String?
    public let typ: String?
    /// The token as received, for the signature check.
    public let raw: String

    public init(_ token: String) throws(Refusal) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw Refusal(.malformedToken, check: "format", "the token has \(parts.count) dot-separated parts; a signed JWT has exactly 3 (JWE and unsigned tokens are not accepted)")
        }
        guard let headerBytes = Base64URL.decode(parts[0]) else { throw Refusal(.malformedToken, check: "header", "the header is not base64url") }
        guard let payloadBytes = Base64URL.decode(parts[1]) else { throw Refusal(.malformedToken, check: "payload", "the payload is not base64url") }
        guard Base64URL.decode(parts[2]) != nil else { throw Refusal(.malformedToken, check: "signature", "the signature is not base64url") }
        guard case .object(let h)? = try? JSONDecoder().decode(JSONValue.self, from: Data(headerBytes)) else {
            throw Refusal(.malformedToken, check: "header", "the header is not a JSON object")
        }
        guard case .object(let c)? = try? JSONDecoder().decode(JSONValue.self, from: Data(payloadBytes)) else {
            throw Refusal(.malformedToken, check: "payload", "the payload is not a JSON object")
        }
        guard case .string(let alg)? = h["alg"] else { throw Refusal(.malformedToken, check: "alg", "the header has no string \"alg\"") }
        // RFC 7515 §4.1.11: a critical header we do not understand must make the token invalid.
        if h["crit"] != nil { throw Refusal(.malformedToken, check: "crit", "the header lists critical extensions (\"crit\"), none of which Gatehouse implements") }
        switch h["kid"] {
        case nil: kid = nil
        case .string(let k)?: kid = k
        default: throw Refusal(.malformedToken, check: "kid", "the header's \"kid\" is not a string")
        }
        switch h["typ"] {
        case nil: typ = nil
        case .string(let t)?: typ = t
        default: throw Refusal(.malformedToken, check: "typ", "the header's \"typ\" is not a string")
        }
        header = h
        claims = c
        self.alg = alg
        raw = token
    }
}

enum Base64URL {
    /// Strict base64url without padding (RFC 7515 §2): any other character is a refusal.
    static func decode<S: StringProtocol>(_ text: S) -> [UInt8]? {
        var s = ""
        s.reserveCapacity(text.utf8.count + 3)
        for c in text.utf8 {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                s.unicodeScalars.append(Unicode.Scalar(c))
            case UInt8(ascii: "-"): s.append("+")
            case UInt8(ascii: "_"): s.append("/")
            default: return nil
            }
        }
        if s.utf8.count % 4 == 1 { return nil }
        while s.utf8.count % 4 != 0 { s.append("=") }
        return Data(base64Encoded: s).map { [UInt8]($0) }
    }
}
