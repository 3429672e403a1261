import Foundation
import Logging
import ObjectStorage
import Recording
import SSHCertificates
import StateStore
import Synchronization

/// Ships finished recordings from this replica's spool to the bucket, and a dead replica's
/// recordings too.
///
/// For the server (`ServeCommand`), with `recordings_store: {kind: s3}`:
///
///     guard case .s3(let s3) = try RecordingsStoreConfiguration.load(file: configFile) else { … local: as today … }
///     let shipper = try RecordingShipper(store: s3, recordingsRoot: configuration.recordingDirectory,
///                                        catalog: postgresStore.map { RecordingCatalog(store: $0) },  // nil without a database
///                                        signer: { authorities.signingKey(.recording) }, onEvent: { … audit … })
///     // the bastion records into shipper.spool.ownDirectory (RECORDINGS/<replica_id>/)
///     try await shipper.heartbeat()            // before the first session: this replica is alive
///     let task = Task { await shipper.run() }  // cancel it to stop
///     // when a recording is finished (RecordingWriter.finish returned): shipper.recordingFinished(path:),
///     //   or when a session ended (SessionObserver.sessionEnded): shipper.sessionEnded(sessionID:)
///     // before accepting a session: shipper.refusalReason (nil: accept; the shape of ServerState.loginGate)
///     // for /healthz: HealthReport.Check(name: "recordings_store", problem: shipper.health.problem)
///
/// A recording is shipped as: lease (one statement), recovery check (`RecordingRecovery.recover`,
/// the code path of `gatehouse verify`: a live file is skipped, an unfinished one is closed with
/// a signed crash end), index row `shipping`, upload (multipart from the threshold on), HEAD
/// compared with the size and SHA-256 checksum sent, summary object, index row `shipped` (only
/// while the lease is still held), then the local file is deleted. Any failure leaves the file
/// where it is, to be retried with backoff.
///
/// With `catalog: nil` (no database) it ships alone: no leases, no index, no recovery of other
/// replicas; for a single machine that keeps recordings in a bucket.
public final class RecordingShipper: Sendable {
    public struct Options: Sendable {
        /// How often the loop looks at what is due (retries, scans, dead replicas).
        public var tick: Duration = .seconds(1)
        /// A full scan of this replica's spool: the safety net for a missed `recordingFinished`.
        public var scanInterval: Duration = .seconds(10)
        /// How often a dead replica is looked for (and its recordings taken over).
        public var deadReplicaCheckInterval: Duration = .seconds(10)
        public var heartbeatInterval: Duration = .seconds(10)
        /// A replica whose heartbeat is older than this is dead: its spool is taken over. With
        /// the defaults that happens at most 40 s after its last heartbeat (30 s to count as
        /// dead, ≤ 10 s to the next check), then recovery and upload: inside the 2-minute bound.
        public var deadAfter: Duration = .seconds(30)
        /// A lease lasts this long and is renewed every third of it while an upload runs.
        public var leaseDuration: Duration = .seconds(60)
        /// Backoff after a failure: doubles from `retryInitial` up to `retryMax`.
        public var retryInitial: Duration = .seconds(1)
        public var retryMax: Duration = .seconds(30)
        /// An unfinished file nobody holds is recovered only once it has been left alone this
        /// long. A writer creates its file and then takes the lock: in between, the file looks
        /// abandoned, and recovery must never append a crash end to a file being written.
        public var unfinishedGrace: Duration = .seconds(10)
        public init() {}
    }

    struct State {
        /// This replica's finished, unshipped recordings: path → bytes.
        var pending: [String: Int64] = [:]
        var heldBack: [String: String] = [:]
        var consecutiveFailures = 0
        var retryAt: ContinuousClock.Instant?
        var lastError: String?
        var lastShippedAt: Date?
        var heartbeatError: String?
        var uploads = 0
    }

    public let replicaID: String
    public let spool: RecordingSpool
    public let client: S3Client
    public let catalog: RecordingCatalog?
    public let queueLimitBytes: Int64
    public let options: Options
    let signer: @Sendable () -> SSHPrivateKey
    let onEvent: @Sendable (ShippingEvent) -> Void
    let logger: Logger
    let state = Mutex(State())
    let wakes: AsyncStream<Void>
    let wake: AsyncStream<Void>.Continuation
    /// One pass at a time (a test calling `shipPending` beside `run`, a hook beside a scan).
    let passLock = AsyncLock()

    /// - Parameters:
    ///   - signer: the current recording signing key (recovery signs a crash end with it).
    ///   - onEvent: called for every shipped, recovered, failed or held-back recording (audit).
    public init(client: S3Client, catalog: RecordingCatalog?, spool: RecordingSpool, queueLimitBytes: Int64,
                options: Options = Options(), signer: @escaping @Sendable () -> SSHPrivateKey,
                onEvent: @escaping @Sendable (ShippingEvent) -> Void = { _ in },
                logger: Logger = Logger(label: "gatehouse.shipper")) {
        self.client = client
        self.catalog = catalog
        self.spool = spool
        self.replicaID = spool.replicaID
        self.queueLimitBytes = queueLimitBytes
        self.options = options
        self.signer = signer
        self.onEvent = onEvent
        self.logger = logger
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The shipper of a `recordings_store: {kind: s3}` section: spool `recordingsRoot/<replica_id>/`
    /// (created here), the section's bucket and queue limit.
    public convenience init(store: S3RecordingsStore, recordingsRoot: String, catalog: RecordingCatalog?, options: Options = Options(),
                            signer: @escaping @Sendable () -> SSHPrivateKey, onEvent: @escaping @Sendable (ShippingEvent) -> Void = { _ in },
                            logger: Logger = Logger(label: "gatehouse.shipper")) throws {
        let spool = RecordingSpool(root: recordingsRoot, replicaID: store.replicaID)
        try spool.prepare()
        self.init(client: S3Client(configuration: store.objectStore), catalog: catalog, spool: spool, queueLimitBytes: store.queueLimitBytes,
                  options: options, signer: signer, onEvent: onEvent, logger: logger)
    }

    // MARK: The server's side

    /// The session-end hook: `path` was just finished (trailer written). Counted at once in
    /// the queue, shipped by the running loop as soon as it wakes.
    public func recordingFinished(path: String) {
        let size = Self.fileSize(path)
        state.withLock { if let size { $0.pending[path] = size } }
        wake.yield()
    }

    /// The hook by session: every recording of `sessionID` (one per channel) in this
    /// replica's spool, for a caller that knows the session, not the files (the bastion's
    /// `SessionObserver.sessionEnded`). A recording still being finished is left to the scan.
    public func sessionEnded(sessionID: String) {
        guard RecordingFiles.isValidSessionID(sessionID) else { return }
        let prefix = sessionID + "-ch"
        for path in spool.recordings(of: replicaID) where RecordingFiles.baseName(of: path).hasPrefix(prefix) {
            let rest = RecordingFiles.recordingID(ofPath: path)?.dropFirst(prefix.count) ?? ""
            if !rest.isEmpty, rest.allSatisfy(\.isNumber) { recordingFinished(path: path) }
        }
    }

    /// False once more than `queueLimitBytes` of finished recordings wait in this replica's
    /// spool (the object store is down or slow): refuse new sessions until it drains.
    public var acceptsNewSessions: Bool { state.withLock { Self.total($0.pending) <= queueLimitBytes } }

    /// Why new sessions must be refused now, or nil: the shape of the bastion's `loginGate`.
    public var refusalReason: String? { health.problem }

    public var health: ShippingHealth {
        state.withLock { s in
            ShippingHealth(acceptsNewSessions: Self.total(s.pending) <= queueLimitBytes, queuedFiles: s.pending.count,
                           queuedBytes: Self.total(s.pending), queueLimitBytes: queueLimitBytes,
                           consecutiveFailures: s.consecutiveFailures, lastError: s.lastError, lastShippedAt: s.lastShippedAt,
                           heldBack: s.heldBack.keys.sorted(), heartbeatError: s.heartbeatError)
        }
    }

    /// Uploads this shipper completed (tests count them: each file exactly once).
    public var uploads: Int { state.withLock { $0.uploads } }

    /// Tells the database this replica is alive. Call once before taking sessions; `run`
    /// repeats it every `heartbeatInterval`.
    public func heartbeat() async throws {
        guard let catalog else { return }
        do {
            try await catalog.heartbeat(replicaID: replicaID)
            state.withLock { $0.heartbeatError = nil }
        } catch {
            state.withLock { $0.heartbeatError = "\(error)" }
            throw error
        }
    }

    /// Runs until cancelled: heartbeats, scans, ships with backoff, takes over dead replicas.
    /// Call once per shipper.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                while !Task.isCancelled {
                    try? await heartbeat()
                    try? await Task.sleep(for: options.heartbeatInterval)
                }
            }
            group.addTask { [self] in
                while !Task.isCancelled {
                    wake.yield()
                    try? await Task.sleep(for: options.tick)
                }
                wake.finish()
            }
            group.addTask { [self] in
                var lastScan: ContinuousClock.Instant?
                var lastDeadCheck: ContinuousClock.Instant?
                for await _ in wakes {
                    if Task.isCancelled { break }
                    let now = ContinuousClock.now
                    if lastScan.map({ now - $0 >= options.scanInterval }) ?? true {
                        scanOwnSpool()
                        lastScan = now
                    }
                    await shipPending()
                    if catalog != nil, lastDeadCheck.map({ now - $0 >= options.deadReplicaCheckInterval }) ?? true {
                        await recoverDeadReplicas()
                        lastDeadCheck = now
                    }
                }
            }
        }
    }

    // MARK: Passes (public so a test drives them without the loop's timing)

    /// Looks at every recording in this replica's spool: finished ones (no writer holds them)
    /// join the queue. A live one is left alone; an unfinished one whose writer is gone joins
    /// the queue too and is closed by recovery when shipped.
    public func scanOwnSpool() {
        var found: [String: Int64] = [:]
        for path in spool.recordings(of: replicaID) {
            // An empty file is a writer between creating its file and locking it: not even the
            // shared lock of the liveness check is tried on it (it could make the writer's
            // non-blocking lock fail).
            guard let size = Self.fileSize(path), size > 0, !RecordingInspection.isLive(path) else { continue }
            found[path] = size
        }
        state.withLock { s in
            for path in found.keys where s.heldBack[path] != nil { found[path] = nil }
            s.pending = found
        }
    }

    /// Ships every queued recording of this replica, unless backing off after a failure.
    /// Stops at the first object store or database failure (the next ones would fail too).
    public func shipPending() async {
        await passLock.withLock { [self] in
            let (paths, retryAt) = state.withLock { ($0.pending.keys.sorted(), $0.retryAt) }
            if let retryAt, ContinuousClock.now < retryAt { return }
            for path in paths {
                guard await shipReporting(path: path, spoolOf: replicaID) != nil else { return }
            }
        }
    }

    /// Takes over the spools of replicas whose heartbeat is older than `deadAfter`: each
    /// recording is leased, recovered and shipped. Returns the ids shipped.
    @discardableResult
    public func recoverDeadReplicas() async -> [String] {
        guard let catalog else { return [] }
        return await passLock.withLock { [self] in
            let stale: [String]
            do { stale = try await catalog.staleReplicas(deadAfter: options.deadAfter, excluding: replicaID) } catch {
                noteFailure("\(error)")
                return []
            }
            var shipped: [String] = []
            for replica in stale where RecordingSpool.isValidReplicaID(replica) {
                for path in spool.recordings(of: replica) {
                    if state.withLock({ $0.heldBack[path] != nil }) { continue }
                    guard let outcome = await shipReporting(path: path, spoolOf: replica) else { return shipped }
                    if case .shipped = outcome, let id = RecordingFiles.recordingID(ofPath: path) { shipped.append(id) }
                }
            }
            return shipped
        }
    }

    // MARK: Bookkeeping

    /// Ships one file and books the result; nil when the pass should stop (a remote failure).
    func shipReporting(path: String, spoolOf replica: String) async -> ShipOutcome? {
        let id = RecordingFiles.recordingID(ofPath: path) ?? path
        do {
            let outcome = try await ship(path: path, spoolOf: replica)
            switch outcome {
            case .shipped(let key, let bytes):
                state.withLock { s in
                    s.pending[path] = nil
                    s.uploads += 1
                    s.consecutiveFailures = 0
                    s.retryAt = nil
                    s.lastError = nil
                    s.lastShippedAt = Date()
                }
                logger.info("recording shipped", metadata: ["recording": "\(id)", "key": "\(key)", "bytes": "\(bytes)"])
                onEvent(.shipped(recordingID: id, objectKey: key, bytes: bytes, fromReplica: replica))
            case .alreadyShipped(let key):
                state.withLock { $0.pending[path] = nil }
                onEvent(.alreadyShipped(recordingID: id, objectKey: key))
            case .gone, .leasedElsewhere:
                state.withLock { $0.pending[path] = nil }
            case .live:
                // Not finished after all (a scan raced the writer's start): not queued.
                state.withLock { $0.pending[path] = nil }
            case .heldBack(let reason):
                state.withLock { s in
                    s.pending[path] = nil
                    s.heldBack[path] = reason
                }
                logger.error("recording held back: recovery refused it", metadata: ["recording": "\(id)", "reason": "\(reason)"])
                onEvent(.heldBack(recordingID: id, reason: reason))
            }
            return outcome
        } catch ShippingError.conflict(_, let reason) {
            // The index and the file disagree: retrying cannot settle it, and it must not
            // stop the rest of the queue. Left in the spool for an operator.
            state.withLock { s in
                s.pending[path] = nil
                s.heldBack[path] = reason
            }
            logger.error("recording held back: the index disagrees with the file", metadata: ["recording": "\(id)", "reason": "\(reason)"])
            onEvent(.heldBack(recordingID: id, reason: reason))
            return .heldBack(reason)
        } catch {
            logger.warning("recording not shipped; will retry", metadata: ["recording": "\(id)", "error": "\(error)"])
            onEvent(.failed(recordingID: id, reason: "\(error)"))
            noteFailure("\(error)")
            return nil
        }
    }

    func noteFailure(_ text: String) {
        state.withLock { s in
            s.consecutiveFailures += 1
            s.lastError = text
            let exponent = min(s.consecutiveFailures - 1, 16)
            let backoff = min(options.retryMax, options.retryInitial * (1 << exponent))
            s.retryAt = ContinuousClock.now + backoff
        }
    }

    static func total(_ pending: [String: Int64]) -> Int64 { pending.values.reduce(0, +) }

    static func fileSize(_ path: String) -> Int64? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
    }
}

/// A mutual exclusion for async code (a pass may await for minutes; no thread is blocked).
final class AsyncLock: Sendable {
    private let state = Mutex<(locked: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func withLock<T: Sendable>(_ body: @Sendable () async -> T) async -> T {
        await acquire()
        let value = await body()
        release()
        return value
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { s -> Bool in
                if !s.locked { s.locked = true; return true }
                s.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty { s.locked = false; return nil }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }
}
