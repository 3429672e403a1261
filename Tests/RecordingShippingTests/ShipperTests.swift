import Foundation
import ObjectStorage
import StateStore
import XCTest
@testable import Recording
@testable import RecordingShipping

/// The shipper end to end: real recordings (the real writer), a real PostgreSQL 15 for the
/// index and leases, moto's S3 server as the bucket.
final class ShipperTests: ShippingTestCase {
    func testFinishedRecordingIsShippedVerifiedThenDeleted() async throws {
        let (catalog, _) = try await makeCatalog()
        let client = try await makeClient()
        let shipper = try makeShipper(replica: "r1", client: client, catalog: catalog)
        let output = pseudoRandomBytes(300_000, seed: 1)
        let path = try writeRecording(replica: "r1", session: "s-one", stdout: output)
        let localSHA = try sha256Hex(path)
        let localSize = try XCTUnwrap(RecordingShipper.fileSize(path))

        shipper.recordingFinished(path: path)
        XCTAssertEqual(shipper.health.queuedBytes, localSize, "counted in the queue at once")
        await shipper.shipPending()

        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "local copy deleted once shipped")
        XCTAssertEqual(shipper.health.queuedFiles, 0)
        XCTAssertEqual(shipper.uploads, 1)
        let info = try await client.headObject("s-one-ch0.ghrec")
        XCTAssertEqual(info.size, localSize)
        let fetched = temporaryFile("one")
        try await client.getObject("s-one-ch0.ghrec", toFile: fetched)
        XCTAssertEqual(try sha256Hex(fetched), localSHA, "the bucket holds the file byte for byte")

        let entry = try await XCTUnwrapAsync(try await catalog.entry(recordingID: "s-one-ch0"))
        XCTAssertEqual(entry.state, .shipped)
        XCTAssertEqual(entry.objectKey, "gatehouse/s-one-ch0.ghrec")
        XCTAssertEqual(entry.size, localSize)
        XCTAssertEqual(entry.sha256, localSHA)
        XCTAssertEqual(entry.replicaID, "r1")
        XCTAssertEqual(entry.target, "web-01")
        XCTAssertEqual(entry.endState, "normal")
        let owner = try await catalog.leaseOwner(recordingID: "s-one-ch0")
        XCTAssertNil(owner, "lease given up")
        // The summary object lets a bucket be listed without the database.
        let summary = try RecordingSummary.decoder().decode(RecordingSummary.self, from: try await client.getObject("s-one-ch0.json"))
        XCTAssertEqual(summary.totals.stdout, UInt64(output.count))
    }

    func testLargeRecordingGoesMultipart() async throws {
        let (catalog, _) = try await makeCatalog()
        // A 6 MiB threshold and 5 MiB parts (S3's minimum): 20 MiB of output is 4 or 5 parts.
        let client = try await makeClient(multipartThreshold: 6 << 20)
        let shipper = try makeShipper(replica: "r1", client: client, catalog: catalog)
        let path = try writeRecording(replica: "r1", session: "s-big", stdout: pseudoRandomBytes(20 << 20, seed: 2))
        let localSHA = try sha256Hex(path)
        let localSize = try XCTUnwrap(RecordingShipper.fileSize(path))
        XCTAssertGreaterThan(localSize, 20 << 20)
        let started = ContinuousClock.now
        shipper.recordingFinished(path: path)
        await shipper.shipPending()
        print("20 MiB recording shipped multipart in \(ContinuousClock.now - started)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path), "\(shipper.health)")
        let info = try await client.headObject("s-big-ch0.ghrec")
        XCTAssertEqual(info.size, localSize)
        let parts = Int((localSize + (5 << 20) - 1) / (5 << 20))
        XCTAssertTrue(info.etag.hasSuffix("-\(parts)"), "multipart ETag with \(parts) parts: \(info.etag)")
        let fetched = temporaryFile("big")
        try await client.getObject("s-big-ch0.ghrec", toFile: fetched)
        XCTAssertEqual(try sha256Hex(fetched), localSHA)
        let entry = try await catalog.entry(recordingID: "s-big-ch0")
        XCTAssertEqual(entry?.sha256, localSHA)
        XCTAssertEqual(entry?.state, .shipped)
    }

    /// Two live replicas take over one dead replica's spool at the same moment: the lease
    /// makes each recording shipped by exactly one of them.
    func testTwoShippersRacingForOneSpoolShipEachFileOnce() async throws {
        let (catalog, database) = try await makeCatalog()
        let client = try await makeClient()
        let a = try makeShipper(replica: "r1", client: client, catalog: catalog)
        let b = try makeShipper(replica: "r2", client: client, catalog: catalog)
        var paths: [String] = []
        for i in 0..<12 { paths.append(try writeRecording(replica: "r3", session: "s-race-\(i)", stdout: pseudoRandomBytes(50_000 + i * 1000, seed: UInt64(i)))) }
        try await catalog.heartbeat(replicaID: "r3")
        try server.psql(database, "UPDATE replicas SET last_seen = now() - interval '1 hour' WHERE replica_id = 'r3'")

        async let shippedByA = a.recoverDeadReplicas()
        async let shippedByB = b.recoverDeadReplicas()
        let (fromA, fromB) = await (shippedByA, shippedByB)
        print("race: r1 shipped \(fromA.count), r2 shipped \(fromB.count)")

        XCTAssertEqual(a.uploads + b.uploads, 12, "each recording uploaded exactly once (r1 \(a.uploads), r2 \(b.uploads))")
        XCTAssertEqual(Set(fromA).intersection(fromB), [], "no recording shipped by both")
        XCTAssertEqual(Set(fromA + fromB).count, 12)
        for path in paths { XCTAssertFalse(FileManager.default.fileExists(atPath: path)) }
        let shipped = try server.psql(database, "SELECT count(*) FROM recordings WHERE state = 'shipped' AND replica_id = 'r3'")
        XCTAssertEqual(shipped, "12")
        let objects = try await client.listObjects().filter { $0.name.hasSuffix(".ghrec") }
        XCTAssertEqual(objects.count, 12)
    }

    /// A lease held by another owner is respected; a lapsed one is taken over.
    func testLeaseIsOneStatementAndLapses() async throws {
        let (catalog, database) = try await makeCatalog()
        let firstTake = try await catalog.takeLease(recordingID: "x-ch0", owner: "r1", duration: .seconds(60))
        XCTAssertTrue(firstTake)
        let secondTake = try await catalog.takeLease(recordingID: "x-ch0", owner: "r2", duration: .seconds(60))
        XCTAssertFalse(secondTake)
        let renewal = try await catalog.takeLease(recordingID: "x-ch0", owner: "r1", duration: .seconds(60))
        XCTAssertTrue(renewal, "the owner renews")
        try server.psql(database, "UPDATE recording_leases SET lease_until = now() - interval '1 second'")
        let takeover = try await catalog.takeLease(recordingID: "x-ch0", owner: "r2", duration: .seconds(60))
        XCTAssertTrue(takeover, "a lapsed lease is taken over")
        let owner = try await catalog.leaseOwner(recordingID: "x-ch0")
        XCTAssertEqual(owner, "r2")
        // 20 concurrent takers of one fresh lease: exactly one wins.
        let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<20 { group.addTask { try await catalog.takeLease(recordingID: "y-ch0", owner: "r\(i)", duration: .seconds(60)) } }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        XCTAssertEqual(winners, 1)
    }

    func testObjectStoreDownQueuesLocallyAndRefusesPastTheLimitThenDrains() async throws {
        let (catalog, _) = try await makeCatalog()
        ownMoto = try await MotoServer()
        let port = moto.port
        let client = try await makeClient()
        let shipper = try makeShipper(replica: "r1", client: client, catalog: catalog, queueLimit: 500_000)
        moto.stop()

        var paths: [String] = []
        var expected: Int64 = 0
        for i in 0..<3 {
            let path = try writeRecording(replica: "r1", session: "s-down-\(i)", stdout: pseudoRandomBytes(200_000, seed: UInt64(10 + i)))
            paths.append(path)
            expected += try XCTUnwrap(RecordingShipper.fileSize(path))
            shipper.recordingFinished(path: path)
            await shipper.shipPending()
            XCTAssertEqual(shipper.health.queuedBytes, expected)
            XCTAssertEqual(shipper.acceptsNewSessions, expected <= 500_000, "after \(i + 1) recordings (\(expected) bytes)")
        }
        XCTAssertFalse(shipper.acceptsNewSessions, "600 KB waiting, limit 500 KB")
        let refusal = try XCTUnwrap(shipper.refusalReason)
        XCTAssertTrue(refusal.hasPrefix("recordings cannot be shipped: \(expected) bytes in 3 recordings wait, more than the limit of 500000; last error: object store:"), refusal)
        for path in paths { XCTAssertTrue(FileManager.default.fileExists(atPath: path), "kept while the store is down") }
        let health = shipper.health
        XCTAssertGreaterThan(health.consecutiveFailures, 0)
        XCTAssertTrue(health.description.contains("new sessions refused"), health.description)
        XCTAssertTrue(health.lastError?.contains("object store") == true, health.description)
        print("store down: \(health)")

        // The store comes back at the same address (empty: moto keeps nothing); the loop drains.
        ownMoto = try await MotoServer(port: port)
        try await client.createBucket()
        let loop = Task { await shipper.run() }
        defer { loop.cancel() }
        let back = ContinuousClock.now
        try await waitUntil("the queue drains and sessions are accepted again", seconds: 30) {
            shipper.acceptsNewSessions && shipper.health.queuedFiles == 0
        }
        print("store back: queue drained \(ContinuousClock.now - back) after the bucket was there again")
        for path in paths { XCTAssertFalse(FileManager.default.fileExists(atPath: path)) }
        XCTAssertEqual(shipper.health.consecutiveFailures, 0)
        XCTAssertNil(shipper.refusalReason)
        XCTAssertNil(shipper.health.problem)
        let objects = try await client.listObjects().filter { $0.name.hasSuffix(".ghrec") }
        XCTAssertEqual(objects.count, 3)
    }

    /// A replica killed mid-session: its heartbeat goes stale, its unfinished recording (the
    /// real writer, abandoned without a trailer) is recovered by another replica as `gatehouse
    /// verify` would, shipped, and verifies from the bucket with a crash end.
    func testDeadReplicaRecordingIsRecoveredShippedAndVerifies() async throws {
        let (catalog, _) = try await makeCatalog()
        let client = try await makeClient()
        let output = pseudoRandomBytes(400_000, seed: 3)
        let deadPath = try writeRecording(replica: "r-dead", session: "s-killed", stdout: output, finish: false)
        // A live replica's finished recording must not be taken: its own shipper ships it.
        let alivePath = try writeRecording(replica: "r-alive", session: "s-alive", stdout: pseudoRandomBytes(1000, seed: 4))
        try await catalog.heartbeat(replicaID: "r-alive")

        let shipper = try makeShipper(replica: "r-live", client: client, catalog: catalog) { options in
            options.deadAfter = .seconds(2)
            options.unfinishedGrace = .seconds(1)
            options.deadReplicaCheckInterval = .milliseconds(200)
            options.heartbeatInterval = .milliseconds(200)
        }
        // r-dead beats once more and dies; r-alive goes on beating. (The instant is taken before
        // the beat, so it is no later than the row's last_seen.)
        let died = ContinuousClock.now
        try await catalog.heartbeat(replicaID: "r-dead")
        let aliveBeat = Task {
            while !Task.isCancelled {
                try? await catalog.heartbeat(replicaID: "r-alive")
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { aliveBeat.cancel() }
        let loop = Task { await shipper.run() }
        defer { loop.cancel() }
        try await waitUntil("the dead replica's recording is shipped", seconds: 120) {
            try await catalog.entry(recordingID: "s-killed-ch0")?.state == .shipped
        }
        let elapsed = ContinuousClock.now - died
        print("dead replica's recording in the bucket \(elapsed) after its last heartbeat (dead after 2 s)")
        XCTAssertGreaterThanOrEqual(elapsed, .seconds(2), "not taken before the replica counted as dead")
        XCTAssertFalse(FileManager.default.fileExists(atPath: deadPath))
        XCTAssertTrue(FileManager.default.fileExists(atPath: alivePath), "a live replica's spool is left to it")

        let archive = RecordingArchive(client: client, catalog: catalog)
        let found = try await XCTUnwrapAsync(try await archive.find("s-killed"))
        XCTAssertEqual(found.summary.state, "crash")
        XCTAssertEqual(found.replicaID, "r-dead")
        let fetched = temporaryFile("killed.ghrec")
        try await archive.fetch(found, to: fetched)
        let report = RecordingVerifier.verify(path: fetched, trustedKeys: [signer.publicKey])
        XCTAssertTrue(report.isIntact, report.verdict)
        XCTAssertEqual(report.end, .crash)
        XCTAssertEqual(report.totals.stdout, UInt64(output.count), "every byte handed to the writer is in the recovered recording")
    }

    func testArchiveReadsBackWithAndWithoutTheDatabase() async throws {
        let (catalog, _) = try await makeCatalog()
        let client = try await makeClient()
        let shipper = try makeShipper(replica: "r1", client: client, catalog: catalog)
        let output = Array("hello from the bucket\r\n".utf8) + pseudoRandomBytes(5000, seed: 5)
        let path = try writeRecording(replica: "r1", session: "s-read", stdout: output)
        try writeRecording(replica: "r1", session: "s-other", stdout: Array("x".utf8))
        // The hook by session id, as the bastion's observer knows it.
        shipper.sessionEnded(sessionID: "s-read")
        shipper.sessionEnded(sessionID: "s-other")
        shipper.sessionEnded(sessionID: "s")   // a prefix of both: matches neither
        XCTAssertEqual(shipper.health.queuedFiles, 2)
        await shipper.shipPending()
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))

        for archive in [RecordingArchive(client: client, catalog: catalog), RecordingArchive(client: client, catalog: nil)] {
            let listed = try await archive.list()
            XCTAssertEqual(Set(listed.map(\.summary.recordingID)), ["s-read-ch0", "s-other-ch0"])
            XCTAssertTrue(listed.allSatisfy { $0.location == "shipped" })
            let found = try await XCTUnwrapAsync(try await archive.find("s-read"))
            let fetched = temporaryFile("read-\(archive.catalog == nil ? "list" : "db")")
            try await archive.fetch(found, to: fetched)
            XCTAssertTrue(RecordingVerifier.verify(path: fetched, trustedKeys: [signer.publicKey]).isIntact)
            let (exported, _) = try RecordingExporter.export(path: fetched, format: .raw, stream: .stdout)
            XCTAssertEqual(exported, output, "export from the bucket gives the recorded bytes")
            let missing = try await archive.find("s-nope")
            XCTAssertNil(missing)
        }
    }

    /// A recording damaged in the middle is never shipped as if intact: recovery refuses it,
    /// it stays in the spool, is reported, and does not hold up the rest of the queue.
    func testDamagedRecordingIsHeldBackAndTheRestShips() async throws {
        let (catalog, _) = try await makeCatalog()
        let client = try await makeClient()
        // Damage reads as an unfinished file (the scan stops at the bad record), so it waits out
        // the grace for unfinished files like any other; no grace here.
        let shipper = try makeShipper(replica: "r1", client: client, catalog: catalog) { $0.unfinishedGrace = .zero }
        let bad = try writeRecording(replica: "r1", session: "s-a-bad", stdout: pseudoRandomBytes(100_000, seed: 7))
        let good = try writeRecording(replica: "r1", session: "s-b-good", stdout: pseudoRandomBytes(1000, seed: 8))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: bad))
        try handle.seek(toOffset: 50_000)
        var byte = try XCTUnwrap(try handle.read(upToCount: 1))
        byte[0] ^= 0xFF
        try handle.seek(toOffset: 50_000)
        try handle.write(contentsOf: byte)
        try handle.close()

        shipper.scanOwnSpool()
        await shipper.shipPending()
        XCTAssertTrue(FileManager.default.fileExists(atPath: bad), "the damaged recording stays")
        XCTAssertFalse(FileManager.default.fileExists(atPath: good), "the next one in the queue is shipped")
        let health = shipper.health
        XCTAssertEqual(health.heldBack, [bad])
        XCTAssertEqual(health.queuedFiles, 0)
        XCTAssertTrue(health.description.contains("held back"), health.description)
        let entry = try await catalog.entry(recordingID: "s-a-bad-ch0")
        XCTAssertNil(entry)
        shipper.scanOwnSpool()
        XCTAssertEqual(shipper.health.queuedFiles, 0, "not queued again by the next scan")
    }

    /// The store takes the upload but refuses the HEAD that would verify it (an IAM policy
    /// allowing s3:* but denying s3:GetObject, which HEAD needs; moto enforces it once
    /// authentication is on): the local copy stays and the index does not say shipped.
    func testUploadWhoseHeadFailsKeepsTheLocalCopy() async throws {
        let (catalog, _) = try await makeCatalog()
        ownMoto = try await MotoServer()  // authentication, once on, stays on
        _ = try await makeClient()   // the bucket, created before authentication is on
        let policy = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Action":"s3:GetObject","Resource":"*"}]}"#
        let credentials = try await moto.enableAuthentication(policy: policy)
        let client = S3Client(configuration: try objectStoreConfiguration(credentials: credentials))
        let shipper = try makeShipper(replica: "r1", client: client, catalog: catalog)
        let path = try writeRecording(replica: "r1", session: "s-head", stdout: pseudoRandomBytes(20_000, seed: 9))

        shipper.recordingFinished(path: path)
        await shipper.shipPending()
        XCTAssertTrue(FileManager.default.fileExists(atPath: path), "not deleted without a verifying HEAD: \(shipper.health)")
        XCTAssertEqual(shipper.uploads, 0)
        let health = shipper.health
        XCTAssertEqual(health.queuedFiles, 1)
        // The PUT was accepted (the client HEADs only after it): only the check failed. (Not
        // listed to show it: moto miscomputes the signature of a list prefix holding '/'.)
        XCTAssertTrue(health.lastError?.contains("HeadObject gatehouse/s-head-ch0.ghrec") == true, health.description)
        XCTAssertTrue(health.lastError?.contains("HTTP 403") == true, health.description)
        let entry = try await catalog.entry(recordingID: "s-head-ch0")
        XCTAssertEqual(entry?.state, .shipping, "the index does not say shipped")
    }

    /// A shipper whose lease lapsed and was taken over cannot record its result.
    func testMarkShippedNeedsTheLeaseStillHeld() async throws {
        let (catalog, database) = try await makeCatalog()
        let entry = RecordingCatalogEntry(recordingID: "s-l-ch0", sessionID: "s-l", channel: 0, replicaID: "r1", subject: "alice", target: "web-01",
                                          login: "deploy", certificateKeyID: "k", certificateSerial: UInt64.max, startedAt: Date(), endedAt: nil,
                                          endState: "normal", state: .shipping, summary: "{}")
        let took = try await catalog.takeLease(recordingID: "s-l-ch0", owner: "r1", duration: .seconds(60))
        XCTAssertTrue(took)
        try await catalog.upsertUnshipped(entry)
        try server.psql(database, "UPDATE recording_leases SET lease_until = now() - interval '1 second'")
        let tookOver = try await catalog.takeLease(recordingID: "s-l-ch0", owner: "r2", duration: .seconds(60))
        XCTAssertTrue(tookOver)
        let sha = String(repeating: "a", count: 64)
        do {
            try await catalog.markShipped(recordingID: "s-l-ch0", owner: "r1", objectKey: "k1", size: 1, sha256: sha)
            XCTFail("r1 recorded a result without the lease")
        } catch {
            XCTAssertTrue("\(error)".contains("r1 no longer holds the lease on s-l-ch0"), "\(error)")
        }
        let stillShipping = try await catalog.entry(recordingID: "s-l-ch0")
        XCTAssertEqual(stillShipping?.state, .shipping)
        XCTAssertEqual(stillShipping?.certificateSerial, UInt64.max, "a uint64 serial round-trips")
        try await catalog.markShipped(recordingID: "s-l-ch0", owner: "r2", objectKey: "k2", size: 1, sha256: sha)
        let shipped = try await catalog.entry(recordingID: "s-l-ch0")
        XCTAssertEqual(shipped?.state, .shipped)
        XCTAssertEqual(shipped?.objectKey, "k2")
        // A shipped row is never moved back by a later upsert.
        try await catalog.upsertUnshipped(entry)
        let after = try await catalog.entry(recordingID: "s-l-ch0")
        XCTAssertEqual(after?.state, .shipped)
    }

    /// An unfinished file nobody holds is not recovered while it is fresh (a writer may be
    /// between creating it and locking it); once left alone past the grace it is recovered and
    /// shipped from the replica's own spool too.
    func testFreshUnfinishedFileIsLeftAloneUntilTheGracePasses() async throws {
        let (catalog, _) = try await makeCatalog()
        let client = try await makeClient()
        let shipper = try makeShipper(replica: "r1", client: client, catalog: catalog) { $0.unfinishedGrace = .seconds(1) }
        let path = try writeRecording(replica: "r1", session: "s-fresh", stdout: pseudoRandomBytes(5000, seed: 11), finish: false)
        let before = try sha256Hex(path)
        shipper.scanOwnSpool()
        await shipper.shipPending()
        XCTAssertEqual(try sha256Hex(path), before, "a fresh unfinished file is not touched")
        XCTAssertEqual(shipper.uploads, 0)
        let bareEntry = try await catalog.entry(recordingID: "s-fresh-ch0")
        XCTAssertNil(bareEntry)
        try await waitUntil("recovered and shipped once the grace has passed", seconds: 10) {
            shipper.scanOwnSpool()
            await shipper.shipPending()
            return !FileManager.default.fileExists(atPath: path)
        }
        let entry = try await catalog.entry(recordingID: "s-fresh-ch0")
        XCTAssertEqual(entry?.state, .shipped)
        XCTAssertEqual(entry?.endState, "crash")
    }

    /// A recording shipped before the process died (index says shipped, local copy still
    /// there): the next pass deletes the copy without uploading it again.
    func testShippedButNotDeletedIsNotUploadedTwice() async throws {
        let (catalog, database) = try await makeCatalog()
        let client = try await makeClient()
        let first = try makeShipper(replica: "r1", client: client, catalog: catalog)
        let path = try writeRecording(replica: "r1", session: "s-twice", stdout: pseudoRandomBytes(10_000, seed: 6))
        let copy = path + ".keep"
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        first.recordingFinished(path: path)
        await first.shipPending()
        XCTAssertEqual(first.uploads, 1)
        try FileManager.default.moveItem(atPath: copy, toPath: path)

        let second = try makeShipper(replica: "r1", client: client, catalog: catalog)
        second.scanOwnSpool()
        XCTAssertEqual(second.health.queuedFiles, 1)
        await second.shipPending()
        XCTAssertEqual(second.uploads, 0, "not uploaded again")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertEqual(try server.psql(database, "SELECT count(*) FROM recordings"), "1")
    }
}

func XCTUnwrapAsync<T>(_ value: @autoclosure () async throws -> T?, file: StaticString = #filePath, line: UInt = #line) async throws -> T {
    let v = try await value()
    return try XCTUnwrap(v, file: file, line: line)
}
