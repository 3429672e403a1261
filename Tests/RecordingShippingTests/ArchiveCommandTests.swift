import Foundation
import ObjectStorage
import ProcessSupport
import XCTest
@testable import RecordingShipping

/// The built `gatehouse` reading shipped recordings back through `--config`: `sessions list`
/// (from the database, and from a LIST of the bucket without one), `sessions show`, `verify`,
/// `export` and `replay`, against the real PostgreSQL 15 and moto's S3 server on loopback.
final class ArchiveCommandTests: ShippingTestCase {
    static var gatehouse: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/gatehouse").path
    }

    func gatehouse(_ arguments: [String]) throws -> BinaryResult { try runBinary(Self.gatehouse, arguments) }

    func writeConfiguration(database: String?) throws -> String {
        let secret = spoolRoot + "/s3-secret"
        try "test-secret-never-printed\n".write(toFile: secret, atomically: true, encoding: .utf8)
        var yaml = """
            recordings_store:
              kind: s3
              endpoint: \(moto.endpoint)
              bucket: \(bucket)
              prefix: gatehouse/
              credentials: {access_key_id: AKIATEST, secret_access_key_file: \(secret)}

            """
        if let database {
            let server = try server
            try "\(server.password)\n".write(toFile: spoolRoot + "/db-password", atomically: true, encoding: .utf8)
            yaml += """
                store:
                  kind: postgres
                  url: postgres://\(server.username)@127.0.0.1:\(server.port)/\(database)
                  password_file: \(spoolRoot!)/db-password

                """
        }
        let path = spoolRoot + "/gatehouse-\(database == nil ? "bucket" : "db").yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testCommandsReadShippedRecordingsFromTheBucket() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.gatehouse) else { throw XCTSkip("\(Self.gatehouse) not built") }
        let (catalog, database) = try await makeCatalog()
        let client = try await makeClient()
        let shipper = try makeShipper(replica: "r1", client: client, catalog: catalog)
        let output = Array("hello from the bucket\r\n".utf8)
        try writeRecording(replica: "r1", session: "s-cli", stdout: output)
        try writeRecording(replica: "r1", session: "s-cli-2", stdout: Array("second\r\n".utf8))
        shipper.scanOwnSpool()
        await shipper.shipPending()
        XCTAssertEqual(shipper.uploads, 2, "\(shipper.health)")

        let keys = spoolRoot + "/recording-keys"
        try (signer.publicKey.openSSHLine + " gatehouse-recording-ca\n").write(toFile: keys, atomically: true, encoding: .utf8)
        let empty = spoolRoot + "/empty"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let withDatabase = try writeConfiguration(database: database)
        let bucketOnly = try writeConfiguration(database: nil)
        let fetchDirectories = { Set((try? FileManager.default.contentsOfDirectory(atPath: NSTemporaryDirectory())) ?? []).filter { $0.hasPrefix("gatehouse-fetch-") } }
        let before = fetchDirectories()

        for config in [withDatabase, bucketOnly] {
            let common = ["--config", config, "--recordings", empty]
            let json = try gatehouse(["sessions", "list", "--json"] + common)
            XCTAssertEqual(json.status, 0, json.err)
            let lines = json.out.split(separator: "\n")
            XCTAssertEqual(lines.count, 2, json.out)
            XCTAssertTrue(lines.allSatisfy { $0.contains("\"location\":\"shipped\"") && $0.contains("\"object_key\":\"gatehouse/s-cli") }, json.out)
            if config == withDatabase { XCTAssertTrue(json.out.contains("\"replica_id\":\"r1\""), json.out) }

            let table = try gatehouse(["sessions", "list"] + common)
            XCTAssertEqual(table.status, 0, table.err)
            XCTAssertTrue(table.out.contains("WHERE"), table.out)
            XCTAssertTrue(table.out.contains(config == withDatabase ? "shipped@r1" : "shipped"), table.out)

            let verify = try gatehouse(["verify", "s-cli", "--trusted-keys", keys] + common)
            XCTAssertEqual(verify.status, 0, verify.out + verify.err)
            XCTAssertTrue(verify.out.hasPrefix("OK s3://\(bucket)/gatehouse/s-cli-ch0.ghrec: "), verify.out)
            XCTAssertTrue(verify.out.contains("ended normally"), verify.out)

            let all = try gatehouse(["verify", "--all", "--trusted-keys", keys] + common)
            XCTAssertEqual(all.status, 0, all.out + all.err)
            XCTAssertTrue(all.out.contains("2 of 2 recordings verified"), all.out)

            let export = try gatehouse(["export", "s-cli", "--format", "raw"] + common)
            XCTAssertEqual(export.status, 0, export.err)
            XCTAssertEqual(Array(export.stdout), output, "export from the bucket: the recorded bytes")

            let replay = try gatehouse(["replay", "s-cli", "--speed", "64"] + common)
            XCTAssertEqual(replay.status, 0, replay.err)
            XCTAssertTrue(replay.out.contains("hello from the bucket"), replay.out)

            let show = try gatehouse(["sessions", "show", "s-cli-2", "--state", spoolRoot + "/no-state"] + common)
            XCTAssertEqual(show.status, 0, show.err)
            XCTAssertTrue(show.out.contains("deploy@web-01"), show.out)

            let missing = try gatehouse(["export", "s-nope", "--format", "raw"] + common)
            XCTAssertNotEqual(missing.status, 0)
            XCTAssertTrue(missing.err.contains("no recording \"s-nope\""), missing.err)
            XCTAssertFalse((json.out + json.err + verify.out + verify.err + table.out).contains("test-secret-never-printed"))
        }
        XCTAssertEqual(fetchDirectories(), before, "fetched copies are removed at exit")

        // An object replaced in the bucket after shipping: the index's SHA-256 refuses it.
        try await client.putObject("s-cli-ch0.ghrec", data: Data("not the recording".utf8))
        let tampered = try gatehouse(["verify", "s-cli", "--trusted-keys", keys, "--config", withDatabase, "--recordings", empty])
        XCTAssertNotEqual(tampered.status, 0)
        XCTAssertTrue(tampered.err.contains("the index recorded"), tampered.err)
        // Without the database the object itself is verified, and fails.
        let unindexed = try gatehouse(["verify", "s-cli", "--trusted-keys", keys, "--config", bucketOnly, "--recordings", empty])
        XCTAssertEqual(unindexed.status, 1)
        XCTAssertTrue(unindexed.out.hasPrefix("FAILED s3://\(bucket)/gatehouse/s-cli-ch0.ghrec"), unindexed.out)
    }

    func testLocalRecordingsAreUnchangedWithoutConfig() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.gatehouse) else { throw XCTSkip("\(Self.gatehouse) not built") }
        let missing = try gatehouse(["export", "s-nope", "--format", "raw", "--recordings", spoolRoot + "/nowhere"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("cannot list the recordings directory"), missing.err)
    }
}
