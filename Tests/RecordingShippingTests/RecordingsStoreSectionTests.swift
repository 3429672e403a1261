import ConfigurationSupport
import Foundation
import ObjectStorage
import XCTest
@testable import RecordingShipping

/// The `recordings_store:` section: strict, every mistake at file:line:column, secrets from
/// files and never printed.
final class RecordingsStoreSectionTests: XCTestCase {
    var directory: String!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gh-rs-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "s3cr3t-value-never-printed\n".write(toFile: directory + "/secret", atomically: true, encoding: .utf8)
        try "AKIAFILE\n".write(toFile: directory + "/id", atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func parse(_ yaml: String) throws -> RecordingsStoreConfiguration {
        try RecordingsStoreConfiguration.parse(yaml: yaml, file: "gatehouse.yaml")
    }

    func error(_ yaml: String) -> ConfigurationError? {
        do { _ = try parse(yaml) } catch let e as ConfigurationError { return e } catch { XCTFail("\(error)") }
        return nil
    }

    func testDefaultAndLocal() throws {
        guard case .local = try parse("listen: [\"127.0.0.1:2222\"]\n") else { return XCTFail("no section is local") }
        guard case .local = try parse("recordings_store: {kind: local}\n") else { return XCTFail("kind: local") }
    }

    func testFullS3Section() throws {
        let yaml = """
            recordings_store:
              kind: s3
              endpoint: http://127.0.0.1:9000
              bucket: gatehouse-recordings
              region: eu-west-1
              prefix: prod/
              addressing: path
              credentials:
                access_key_id_file: \(directory!)/id
                secret_access_key_file: \(directory!)/secret
              queue_limit_bytes: 1048576
              multipart_threshold_bytes: 8388608
              part_size_bytes: 5242880
              replica_id: gatehouse-2
            """
        guard case .s3(let s3) = try parse(yaml) else { return XCTFail("expected s3") }
        XCTAssertEqual(s3.objectStore.host, "127.0.0.1")
        XCTAssertEqual(s3.objectStore.port, 9000)
        XCTAssertEqual(s3.objectStore.bucket, "gatehouse-recordings")
        XCTAssertEqual(s3.objectStore.region, "eu-west-1")
        XCTAssertEqual(s3.objectStore.prefix, "prod/")
        XCTAssertEqual(s3.objectStore.credentials.accessKeyID, "AKIAFILE")
        XCTAssertEqual(s3.objectStore.credentials.secretAccessKey, "s3cr3t-value-never-printed")
        XCTAssertEqual(s3.objectStore.multipartThreshold, 8 << 20)
        XCTAssertEqual(s3.queueLimitBytes, 1 << 20)
        XCTAssertEqual(s3.replicaID, "gatehouse-2")
        let text = "\(RecordingsStoreConfiguration.s3(s3)) \(s3)"
        XCTAssertFalse(text.contains("s3cr3t"), text)
        XCTAssertTrue(text.contains("bucket gatehouse-recordings"), text)
    }

    func testMistakesAreNamedAtTheirLine() throws {
        let secret = "secret_access_key_file: \(directory!)/secret"
        let cases: [(String, Int, String, String)] = [
            ("recordings_store:\n  kind: s4\n", 2, "recordings_store.kind", "not a recordings store kind"),
            ("recordings_store:\n  kind: s3\n  bucket: b-1\n  credentials: {access_key_id: A, \(secret)}\n", 2, "recordings_store.endpoint", "is required"),
            ("recordings_store:\n  kind: s3\n  endpoint: ftp://x\n  bucket: b-1\n  credentials: {access_key_id: A, \(secret)}\n", 3, "recordings_store.endpoint", "http://"),
            ("recordings_store:\n  kind: s3\n  endpoint: http://x\n  bucket: Bad_Bucket\n  credentials: {access_key_id: A, \(secret)}\n", 4, "recordings_store.bucket", "lower-case"),
            ("recordings_store:\n  kind: s3\n  endpoint: http://x\n  bucket: b-1\n  colour: blue\n  credentials: {access_key_id: A, \(secret)}\n", 5, "recordings_store.colour", "unknown key"),
            ("recordings_store:\n  kind: s3\n  endpoint: http://x\n  bucket: b-1\n  addressing: dns\n  credentials: {access_key_id: A, \(secret)}\n", 5, "recordings_store.addressing", "path or virtual_hosted"),
            ("recordings_store:\n  kind: s3\n  endpoint: http://x\n  bucket: b-1\n  credentials: {access_key_id: A}\n", 5, "recordings_store.credentials.secret_access_key_file", "is required"),
            ("recordings_store:\n  kind: s3\n  endpoint: http://x\n  bucket: b-1\n  credentials:\n    access_key_id: A\n    secret_access_key_file: /nonexistent/secret\n", 7, "recordings_store.credentials.secret_access_key_file", "cannot read"),
            ("recordings_store:\n  kind: s3\n  endpoint: http://x\n  bucket: b-1\n  credentials:\n    access_key_id: A\n    secret_access_key: inline\n", 7, "recordings_store.credentials.secret_access_key", "unknown key"),
            ("recordings_store:\n  kind: s3\n  endpoint: http://x\n  bucket: b-1\n  queue_limit_bytes: 0\n  credentials: {access_key_id: A, \(secret)}\n", 5, "recordings_store.queue_limit_bytes", "between"),
            ("recordings_store:\n  kind: s3\n  endpoint: http://x\n  bucket: b-1\n  replica_id: ../up\n  credentials: {access_key_id: A, \(secret)}\n", 5, "recordings_store.replica_id", "spool directory"),
            ("recordings_store:\n  kind: local\n  bucket: b-1\n", 3, "recordings_store.bucket", "unknown key"),
        ]
        for (yaml, line, key, message) in cases {
            guard let e = error(yaml) else { XCTFail("accepted: \(yaml)"); continue }
            XCTAssertEqual(e.file, "gatehouse.yaml")
            XCTAssertEqual(e.line, line, "\(e)")
            XCTAssertGreaterThan(e.column, 0, "\(e)")
            XCTAssertEqual(e.key, key, "\(e)")
            XCTAssertTrue(e.message.contains(message), "\(e)")
            XCTAssertFalse(e.description.contains("s3cr3t"), "\(e)")
        }
    }
}
