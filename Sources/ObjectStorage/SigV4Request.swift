/// What the signer needs of a request, before any encoding: the method, the path and query as
/// plain strings (the signer encodes them by its rule), and the headers to sign.
public struct SigV4Request: Sendable {
    /// How the payload enters the signature (the last line of the canonical request).
    public enum Payload: Sendable, Equatable {
        /// The lower-case hex SHA-256 of the body: the server recomputes it, so a body changed
        /// in transit fails the signature.
        case sha256Hex(String)
        /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature (S3 only), for bodies
        /// whose hash is not known before sending; their integrity then rests on a checksum
        /// header such as `x-amz-checksum-sha256` or `Content-MD5`.
        case unsigned

        /// SHA-256 of the empty body, the payload hash of every GET, HEAD and DELETE.
        public static let empty = Payload.sha256Hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

        var canonicalValue: String {
            switch self {
            case .sha256Hex(let hex): return hex
            case .unsigned: return "UNSIGNED-PAYLOAD"
            }
        }
    }

    public var method: String
    /// The path, not percent-encoded (`/bucket/my key.txt`).
    public var path: String
    /// Query parameters, not percent-encoded, in any order; a name without a value has "".
    public var query: [(name: String, value: String)]
    /// Headers to sign, `Host` among them. Names are case-insensitive; a name given more than
    /// once has its values joined with `,` in the order given, as HTTP combines them.
    public var headers: [(name: String, value: String)]
    public var payload: Payload

    public init(method: String, path: String, query: [(name: String, value: String)] = [],
                headers: [(name: String, value: String)], payload: Payload = .empty) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.payload = payload
    }
}

/// The result of signing: the headers to add to the request, and the intermediate texts, kept
/// because a signature mismatch is only debuggable by comparing them with the server's.
public struct SigV4Signature: Sendable {
    public let canonicalRequest: String
    public let stringToSign: String
    /// Lower-case hex HMAC-SHA256 of the string to sign.
    public let signature: String
    /// `host;x-amz-date;…`: the lower-case names that were signed, sorted.
    public let signedHeaders: String
    /// The `Authorization` header's value.
    public let authorization: String
    /// Every header the request must carry for the signature to hold: `x-amz-date`, when
    /// configured `x-amz-content-sha256`, `x-amz-security-token` for temporary credentials, and
    /// `Authorization`. (The caller's own signed headers are already on the request.)
    public let headersToAdd: [(name: String, value: String)]
}
