import ServerFixtures
import Crypto
import Foundation
import XCTest
@testable import ObjectStorage

/// The client end to end against moto's S3 server on loopback (a stand-in for S3: see
/// `MotoServer` for what moto verifies and what it does not). Each test starts its own moto,
/// stopped by pid in tearDown.
///
/// Signature checking is on wherever moto can check: moto rebuilds the request URL through
/// werkzeug before re-signing it, which decodes `%2F` in the query and leaves `+ & =` and
/// non-ASCII bytes of the path unescaped, so for a key or list prefix holding those it computes
/// a canonical request S3 would not (botocore encodes them as this client does). The tests that
/// need such names (a list prefix is `replica-1/…`) run with checking off and assert what lands.
final class S3ClientMotoTests: XCTestCase {
    var moto: MotoServer!
    var credentials = SigV4Credentials(accessKeyID: "AKIAUNCHECKED0000000", secretAccessKey: "unchecked")
    var directory: URL!

    func start(checkingSignatures: Bool) async throws {
        moto = try await MotoServer()
        if checkingSignatures { credentials = try await moto.enableAuthentication() }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("objectstorage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try await client().createBucket()
    }

    override func tearDown() {
        moto?.stop()
        if let directory { try? FileManager.default.removeItem(at: directory) }
    }

    func client(credentials: SigV4Credentials? = nil, threshold: Int = 8 * 1024 * 1024) throws -> S3Client {
        S3Client(configuration: try ObjectStoreConfiguration(
            endpoint: moto.endpoint, region: "us-east-1", bucket: "gatehouse-recordings", prefix: "replica-1/",
            credentials: credentials ?? self.credentials, multipartThreshold: threshold, partSize: 5 * 1024 * 1024,
            requestTimeout: .seconds(30)))
    }

    /// Deterministic bytes that do not compress or repeat per part.
    func bytes(_ count: Int, seed: UInt64) -> Data {
        var state = seed
        var bytes = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
        }
        return Data(bytes)
    }

    func sha256(_ data: Data) -> String { SigV4Signer.hex(SHA256.hash(data: data)) }

    func testSmallObjectRoundTripsWithItsChecksums() async throws {
        try await start(checkingSignatures: true)
        let s3 = try client()
        let name = "sessions/2026-12-02/s-1_a~b.rec"
        let data = Data("recording bytes\n".utf8)
        let etag = try await s3.putObject(name, data: data)
        XCTAssertEqual(etag, Insecure.MD5.hash(data: data).map { String(format: "%02x", $0) }.joined(), "moto's ETag is the MD5 of what it received")

        let info = try await s3.headObject(name)
        XCTAssertEqual(info.size, Int64(data.count))
        XCTAssertEqual(info.etag, etag)
        XCTAssertEqual(info.checksumSHA256, Data(SHA256.hash(data: data)).base64EncodedString())
        let back = try await s3.getObject(name)
        XCTAssertEqual(back, data)

        let file = directory.appendingPathComponent("back.rec").path
        let fileInfo = try await s3.getObject(name, toFile: file)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: file)), data)
        XCTAssertEqual(fileInfo.size, Int64(data.count))
        XCTAssertFalse(FileManager.default.fileExists(atPath: file + ".partial"))

        // Below the threshold, uploadFile is one verified PUT.
        let local = directory.appendingPathComponent("small.rec")
        try bytes(100_000, seed: 1).write(to: local)
        let upload = try await s3.uploadFile(at: local.path, as: "small.rec")
        XCTAssertEqual(upload.parts, 1)
        XCTAssertEqual(upload.info.size, 100_000)
        XCTAssertEqual(upload.info.etag, PartDigest(bytes(100_000, seed: 1)).md5Hex)
    }

    func testTwelveMebibytesGoByMultipartAndComeBackByteExact() async throws {
        // Signatures checked, query strings (uploads=, partNumber, uploadId) included.
        try await start(checkingSignatures: true)
        let s3 = try client()
        let data = bytes(12 * 1024 * 1024, seed: 42)
        let local = directory.appendingPathComponent("big.rec")
        try data.write(to: local)

        let upload = try await s3.uploadFile(at: local.path, as: "big.rec")
        XCTAssertEqual(upload.parts, 3, "5 MiB + 5 MiB + 2 MiB")
        let parts = [data[0..<5_242_880], data[5_242_880..<10_485_760], data[10_485_760...]].map { PartDigest($0) }
        // Both values below are computed by moto from the bytes it received.
        let composite = MultipartChecksum.compositeSHA256(parts)
        XCTAssertTrue(composite.hasSuffix("-3"))
        XCTAssertEqual(upload.expectedChecksumSHA256, composite)
        let info = try await s3.headObject("big.rec")
        XCTAssertEqual(info.size, Int64(data.count))
        // moto's HEAD gives the composite digest without S3's "-3" and no type; its GET gives both.
        XCTAssertEqual(info.checksumSHA256, String(composite.dropLast(2)))
        XCTAssertEqual(info.etag, MultipartChecksum.etag(parts))

        let file = directory.appendingPathComponent("big.back").path
        let fetched = try await s3.getObject("big.rec", toFile: file)
        XCTAssertEqual(fetched.checksumSHA256, composite)
        XCTAssertEqual(fetched.checksumType, "COMPOSITE")
        XCTAssertEqual(fetched.size, Int64(data.count))
        XCTAssertEqual(sha256(try Data(contentsOf: URL(fileURLWithPath: file))), sha256(data))
    }

    func testListingFollowsContinuationTokensAndDeleteRemoves() async throws {
        try await start(checkingSignatures: false) // the list prefix holds '/': see the class comment
        let s3 = try client()
        let names = (1...5).map { "list/r\($0).rec" }
        for name in names { try await s3.putObject(name, data: Data(name.utf8)) }
        try await s3.putObject("other/x.rec", data: Data("x".utf8))

        let first = try await s3.listObjectsPage(prefix: "list/", maxKeys: 2)
        XCTAssertEqual(first.objects.map(\.name), ["list/r1.rec", "list/r2.rec"])
        let token = try XCTUnwrap(first.nextContinuationToken, "5 keys at 2 a page: there is a next page")
        let second = try await s3.listObjectsPage(prefix: "list/", continuationToken: token, maxKeys: 2)
        XCTAssertEqual(second.objects.map(\.name), ["list/r3.rec", "list/r4.rec"])

        let all = try await s3.listObjects(prefix: "list/", pageSize: 2)
        XCTAssertEqual(all.map(\.name), names, "three pages, every key once, nothing outside the prefix")
        XCTAssertEqual(all.map(\.size), names.map { Int64($0.utf8.count) })

        try await s3.deleteObject("list/r3.rec")
        let after = try await s3.listObjects(prefix: "list/")
        XCTAssertEqual(after.map(\.name), names.filter { $0 != "list/r3.rec" })
        do {
            _ = try await s3.headObject("list/r3.rec")
            XCTFail("HEAD of a deleted object succeeded")
        } catch let error as S3ServiceError {
            XCTAssertEqual(error.status, 404)
            XCTAssertEqual(error.code, "NotFound")
            XCTAssertEqual(error.operation, "HeadObject")
        }
        do {
            _ = try await s3.getObject("list/r3.rec")
            XCTFail("GET of a deleted object succeeded")
        } catch let error as S3ServiceError {
            XCTAssertEqual(error.status, 404)
            XCTAssertEqual(error.code, "NoSuchKey")
            XCTAssertEqual(error.resource, "replica-1/list/r3.rec")
            XCTAssertFalse(error.message.isEmpty)
        }
    }

    func testWrongSecretOrUnknownKeyIsRefusedPrecisely() async throws {
        try await start(checkingSignatures: true)
        var wrong = credentials
        wrong.secretAccessKey += "x"
        do {
            try await client(credentials: wrong).putObject("forged.rec", data: Data("x".utf8))
            XCTFail("a request signed with the wrong secret was accepted")
        } catch let error as S3ServiceError {
            XCTAssertEqual(error.code, "SignatureDoesNotMatch")
            XCTAssertEqual(error.status, 403)
            XCTAssertEqual(error.operation, "PutObject")
            XCTAssertTrue(error.message.contains("signature"), error.message)
        }
        do {
            _ = try await client(credentials: SigV4Credentials(accessKeyID: "AKIANOTAKEY00000000", secretAccessKey: "s")).listObjects()
            XCTFail("an unknown access key was accepted")
        } catch let error as S3ServiceError {
            XCTAssertEqual(error.code, "InvalidAccessKeyId")
            XCTAssertEqual(error.status, 403)
        }
        // Nothing was stored by the refused PUT.
        do {
            _ = try await client().headObject("forged.rec")
            XCTFail("the refused PUT stored an object")
        } catch let error as S3ServiceError {
            XCTAssertEqual(error.status, 404)
        }
    }

    func testKeysWithReservedCharactersAreStoredUnderTheirExactName() async throws {
        try await start(checkingSignatures: false) // see the class comment
        let s3 = try client()
        // Encoded once on the path: a double encoding would store "s%201…", a missing one would
        // split the name at '?', '#' or '&'.
        let names = ["odd/s 1+a&b=c-é.rec", "odd/100%.rec", "odd/q?x#y.rec", "odd/a//b/../c.rec"]
        for name in names { try await s3.putObject(name, data: Data(name.utf8)) }
        let listed = try await s3.listObjects(prefix: "odd/")
        XCTAssertEqual(Set(listed.map(\.name)), Set(names))
        for name in names {
            let back = try await s3.getObject(name)
            XCTAssertEqual(back, Data(name.utf8), name)
        }
    }
}
