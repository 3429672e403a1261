import Foundation
import ObjectStorage
import Recording
import StateStore
#if canImport(Glibc)
import Glibc
#endif

/// How one attempt on one file ended (failures are thrown).
enum ShipOutcome: Sendable, Equatable {
    case shipped(objectKey: String, bytes: Int64)
    /// The index already had it shipped with this content; only the local copy was left.
    case alreadyShipped(objectKey: String)
    /// Another shipper holds the lease (it is shipping the file now).
    case leasedElsewhere
    /// A writer holds the file.
    case live
    /// The file is no longer there (another shipper finished it).
    case gone
    /// Recovery refused it (damage before the end): left in its spool.
    case heldBack(String)
}

extension RecordingShipper {
    /// Object names in the bucket (under the configured prefix): the recording and its index line.
    public static func objectName(recordingID: String) -> String { recordingID + "." + RecordingFiles.fileExtension }
    public static func summaryObjectName(recordingID: String) -> String { recordingID + ".json" }

    /// Leases `path` (from `replica`'s spool), ships it, gives the lease up.
    func ship(path: String, spoolOf replica: String) async throws -> ShipOutcome {
        guard let id = RecordingFiles.recordingID(ofPath: path) else { return .gone }
        guard let catalog else { return try await shipLeased(path: path, id: id, spoolOf: replica) }
        do {
            guard try await catalog.takeLease(recordingID: id, owner: replicaID, duration: options.leaseDuration) else { return .leasedElsewhere }
        } catch {
            throw ShippingError.remote("\(error)")
        }
        let outcome: ShipOutcome
        do { outcome = try await shipLeased(path: path, id: id, spoolOf: replica) } catch {
            try? await catalog.releaseLease(recordingID: id, owner: replicaID)
            throw error
        }
        try? await catalog.releaseLease(recordingID: id, owner: replicaID)
        return outcome
    }

    /// The steps under the lease. The file is deleted only after the store's HEAD matched what
    /// was sent and the index says shipped.
    func shipLeased(path: String, id: String, spoolOf replica: String) async throws -> ShipOutcome {
        // Checked under the lease: a shipper that held it before may have finished meanwhile.
        guard FileManager.default.fileExists(atPath: path) else { return .gone }

        // Read without a lock first. An empty file is a writer's new file before it took its
        // lock (it writes the header only after): even trying the lock then could make the
        // writer's own non-blocking lock fail. An unfinished one changed moments ago is left
        // alone too. Both wait for a later pass.
        let state = (try? RecordingInspection.summary(path: path))?.state
        if Self.fileSize(path) == 0 || state == "unfinished" || state == "live", let age = Self.age(path), age < options.unfinishedGrace {
            return .live
        }

        // The same code path as `gatehouse verify`: a live file is refused by its lock, a
        // closed one left as it is, an unfinished one closed with a signed crash end.
        var summary: RecordingSummary
        do {
            switch try RecordingRecovery.recover(path: path, signer: signer()) {
            case .alreadyClosed:
                summary = try RecordingInspection.summary(path: path)
            case .closed(_, let discarded, let recovered):
                summary = recovered
                logger.notice("recovered an unfinished recording", metadata: ["recording": "\(id)", "replica": "\(replica)", "discarded_bytes": "\(discarded)"])
                onEvent(.recovered(recordingID: id, replica: replica, discardedBytes: discarded))
            }
        } catch RecoveryError.live {
            return .live
        } catch RecoveryError.cannotOpen(_, let reason) where !FileManager.default.fileExists(atPath: path) {
            _ = reason
            return .gone
        } catch let error as RecoveryError {
            return .heldBack("\(error)")
        } catch {
            return .heldBack("\(error)")
        }

        let digest = try FileDigest(path: path)
        let name = Self.objectName(recordingID: id)
        let key = client.key(name)

        if let catalog {
            do {
                if let existing = try await catalog.entry(recordingID: id), existing.state == .shipped {
                    // Shipped before, and the process died before the local copy was deleted.
                    guard existing.sha256 == digest.sha256, existing.size == digest.size else {
                        throw ShippingError.conflict(recordingID: id, reason: "the index has it shipped as \(existing.objectKey ?? "?") with size \(existing.size ?? -1) and SHA-256 \(existing.sha256 ?? "?"), the local file differs (size \(digest.size), SHA-256 \(digest.sha256)); kept")
                    }
                    let info = try await remote { try await self.client.headObject(name) }
                    guard info.size == digest.size else {
                        throw ShippingError.conflict(recordingID: id, reason: "the bucket holds \(info.size) bytes, the file \(digest.size); kept")
                    }
                    try removeLocal(path)
                    return .alreadyShipped(objectKey: existing.objectKey ?? key)
                }
                try await catalog.upsertUnshipped(entry(summary, replica: replica, state: .shipping))
            } catch let error as ShippingError { throw error } catch {
                throw ShippingError.remote("\(error)")
            }
        }

        // The upload (HEAD-verified by the client: size, and SHA-256 checksum or ETag), under
        // a renewed lease.
        _ = try await whileLeased(id) { [client] in
            try await self.remote { try await client.uploadFile(at: path, as: name) }
        }
        let line = try RecordingSummary.encoder().encode(summary)
        _ = try await remote { try await self.client.putObject(Self.summaryObjectName(recordingID: id), data: line, contentType: "application/json") }

        if let catalog {
            do { try await catalog.markShipped(recordingID: id, owner: replicaID, objectKey: key, size: digest.size, sha256: digest.sha256) } catch {
                throw ShippingError.remote("\(error)")
            }
        }
        try removeLocal(path)
        return .shipped(objectKey: key, bytes: digest.size)
    }

    /// How long ago the file last changed.
    static func age(_ path: String) -> Duration? {
        guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date else { return nil }
        return .milliseconds(Int64(max(0, Date().timeIntervalSince(modified)) * 1000))
    }

    /// Runs `body` while renewing the lease every third of its duration; a renewal that finds
    /// the lease taken over cancels the upload.
    func whileLeased<T: Sendable>(_ id: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let catalog else { return try await body() }
        let owner = replicaID
        let every = options.leaseDuration / 3
        let duration = options.leaseDuration
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                while true {
                    try await Task.sleep(for: every)
                    let held: Bool
                    do { held = try await catalog.takeLease(recordingID: id, owner: owner, duration: duration) } catch {
                        continue  // the database may come back before the lease runs out
                    }
                    if !held { throw ShippingError.leaseLost(recordingID: id) }
                }
            }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let value = result { return value }
            }
            throw CancellationError()
        }
    }

    /// Object store errors, wrapped so every remote failure reads the same in health.
    func remote<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as ShippingError { throw error } catch {
            throw ShippingError.remote("object store: \(error)")
        }
    }

    func removeLocal(_ path: String) throws {
        guard unlink(path) == 0 || errno == ENOENT else {
            throw ShippingError.file(path: path, reason: "shipped, but the local copy cannot be deleted: \(String(cString: strerror(errno)))")
        }
        let directory = RecordingFiles.directory(of: path)
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); _ = close(fd) }
    }

    func entry(_ s: RecordingSummary, replica: String, state: RecordingShipState) throws -> RecordingCatalogEntry {
        let line = String(decoding: try RecordingSummary.encoder().encode(s), as: UTF8.self)
        let started = Date(timeIntervalSince1970: Double(s.startTimeMicros) / 1_000_000)
        let ended = Date(timeIntervalSince1970: Double(s.startTimeMicros + s.durationMicros) / 1_000_000)
        return RecordingCatalogEntry(recordingID: s.recordingID, sessionID: s.sessionID, channel: s.channel, replicaID: replica,
                                     subject: s.subject, target: s.target, login: s.login, certificateKeyID: s.certificateKeyID,
                                     certificateSerial: s.certificateSerial, startedAt: started, endedAt: ended, endState: s.state,
                                     state: state, summary: line)
    }
}
