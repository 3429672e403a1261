import Crypto
import Foundation

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`) with the signature in the `Authorization`
/// header. Pure and synchronous: the same inputs and instant give the same bytes, so it is
/// tested against AWS's published vectors without a network.
///
/// The steps, as AWS documents them: a canonical request (method, canonical URI, canonical
/// query, canonical headers, signed header names, payload hash) is hashed into a string to
/// sign (algorithm, timestamp, scope, that hash), which is HMAC'd with a key derived from the
/// secret through the chain date → region → service → `aws4_request`.
public struct SigV4Signer: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"

    public let credentials: SigV4Credentials
    public let region: String
    public let service: String
    public let pathEncoding: SigV4PathEncoding
    /// Whether the signer adds (and signs) `x-amz-content-sha256`. S3 requires it on every
    /// request; other services do not use it (the generic test suite has none).
    public let addsContentSHA256Header: Bool

    /// A signer for S3: S3's path rule and `x-amz-content-sha256` on every request.
    public init(credentials: SigV4Credentials, region: String, service: String = "s3",
                pathEncoding: SigV4PathEncoding = .s3, addsContentSHA256Header: Bool = true) {
        self.credentials = credentials
        self.region = region
        self.service = service
        self.pathEncoding = pathEncoding
        self.addsContentSHA256Header = addsContentSHA256Header
    }

    /// Signs `request` as at `instant`. Any `x-amz-date`, `x-amz-content-sha256`,
    /// `x-amz-security-token` or `Authorization` in `request.headers` is replaced by the
    /// signer's own, so what is signed is what is sent.
    public func sign(_ request: SigV4Request, at instant: Date) -> SigV4Signature {
        let time = SigV4Timestamp(instant)
        let owned: Set<String> = ["x-amz-date", "x-amz-content-sha256", "x-amz-security-token", "authorization"]
        var headers = request.headers.filter { !owned.contains($0.name.lowercased()) }
        var added: [(name: String, value: String)] = [("x-amz-date", time.dateTime)]
        if addsContentSHA256Header { added.append(("x-amz-content-sha256", request.payload.canonicalValue)) }
        if let token = credentials.sessionToken { added.append(("x-amz-security-token", token)) }
        headers += added

        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(headers)
        let canonicalRequest = [
            request.method.uppercased(),
            SigV4Encoding.canonicalURI(request.path, rule: pathEncoding),
            SigV4Encoding.canonicalQuery(request.query),
            canonicalHeaders,
            signedHeaders,
            request.payload.canonicalValue,
        ].joined(separator: "\n")

        let scope = "\(time.date)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            Self.algorithm, time.dateTime, scope, Self.hex(SHA256.hash(data: Data(canonicalRequest.utf8))),
        ].joined(separator: "\n")

        let key = signingKey(date: time.date)
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
        let authorization = "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return SigV4Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
                              signedHeaders: signedHeaders, authorization: authorization,
                              headersToAdd: added + [("Authorization", authorization)])
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
    /// Scoped to one day, region and service, so a leaked derived key is worth little.
    func signingKey(date: String) -> SymmetricKey {
        var key = SymmetricKey(data: Data(("AWS4" + credentials.secretAccessKey).utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        return key
    }

    /// `name:value\n` per header, names lower-cased and sorted, values trimmed with inner runs
    /// of spaces collapsed to one (the suite's `get-header-value-trim`), repeated names joined
    /// with `,` in the order given; and the `;`-joined list of those names.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (String, String) {
        var byName: [String: [String]] = [:]
        for (name, value) in headers {
            byName[name.lowercased(), default: []].append(trimAndCollapse(value))
        }
        let names = byName.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let lines = names.map { "\($0):\(byName[$0]!.joined(separator: ","))\n" }.joined()
        return (lines, names.joined(separator: ";"))
    }

    static func trimAndCollapse(_ value: String) -> String {
        var out = ""
        var pendingSpace = false
        for character in value {
            if character == " " || character == "\t" {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.append(character)
            }
        }
        return out
    }

    static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes { out.append(digits[Int(byte >> 4)]); out.append(digits[Int(byte & 0x0F)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
