import XCTest
@testable import ObjectStorage

/// S3's URI rule against the generic one: S3 encodes each segment once and normalises nothing,
/// because an object key is an opaque string.
final class SigV4EncodingTests: XCTestCase {
    func testS3PathKeepsSlashesAndEncodesEverythingElseOnce() {
        XCTAssertEqual(SigV4Encoding.canonicalURI("/bucket/a b+c=d&é", rule: .s3), "/bucket/a%20b%2Bc%3Dd%26%C3%A9")
        XCTAssertEqual(SigV4Encoding.canonicalURI("/bucket/100%", rule: .s3), "/bucket/100%25", "a key's % is data, never an escape")
        XCTAssertEqual(SigV4Encoding.canonicalURI("", rule: .s3), "/")
    }

    func testS3PathIsNotNormalised() {
        XCTAssertEqual(SigV4Encoding.canonicalURI("/bucket/a//b/../c/./d", rule: .s3), "/bucket/a//b/../c/./d")
    }

    func testGenericRuleNormalisesAndEncodesTwice() {
        XCTAssertEqual(SigV4Encoding.canonicalURI("/a b/../c d", rule: .normalizedDoubleEncoded), "/c%2520d")
        XCTAssertEqual(SigV4Encoding.canonicalURI("//x//", rule: .normalizedDoubleEncoded), "/x/")
    }

    func testQueryValuesEscapeReservedCharactersIncludingSlashAndPlus() {
        XCTAssertEqual(SigV4Encoding.canonicalQuery([("prefix", "a/b c+d"), ("continuation-token", "1/2=")]),
                       "continuation-token=1%2F2%3D&prefix=a%2Fb%20c%2Bd")
        XCTAssertEqual(SigV4Encoding.canonicalQuery([("uploads", "")]), "uploads=")
    }
}
