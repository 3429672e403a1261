import AsyncHTTPClient
import Foundation
import Logging
import ObjectStorage
import ProcessSupport
import SSHCertificates
import StateStore
import XCTest
@testable import Recording
@testable import RecordingShipping

/// Tests that ship to a real object store and share state in a real database: one PostgreSQL
/// 15 and one moto S3 server (a stand-in for S3: the client speaks plain S3) per class, each
/// test with its own database and bucket; a test that stops the store or turns moto's
/// authentication on starts a moto of its own. All on 127.0.0.1, stopped by pid.
class ShippingTestCase: XCTestCase {
    nonisolated(unsafe) static var postgres: PostgresServer?
    nonisolated(unsafe) static var startFailure: String?
    nonisolated(unsafe) static var sharedMoto: MotoServer?

    /// Started by the test itself, stopped in its tearDown.
    var ownMoto: MotoServer?
    var moto: MotoServer { ownMoto ?? Self.sharedMoto! }
    /// This test's bucket.
    var bucket = "rec-" + UUID().uuidString.prefix(8).lowercased()
    var spoolRoot: String!
    let signer = try! SSHPrivateKey.generate(.ed25519)

    override class func setUp() {
        super.setUp()
        do { postgres = try PostgresServer() } catch { startFailure = "\(error)" }
    }

    override class func tearDown() {
        postgres?.stop()
        postgres = nil
        sharedMoto?.stop()
        sharedMoto = nil
        super.tearDown()
    }

    override func setUp() async throws {
        if Self.sharedMoto == nil { Self.sharedMoto = try await MotoServer() }
        spoolRoot = FileManager.default.temporaryDirectory.appendingPathComponent("gh-spool-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: spoolRoot, withIntermediateDirectories: true)
    }

    override func tearDown() async throws {
        ownMoto?.stop()
        if let spoolRoot { try? FileManager.default.removeItem(atPath: spoolRoot) }
    }

    var server: PostgresServer {
        get throws {
            guard let server = Self.postgres else { throw PostgresServer.Failure(Self.startFailure ?? "no PostgreSQL server") }
            return server
        }
    }

    /// A catalog on a new, migrated database; its name for psql.
    func makeCatalog() async throws -> (RecordingCatalog, String) {
        let server = try server
        let name = try server.createDatabase()
        var logger = Logger(label: "gatehouse.store.test")
        logger.logLevel = .error
        let store = try PostgresStore(configuration: try PostgresStoreConfiguration(url: server.url(name)), operationTimeout: .seconds(10), logger: logger)
        addTeardownBlock { await store.shutdown() }
        try await store.migrate()
        return (RecordingCatalog(store: store), name)
    }

    func objectStoreConfiguration(endpoint: String? = nil, bucket: String? = nil, multipartThreshold: Int = 16 << 20,
                                  credentials: SigV4Credentials = SigV4Credentials(accessKeyID: "AKIATEST", secretAccessKey: "test-secret")) throws -> ObjectStoreConfiguration {
        try ObjectStoreConfiguration(endpoint: endpoint ?? moto.endpoint, region: "us-east-1", bucket: bucket ?? self.bucket, prefix: "gatehouse/",
                                     credentials: credentials,
                                     multipartThreshold: multipartThreshold, partSize: 5 << 20, requestTimeout: .seconds(10))
    }

    func makeClient(multipartThreshold: Int = 16 << 20, createBucket: Bool = true) async throws -> S3Client {
        let client = S3Client(configuration: try objectStoreConfiguration(multipartThreshold: multipartThreshold))
        if createBucket { try await client.createBucket() }
        return client
    }

    func makeShipper(replica: String, client: S3Client, catalog: RecordingCatalog?, queueLimit: Int64 = 1 << 30,
                     configure: (inout RecordingShipper.Options) -> Void = { _ in }) throws -> RecordingShipper {
        let spool = RecordingSpool(root: spoolRoot, replicaID: replica)
        try spool.prepare()
        var options = RecordingShipper.Options()
        options.tick = .milliseconds(100)
        options.retryInitial = .milliseconds(100)
        options.retryMax = .milliseconds(500)
        configure(&options)
        var logger = Logger(label: "gatehouse.shipper.test")
        logger.logLevel = .critical
        let key = signer
        return RecordingShipper(client: client, catalog: catalog, spool: spool, queueLimitBytes: queueLimit, options: options,
                                signer: { key }, logger: logger)
    }

    /// Writes a recording with the real writer into `replica`'s spool: `stdout` as output,
    /// finished with a signed trailer, or abandoned unfinished as a killed replica leaves it.
    @discardableResult
    func writeRecording(replica: String, session: String, stdout: [UInt8], finish: Bool = true) throws -> String {
        let directory = RecordingSpool(root: spoolRoot, replicaID: replica).directory(of: replica)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let header = SessionHeader(sessionID: session, channel: 0, certificateKeyID: "agent-42", certificateSerial: 7, scopes: ["ops-read"],
                                   context: "{\"task_id\":\"t-1\"}", subject: "alice@example.com", sourceAddress: "127.0.0.1:50000",
                                   target: "web-01", login: "deploy", command: "cat big.log", terminalType: nil, columns: 80, rows: 24,
                                   inputRecorded: false)
        let writer = try RecordingWriter(directory: directory, header: header, signer: signer)
        var offset = 0
        while offset < stdout.count {
            let end = min(offset + 200_000, stdout.count)
            try writer.append(.stdout, stdout[offset..<end])
            offset = end
        }
        let path = writer.path
        if finish {
            try writer.exit(status: 0)
            try writer.finish()
        } else {
            // Handed over and written, then dropped without a trailer: what kill -9 leaves.
            try writer.handOverIfIdle()
            writer.waitUntilWritten()
        }
        return path
    }

    /// Polls `condition` until it holds or `seconds` pass (no sleep-and-hope).
    func waitUntil(_ what: String, seconds: Double, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("not within \(seconds) s: \(what)")
        throw CancellationError()
    }

    func sha256Hex(_ path: String) throws -> String { try FileDigest(path: path).sha256 }

    func temporaryFile(_ name: String) -> String {
        let path = spoolRoot + "/fetched-" + name
        return path
    }
}

func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    var bytes = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        bytes[i] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}
