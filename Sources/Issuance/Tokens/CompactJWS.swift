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
        let parts = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).map { Substring($0) }
        guard parts.count == 3 else {
            throw Refusal(.malformedToken, check: "format", "the token has \(parts.count) dot-separated parts; a signed JWT has exactly 3 (JWE and unsigned tokens are not accepted)")
        }
        guard let headerBytes = Base64URL.decode(parts[0]) else { throw Refusal(.malformedToken, check: "header", "the header is not base64url") }
        guard let payloadBytes = Base64URL.decode(parts[1]) else { throw Refusal(.malformedToken, check: "payload", "the payload is not base64url") }
        guard Base64URL.decode(parts[2]) != nil else { throw Refusal(.malformedToken, check: "signature", "the signature is not base64url") }
        guard case .object(let h)? = try? StrictJSON.parse(headerBytes) else {
            throw Refusal(.malformedToken, check: "header", "the header is not a JSON object")
        }
        guard case .object(let c)? = try? StrictJSON.parse(payloadBytes) else {
            throw Refusal(.malformedToken, check: "payload", "the payload is not a JSON object (or repeats a claim)")
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
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 3 / 4 + 2)
        var acc: UInt32 = 0, bits = 0
        for c in text.utf8 {
            let v: UInt32
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = UInt32(c - 65)
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = UInt32(c - 71)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(c) + 4
            case UInt8(ascii: "-"): v = 62
            case UInt8(ascii: "_"): v = 63
            default: return nil
            }
            acc = acc << 6 | v
            bits += 6
            if bits >= 8 { bits -= 8; out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits))) }
        }
        // 1 leftover character (6 bits) cannot encode a byte; leftover bits must be zero
        // (canonical encoding, so one token has one spelling).
        if bits >= 6 || acc & ((1 << UInt32(bits)) - 1) != 0 { return nil }
        return out
    }
}
