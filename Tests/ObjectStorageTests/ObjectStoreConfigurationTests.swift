import XCTest
@testable import ObjectStorage

final class ObjectStoreConfigurationTests: XCTestCase {
    let credentials = SigV4Credentials(accessKeyID: "AKIAEXAMPLE", secretAccessKey: "secret")

    func make(endpoint: String = "http://127.0.0.1:9000", region: String = "us-east-1", bucket: String = "recordings",
              prefix: String = "", credentials: SigV4Credentials? = nil, addressing: ObjectStoreConfiguration.Addressing = .path,
              partSize: Int = 8 * 1024 * 1024) throws(ObjectStoreConfigurationError) -> ObjectStoreConfiguration {
        try ObjectStoreConfiguration(endpoint: endpoint, region: region, bucket: bucket, prefix: prefix,
                                     credentials: credentials ?? self.credentials, addressing: addressing, partSize: partSize)
    }

    /// The field a refusal names; nil when the values are accepted.
    func refusal(_ body: () throws -> ObjectStoreConfiguration) -> String? {
        do { _ = try body(); return nil } catch let error as ObjectStoreConfigurationError { return error.field } catch { return "\(error)" }
    }

    func testPathStyleAddressesTheBucketInThePath() throws {
        let c = try make(prefix: "gatehouse/")
        XCTAssertEqual(c.requestHost, "127.0.0.1:9000")
        XCTAssertEqual(c.requestPath(key: "gatehouse/a.rec"), "/recordings/gatehouse/a.rec")
        XCTAssertEqual(c.requestPath(key: nil), "/recordings")
    }

    func testIPv6EndpointIsBracketedOnce() throws {
        XCTAssertEqual(try make(endpoint: "http://[::1]:9000").requestHost, "[::1]:9000")
    }

    func testVirtualHostedAddressesTheBucketInTheHost() throws {
        let c = try make(endpoint: "https://s3.eu-west-1.amazonaws.com", region: "eu-west-1", addressing: .virtualHosted)
        XCTAssertEqual(c.requestHost, "recordings.s3.eu-west-1.amazonaws.com")
        XCTAssertEqual(c.requestPath(key: "a.rec"), "/a.rec")
    }

    func testEachBadValueIsRefusedWithItsField() {
        XCTAssertEqual(refusal { try make(endpoint: "ftp://host") }, "endpoint")
        XCTAssertEqual(refusal { try make(endpoint: "http://host/path") }, "endpoint")
        XCTAssertEqual(refusal { try make(endpoint: "http://user:pw@host") }, "endpoint")
        XCTAssertEqual(refusal { try make(endpoint: "not a url") }, "endpoint")
        XCTAssertEqual(refusal { try make(region: "") }, "region")
        XCTAssertEqual(refusal { try make(region: "US East") }, "region")
        XCTAssertEqual(refusal { try make(bucket: "ab") }, "bucket")
        XCTAssertEqual(refusal { try make(bucket: "Recordings") }, "bucket")
        XCTAssertEqual(refusal { try make(bucket: "-recordings") }, "bucket")
        XCTAssertEqual(refusal { try make(bucket: "a..b") }, "bucket")
        XCTAssertEqual(refusal { try make(bucket: "192.168.1.1") }, "bucket")
        XCTAssertEqual(refusal { try make(prefix: "/abs") }, "prefix")
        XCTAssertEqual(refusal { try make(credentials: SigV4Credentials(accessKeyID: "", secretAccessKey: "s")) }, "credentials.access_key_id")
        XCTAssertEqual(refusal { try make(credentials: SigV4Credentials(accessKeyID: "k", secretAccessKey: "s\n")) }, "credentials.secret_access_key")
        XCTAssertEqual(refusal { try make(credentials: SigV4Credentials(accessKeyID: "k", secretAccessKey: "s", sessionToken: "")) }, "credentials.session_token")
        XCTAssertEqual(refusal { try make(partSize: 5 * 1024 * 1024 - 1) }, "part_size")
        XCTAssertEqual(refusal { try make(endpoint: "https://s3.amazonaws.com", bucket: "a.b.c", addressing: .virtualHosted) }, "addressing")
        XCTAssertNil(refusal { try make(bucket: "my.bucket-01") })
    }

    func testErrorNamesTheConfigurationKey() {
        XCTAssertEqual("\(ObjectStoreConfigurationError(field: "bucket", reason: "is bad"))", "recordings_store.bucket: is bad")
    }
}
