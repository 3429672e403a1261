import Foundation
import XCTest
@testable import ObjectStorage

/// AWS's generic "aws-sig-v4-test-suite" (docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html):
/// documented example credentials, region us-east-1, service "service", 20150830T123600Z.
/// Each expected `Authorization` value below is the suite's `.authz` file, copied by hand.
///
/// The suite signs as every non-S3 service does: paths normalised (dot segments, repeated
/// slashes) and double-encoded, and no `x-amz-content-sha256` header. The signer takes that
/// rule as a parameter (`.normalizedDoubleEncoded`); S3 uses `.s3` (see `SigV4S3ExampleTests`).
final class SigV4TestSuiteTests: XCTestCase {
    static let credentials = SigV4Credentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    static let instant = Date(timeIntervalSince1970: 1_440_938_160) // 2015-08-30T12:36:00Z
    static let host = ("Host", "example.amazonaws.com")
    static let emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    func sign(_ method: String, _ path: String, query: [(name: String, value: String)] = [],
              headers: [(name: String, value: String)] = [], payload: SigV4Request.Payload = .empty,
              credentials: SigV4Credentials = credentials) -> SigV4Signature {
        let signer = SigV4Signer(credentials: credentials, region: "us-east-1", service: "service",
                                 pathEncoding: .normalizedDoubleEncoded, addsContentSHA256Header: false)
        return signer.sign(SigV4Request(method: method, path: path, query: query, headers: [Self.host] + headers, payload: payload),
                           at: Self.instant)
    }

    func authz(_ signedHeaders: String, _ signature: String) -> String {
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    func testTimestampFormatsTheSigningInstant() {
        XCTAssertEqual(SigV4Timestamp(Self.instant), SigV4Timestamp(Self.instant))
        XCTAssertEqual(SigV4Timestamp(Self.instant).dateTime, "20150830T123600Z")
        XCTAssertEqual(SigV4Timestamp(Self.instant).date, "20150830")
    }

    func testGetVanillaWithEveryIntermediateText() {
        let s = sign("GET", "/")
        XCTAssertEqual(s.canonicalRequest, "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n\(Self.emptyHash)")
        XCTAssertEqual(s.stringToSign, "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63")
        XCTAssertEqual(s.authorization, authz("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"))
        XCTAssertEqual(s.headersToAdd.map(\.name), ["x-amz-date", "Authorization"])
    }

    func testQueryParametersAreSortedByNameThenValue() {
        // get-vanilla-query-order-key-case: names sort by byte.
        XCTAssertEqual(sign("GET", "/", query: [("Param2", "value2"), ("Param1", "value1")]).authorization,
                       authz("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"))
        // get-vanilla-query-order-key: equal names sort by value, upper case first.
        let key = sign("GET", "/", query: [("Param1", "value2"), ("Param1", "Value1")])
        XCTAssertTrue(key.canonicalRequest.contains("\nParam1=Value1&Param1=value2\n"))
        XCTAssertEqual(key.authorization, authz("host;x-amz-date", "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"))
        // get-vanilla-query-order-value
        XCTAssertEqual(sign("GET", "/", query: [("Param1", "value2"), ("Param1", "value1")]).authorization,
                       authz("host;x-amz-date", "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"))
        // get-vanilla-empty-query-key
        XCTAssertEqual(sign("GET", "/", query: [("Param1", "value1")]).authorization,
                       authz("host;x-amz-date", "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"))
    }

    func testQueryEncodingKeepsOnlyTheUnreservedSet() {
        let unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        XCTAssertEqual(sign("GET", "/", query: [(unreserved, unreserved)]).authorization,
                       authz("host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"))
        // get-vanilla-utf8-query: U+1234 is three UTF-8 bytes, each escaped.
        let utf8 = sign("GET", "/", query: [("\u{1234}", "bar")])
        XCTAssertTrue(utf8.canonicalRequest.contains("\n%E1%88%B4=bar\n"))
        XCTAssertEqual(utf8.authorization, authz("host;x-amz-date", "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"))
        // get-unreserved: the same set in the path.
        XCTAssertEqual(sign("GET", "/" + unreserved).authorization,
                       authz("host;x-amz-date", "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"))
    }

    func testHeadersAreLowerCasedSortedJoinedAndTrimmed() {
        // get-header-key-duplicate: one name, values joined in the order given.
        let duplicate = sign("GET", "/", headers: [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")])
        XCTAssertTrue(duplicate.canonicalRequest.contains("\nmy-header1:value2,value2,value1\n"))
        XCTAssertEqual(duplicate.authorization, authz("host;my-header1;x-amz-date", "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"))
        // get-header-value-order: not sorted by value.
        XCTAssertEqual(sign("GET", "/", headers: [("My-Header1", "value4"), ("My-Header1", "value1"), ("My-Header1", "value3"), ("My-Header1", "value2")]).authorization,
                       authz("host;my-header1;x-amz-date", "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"))
        // get-header-value-trim: leading space trimmed, inner runs of spaces collapsed (quotes or not).
        let trim = sign("GET", "/", headers: [("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")])
        XCTAssertTrue(trim.canonicalRequest.contains("\nmy-header1:value1\nmy-header2:\"a b c\"\n"))
        XCTAssertEqual(trim.authorization, authz("host;my-header1;my-header2;x-amz-date", "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"))
        // post-header-key-sort and post-header-value-case: values keep their case.
        XCTAssertEqual(sign("POST", "/", headers: [("My-Header1", "value1")]).authorization,
                       authz("host;my-header1;x-amz-date", "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"))
        XCTAssertEqual(sign("POST", "/", headers: [("My-Header1", "VALUE1")]).authorization,
                       authz("host;my-header1;x-amz-date", "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"))
    }

    func testPostVanillaAndQuery() {
        XCTAssertEqual(sign("POST", "/").authorization, authz("host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"))
        XCTAssertEqual(sign("POST", "/", query: [("Param1", "value1")]).authorization,
                       authz("host;x-amz-date", "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"))
    }

    func testPostFormBodyIsCoveredByThePayloadHash() {
        let body = Data("Param1=value1".utf8)
        let hash = PartDigest(body).sha256Hex
        XCTAssertEqual(hash, "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e")
        // post-x-www-form-urlencoded. The suite's .creq lists content-length, but its .authz
        // (what a server checks) signs content-type;host;x-amz-date only: that is matched.
        XCTAssertEqual(sign("POST", "/", headers: [("Content-Type", "application/x-www-form-urlencoded")], payload: .sha256Hex(hash)).authorization,
                       authz("content-type;host;x-amz-date", "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"))
        // post-x-www-form-urlencoded-parameters is left out: the suite's own files disagree. Its
        // .authz names content-length;content-type;host;x-amz-date, but its signature is over a
        // canonical request without content-length and with "charset=utf8" (found by hashing
        // candidates against its .sts), so no consistent signer reproduces it.
    }

    func testSessionTokenIsSentAndSigned() {
        // post-sts-header-before: the token is a signed header.
        let token = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="
        var credentials = Self.credentials
        credentials.sessionToken = token
        let s = sign("POST", "/", credentials: credentials)
        XCTAssertEqual(s.authorization, authz("host;x-amz-date;x-amz-security-token", "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"))
        XCTAssertTrue(s.headersToAdd.contains { $0.name == "x-amz-security-token" && $0.value == token })
        XCTAssertFalse("\(credentials)".contains(token), "the token never appears in a description")
        XCTAssertFalse("\(credentials)".contains(credentials.secretAccessKey))
    }

    func testGenericRuleNormalisesPaths() {
        let root = authz("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        // get-relative, get-relative-relative, get-slash, get-slash-dot-slash: all sign as "/".
        for path in ["/example/..", "/example1/example2/../..", "//", "/./"] {
            XCTAssertEqual(sign("GET", path).authorization, root, path)
        }
        // get-slash-pointless-dot
        XCTAssertEqual(sign("GET", "/./example").authorization, authz("host;x-amz-date", "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"))
        // get-slashes
        XCTAssertEqual(sign("GET", "//example//").authorization, authz("host;x-amz-date", "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"))
    }

    func testSignerReplacesCallerCopiesOfItsOwnHeaders() {
        // A stale x-amz-date or Authorization on the request must not survive into what is sent.
        let s = sign("GET", "/", headers: [("X-Amz-Date", "19990101T000000Z"), ("Authorization", "stale")])
        XCTAssertEqual(s.authorization, authz("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"))
    }
}
