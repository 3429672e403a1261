/// How a path becomes the canonical URI. The rule differs between S3 and every other AWS
/// service, so the signer takes it as a parameter rather than guessing.
public enum SigV4PathEncoding: Sendable, Equatable {
    /// S3: each segment percent-encoded once, `/` kept, nothing normalised. An object key is
    /// an opaque string: `a//b/../c` names a different object from `a/c`, and the key's own
    /// `%` is data, so it is encoded (to `%25`), never taken as an escape.
    case s3
    /// Every other service (and AWS's generic "aws-sig-v4-test-suite"): the path is
    /// normalised per RFC 3986 (`.` and `..` removed, empty segments collapsed) and then each
    /// segment is percent-encoded twice.
    case normalizedDoubleEncoded
}

/// The percent-encoding SigV4 uses everywhere: RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) pass, every other UTF-8 byte becomes `%XX` with upper-case hex.
/// Foundation's `addingPercentEncoding` is not used: its allowed sets are not this set
/// (`urlQueryAllowed` keeps `=`, `&`, `+`, `/`, …) and its output is not specified byte for byte.
public enum SigV4Encoding {
    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    @inline(__always)
    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// Percent-encodes every byte outside the unreserved set; with `keepSlash`, `/` too passes
    /// (S3's rule for the path, where `/` separates segments and is never escaped).
    public static func percentEncode(_ string: String, keepSlash: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(string.utf8.count)
        for byte in string.utf8 {
            if isUnreserved(byte) || (keepSlash && byte == UInt8(ascii: "/")) {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical URI for `path` (not yet encoded) under `rule`. An empty path is `/`.
    public static func canonicalURI(_ path: String, rule: SigV4PathEncoding) -> String {
        let path = path.isEmpty ? "/" : path
        switch rule {
        case .s3:
            return percentEncode(path, keepSlash: true)
        case .normalizedDoubleEncoded:
            let normalized = normalize(path)
            return percentEncode(percentEncode(normalized, keepSlash: true), keepSlash: true)
        }
    }

    /// The path as it goes on the request line for S3: the same single encoding the canonical
    /// URI uses, so what is signed is exactly what is sent.
    public static func s3RequestPath(_ path: String) -> String {
        canonicalURI(path, rule: .s3)
    }

    /// RFC 3986 section 5.2.4 dot-segment removal, plus the collapsing of empty segments the
    /// generic suite expects (`//example//` signs as `/example/`). A trailing `/` is kept.
    static func normalize(_ path: String) -> String {
        var output: [Substring] = []
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        for segment in segments {
            switch segment {
            case ".": continue
            case "..": if !output.isEmpty { output.removeLast() }
            default: output.append(segment)
            }
        }
        let endsWithDirectory = path.hasSuffix("/") || segments.last == "." || segments.last == ".."
        var result = "/" + output.joined(separator: "/")
        if endsWithDirectory && !output.isEmpty { result += "/" }
        return result
    }

    /// The canonical query string: each name and value encoded with the unreserved set, pairs
    /// sorted by encoded name and then encoded value (byte order, so `Param1=Value1` comes
    /// before `Param1=value2`), joined with `&`. A name without a value is `name=`.
    public static func canonicalQuery(_ parameters: [(name: String, value: String)]) -> String {
        parameters
            .map { (percentEncode($0.name), percentEncode($0.value)) }
            .sorted { $0.0 == $1.0 ? Array($0.1.utf8).lexicographicallyPrecedes(Array($1.1.utf8))
                                   : Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }
}
