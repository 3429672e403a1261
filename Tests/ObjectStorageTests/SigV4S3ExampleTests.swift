import Foundation
import XCTest
@testable import ObjectStorage

/// The four examples of the S3 API reference, "Signature Calculations for the Authorization
/// Header: Transferring Payload in a Single Chunk" (Examples: Signature Calculations):
/// AKIAIOSFODNN7EXAMPLE, bucket examplebucket, us-east-1, service s3, 20130524T000000Z.
/// Expected signatures and intermediate texts are the published ones, copied by hand.
final class SigV4S3ExampleTests: XCTestCase {
    static let credentials = SigV4Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    static let instant = Date(timeIntervalSince1970: 1_369_353_600) // 2013-05-24T00:00:00Z
    static let host = ("Host", "examplebucket.s3.amazonaws.com")
    static let emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    let signer = SigV4Signer(credentials: credentials, region: "us-east-1") // S3 rules by default

    func testGetObjectWithRange() {
        let s = signer.sign(SigV4Request(method: "GET", path: "/test.txt", headers: [Self.host, ("Range", "bytes=0-9")]), at: Self.instant)
        XCTAssertEqual(s.canonicalRequest, """
            GET
            /test.txt

            host:examplebucket.s3.amazonaws.com
            range:bytes=0-9
            x-amz-content-sha256:\(Self.emptyHash)
            x-amz-date:20130524T000000Z

            host;range;x-amz-content-sha256;x-amz-date
            \(Self.emptyHash)
            """)
        XCTAssertEqual(s.stringToSign, """
            AWS4-HMAC-SHA256
            20130524T000000Z
            20130524/us-east-1/s3/aws4_request
            7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972
            """)
        XCTAssertEqual(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        XCTAssertEqual(s.authorization, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                       + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
        XCTAssertTrue(s.headersToAdd.contains { $0.name == "x-amz-content-sha256" && $0.value == Self.emptyHash })
    }

    func testPutObjectEncodesTheDollarOnceAndSignsThePayload() {
        let body = Data("Welcome to Amazon S3.".utf8)
        let digest = PartDigest(body)
        XCTAssertEqual(digest.sha256Hex, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")
        let s = signer.sign(SigV4Request(method: "PUT", path: "/test$file.text",
                                         headers: [Self.host, ("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")],
                                         payload: .sha256Hex(digest.sha256Hex)), at: Self.instant)
        XCTAssertTrue(s.canonicalRequest.hasPrefix("PUT\n/test%24file.text\n\n"))
        XCTAssertTrue(s.stringToSign.hasSuffix("\n9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"))
        XCTAssertEqual(s.signedHeaders, "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class")
        XCTAssertEqual(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd")
    }

    func testGetBucketLifecycleSignsAValuelessParameter() {
        let s = signer.sign(SigV4Request(method: "GET", path: "/", query: [("lifecycle", "")], headers: [Self.host]), at: Self.instant)
        XCTAssertTrue(s.canonicalRequest.hasPrefix("GET\n/\nlifecycle=\n"))
        XCTAssertTrue(s.stringToSign.hasSuffix("\n9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca"))
        XCTAssertEqual(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543")
    }

    func testListObjectsSortsTheQuery() {
        // Given in the opposite order: the canonical query sorts it.
        let s = signer.sign(SigV4Request(method: "GET", path: "/", query: [("prefix", "J"), ("max-keys", "2")], headers: [Self.host]), at: Self.instant)
        XCTAssertTrue(s.canonicalRequest.hasPrefix("GET\n/\nmax-keys=2&prefix=J\n"))
        XCTAssertTrue(s.stringToSign.hasSuffix("\ndf57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7"))
        XCTAssertEqual(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7")
    }

    func testUnsignedPayloadIsNamedInHeaderAndCanonicalRequest() {
        let s = signer.sign(SigV4Request(method: "PUT", path: "/k", headers: [Self.host], payload: .unsigned), at: Self.instant)
        XCTAssertTrue(s.canonicalRequest.hasSuffix("\nUNSIGNED-PAYLOAD"))
        XCTAssertTrue(s.headersToAdd.contains { $0.name == "x-amz-content-sha256" && $0.value == "UNSIGNED-PAYLOAD" })
    }
}
