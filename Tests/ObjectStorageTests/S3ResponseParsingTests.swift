import Foundation
import XCTest
@testable import ObjectStorage

/// Answers as S3 documents them, parsed with XMLParser.
final class S3ResponseParsingTests: XCTestCase {
    func testErrorBodyBecomesAPreciseError() {
        let body = Data("""
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>NoSuchKey</Code><Message>The resource you requested does not exist &amp; never did</Message>
            <Resource>/recordings/a.rec</Resource><RequestId>4442587FB7D0A2F9</RequestId><HostId>abc=</HostId></Error>
            """.utf8)
        let error = S3ServiceError.from(status: 404, body: body, requestIDHeader: "header-id", hostIDHeader: nil,
                                        operation: "GetObject", resource: "a.rec")
        XCTAssertEqual(error.code, "NoSuchKey")
        XCTAssertEqual(error.message, "The resource you requested does not exist & never did")
        XCTAssertEqual(error.status, 404)
        XCTAssertEqual(error.requestID, "4442587FB7D0A2F9", "the body's id wins over the header's")
        XCTAssertEqual(error.hostID, "abc=")
        XCTAssertEqual("\(error)", "GetObject a.rec: NoSuchKey (HTTP 404): The resource you requested does not exist & never did [request id 4442587FB7D0A2F9]")
    }

    func testBodylessErrorIsNamedByItsStatusAndHeaders() {
        let error = S3ServiceError.from(status: 404, body: Data(), requestIDHeader: "R1", hostIDHeader: "H1", operation: "HeadObject", resource: "k")
        XCTAssertEqual(error.code, "NotFound")
        XCTAssertEqual(error.requestID, "R1")
        XCTAssertEqual(error.hostID, "H1")
        XCTAssertEqual(S3ServiceError.from(status: 502, body: Data("<html>bad gateway</html>".utf8), requestIDHeader: nil, hostIDHeader: nil,
                                           operation: "PutObject", resource: "k").code, "HTTP 502")
    }

    func testListPageWithContinuation() throws {
        let body = Data("""
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>recordings</Name><Prefix>gh/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
              <Contents><Key>gh/a.rec</Key><Size>10</Size><ETag>&quot;0cc175b9c0f1b6a831c399e269772661&quot;</ETag></Contents>
              <Contents><Key>gh/b &lt;1&gt;.rec</Key><Size>20</Size><ETag>"92eb5ffee6ae2fec3ad71c777531578f-2"</ETag></Contents>
              <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
            </ListBucketResult>
            """.utf8)
        let page = try S3Client.parseListPage(body, prefix: "gh/", bucket: "recordings")
        XCTAssertEqual(page.objects, [ObjectSummary(name: "a.rec", size: 10, etag: "0cc175b9c0f1b6a831c399e269772661"),
                                      ObjectSummary(name: "b <1>.rec", size: 20, etag: "92eb5ffee6ae2fec3ad71c777531578f-2")])
        XCTAssertEqual(page.nextContinuationToken, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
    }

    func testTruncatedListWithoutTokenIsRefused() {
        let body = Data("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>".utf8)
        XCTAssertThrowsError(try S3Client.parseListPage(body, prefix: "", bucket: "b")) { error in
            guard case ObjectStorageError.malformedResponse = error else { return XCTFail("\(error)") }
        }
    }

    func testCompleteBodyEscapesAndOrdersParts() {
        XCTAssertEqual(S3Client.completeBody([(1, "\"e1\"", "c1=="), (2, "\"e2\"", "c2==")]),
                       "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                       + "<Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag><ChecksumSHA256>c1==</ChecksumSHA256></Part>"
                       + "<Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag><ChecksumSHA256>c2==</ChecksumSHA256></Part>"
                       + "</CompleteMultipartUpload>")
    }

    func testMultipartDigestsFollowS3sConstruction() {
        // Composite: digest of the concatenated part digests, then "-N".
        let parts = [PartDigest(Data("a".utf8)), PartDigest(Data("b".utf8))]
        XCTAssertEqual(MultipartChecksum.etag(parts), "\(PartDigest(Data(parts[0].md5 + parts[1].md5)).md5Hex)-2")
        XCTAssertEqual(MultipartChecksum.compositeSHA256(parts), "\(PartDigest(Data(parts[0].sha256 + parts[1].sha256)).checksumSHA256)-2")
        XCTAssertEqual(PartDigest(Data("a".utf8)).md5Hex, "0cc175b9c0f1b6a831c399e269772661")
    }

    func testCompositeChecksumComparisonToleratesAMissingPartCountOnly() {
        XCTAssertTrue(S3Client.checksum("abc=-3", matches: "abc=-3"))
        XCTAssertTrue(S3Client.checksum("abc=", matches: "abc=-3"))
        XCTAssertFalse(S3Client.checksum("abd=", matches: "abc=-3"))
        XCTAssertFalse(S3Client.checksum("abc=-2", matches: "abc=-3"))
        XCTAssertFalse(S3Client.checksum("abc=", matches: "abd="))
    }
}
