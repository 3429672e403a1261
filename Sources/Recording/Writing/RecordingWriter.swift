import SSHCertificates
import Synchronization

/// Records one session channel into one file, as the bytes cross.
///
/// Two halves (docs/recording-format.md, "Durability and pipelining"): on the caller's thread an
/// append only copies the bytes into the current batch and frames them (`BatchBuilder`); sealed
/// batches go to the writer's own serial queue (`SealingPipeline`), which hashes, chains, signs
/// checkpoints and pwrites them (`BatchSealer`), and an fdatasync queue behind it
/// (`BackgroundSync`). So the relay pays a memcpy per byte, not a SHA-256 pass and a write.
///
/// The relay owns the writer and calls it from one thread at a time (it may move between
/// threads: the state sits behind an uncontended lock, so the type is honestly `Sendable`). The
/// owner calls `flushIfDue()` at least every 250 ms, and every append checks the same deadlines:
/// a batch is handed over at least every `flushInterval` (and whenever `writeThreshold` bytes are
/// pending), written at once and fdatasynced behind, so a kill -9 loses at most the last second.
///
/// Fail closed: a failed write, sync or signature is thrown as a `RecordingWriteError` by the
/// next call (at the latest the next `flushIfDue()`, ≤ 250 ms later, or the append that finds
/// the pipeline full); from then on every call throws `.poisoned(first:)` and the session must end.
public final class RecordingWriter: Sendable {
    public struct Options: Sendable {
        /// Hand the pending batch to the sealer (written, then fdatasynced) at least this often.
        /// With the owner polling every 250 ms, 0.5 s keeps the worst case under one second.
        public var flushInterval: Double = 0.5
        /// Signed checkpoint at least this often while anything new was recorded.
        public var checkpointInterval: Double = 5.0
        /// Chunks of one stream within this window of the record's first byte share a record:
        /// bulk output becomes few large records, timing stays within 10 ms.
        public var coalesceWindow: Double = 0.010
        /// Largest payload of one data record. One append up to this size is exactly one record.
        public var maxRecordPayload: Int = 256 * 1024
        /// Pending bytes that make a batch before the flush deadline (bounds memory per session).
        public var writeThreshold: Int = 1 << 20
        /// Batches queued for sealing before an append waits for the sealer: memory per session
        /// stays under about this many times `writeThreshold + maxRecordPayload`.
        public var maxBatchesInFlight: Int = 4
        /// Seal and write on the appending thread, as the writer did before it was pipelined.
        /// Only for comparisons (bench/recording); a failure then surfaces at the same call.
        public var sealOnCallerThread: Bool = false
        /// On finish, write the summary sidecar and append to the directory's session index.
        public var updateIndex: Bool = true
        /// When recording fails, record a one-line notice on stderr before the signed failure
        /// trailer (space for both is reserved on disk ahead of time), and offer it as
        /// `failureNotice` for the relay to send: the agent is told why, and its stderr still
        /// equals the recorded stderr byte for byte. For session channels.
        public var recordsFailureNotice: Bool = false

        public init() {}
    }

    /// The relay side's state.
    private struct FrontState {
        var builder: BatchBuilder
        /// The failure already thrown to the owner: everything after it is `.poisoned`.
        var failure: RecordingWriteError?
        var finished = false
        var lastFlushTime: UInt64 = 0
        var lastCheckpointTime: UInt64 = 0
        /// Batches handed over since the last one that asked for an fdatasync.
        var unsyncedBatches = false
        var exitOutcome: ExitOutcome?
        /// Recorded payload bytes appended so far, on every stream, plus one per mask record: the position an append
        /// returns and the sealer publishes once that far is in the file.
        var appended: UInt64 = 0
    }

    public let path: String
    public let recordingID: String
    public let header: SessionHeader
    private let options: Options
    private let clock: @Sendable () -> UInt64
    private let startNanos: UInt64
    private let flushMicros: UInt64
    private let checkpointMicros: UInt64
    private let windowMicros: UInt64
    private let pipeline: SealingPipeline
    private let state: Mutex<FrontState>

    /// Creates `<directory>/<session>-ch<channel>.ghrec` (0600, exclusive), writes and syncs the
    /// header and the directory. Throws here, before the session starts, when the directory is
    /// not writable or the disk is full: no recording, no session.
    public init(directory: String, header: SessionHeader, signer: SSHPrivateKey,
                clock: @escaping @Sendable () -> UInt64 = MonotonicClock.nanoseconds,
                options: Options = Options(), onWritten: (@Sendable () -> Void)? = nil) throws(RecordingWriteError) {
        guard RecordingFiles.isValidSessionID(header.sessionID), header.channel >= 0 else { throw .invalidSessionID(header.sessionID) }
        let recordingID = header.recordingID
        let path = RecordingFiles.path(directory: directory, recordingID: recordingID)
        let file = try RecordingFile(creating: path)
        self.path = path
        self.recordingID = recordingID
        self.header = header
        self.options = options
        self.clock = clock
        self.startNanos = clock()
        self.flushMicros = UInt64(max(0, options.flushInterval) * 1_000_000)
        self.checkpointMicros = UInt64(max(0, options.checkpointInterval) * 1_000_000)
        self.windowMicros = UInt64(max(0, options.coalesceWindow) * 1_000_000)
        let bufferCapacity = options.writeThreshold + options.maxRecordPayload + 4096
        // The header is sealed, written and synced right here, before the session may start.
        var builder = BatchBuilder(buffer: [])
        builder.appendPreamble()
        builder.appendWholeRecord(.header, time: 0, payload: HeaderRecord(session: header, recordingKey: signer.publicKey.openSSHLine).encoded())
        let first = builder.take(replacingWith: [])
        var sealer = BatchSealer(file: file, signer: signer, recordsFailureNotice: options.recordsFailureNotice)
        var batch = RecordBatch(bytes: first.bytes, slots: first.slots)
        do throws(RecordingWriteError) {
            try sealer.process(&batch)
            try sealer.syncNow()
            try RecordingFile.syncDirectory(directory)
        } catch {
            file.close()
            unlinkQuietly(path)
            throw error
        }
        builder.recordsSinceCheckpoint = 0
        self.pipeline = SealingPipeline(sealer: sealer, maxInFlight: options.maxBatchesInFlight, bufferCapacity: bufferCapacity,
                                        inline: options.sealOnCallerThread, onWritten: onWritten)
        builder.startBatch(in: pipeline.takeBuffer())
        self.state = Mutex(FrontState(builder: builder))
    }

    deinit {
        // Dropped without finish(): what was handed over is written; the file is left as a crash
        // would leave it, for recovery to close.
        pipeline.withDrainedSealer { $0.abandon() }
    }

    // MARK: Recording

    /// Records bytes that are about to cross on `stream`. Stdin is not kept when the header says
    /// input is not recorded (the scope's policy).
    ///
    /// Returns the position these bytes end at: they are in the file once `writtenPosition`
    /// reaches it, and only then may they be passed on (a relay that waits for that never shows
    /// the other side a byte the recording lacks, whether the disk fills or the process dies).
    @discardableResult
    public func append(_ stream: RecordStream, _ bytes: UnsafeRawBufferPointer) throws(RecordingWriteError) -> UInt64 {
        let now = elapsedMicros()
        return try state.withLock { (s) throws(RecordingWriteError) -> UInt64 in
            try checkUsable(&s)
            if stream == .stdin && !header.inputRecorded { return s.appended }
            s.appended += UInt64(bytes.count)
            var remaining = bytes
            while !remaining.isEmpty {
                let taken = s.builder.appendData(stream: stream, time: now, bytes: remaining, window: windowMicros, maxPayload: options.maxRecordPayload)
                remaining = UnsafeRawBufferPointer(rebasing: remaining[taken...])
            }
            if s.builder.byteCount >= options.writeThreshold {
                handOver(&s)
            }
            flushIfDue(&s, now: now)
            return s.appended
        }
    }

    @discardableResult
    public func append(_ stream: RecordStream, _ bytes: some Collection<UInt8>) throws(RecordingWriteError) -> UInt64 {
        let result: Result<UInt64, RecordingWriteError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(RecordingWriteError) -> UInt64 in try append(stream, UnsafeRawBufferPointer(buffer)) }
        }
        if let result { return try result.get() }
        return try withRawBytes(Array(bytes)) { (raw) throws(RecordingWriteError) -> UInt64 in try append(stream, raw) }
    }

    /// How far the recorded bytes are in the file (pwritten; the fdatasync follows within the
    /// flush interval). Compare with the positions `append` returned.
    public var writtenPosition: UInt64 { pipeline.writtenPosition }

    /// Hands the pending batch to the sealer now if the sealer has nothing to do, so bytes that
    /// wait to be released reach the file at once; under load batches grow while the sealer
    /// works, so this costs no more writes than the load needs. Also surfaces a late failure.
    public func handOverIfIdle() throws(RecordingWriteError) {
        guard pipeline.isIdle else { return }
        try state.withLock { (s) throws(RecordingWriteError) in
            try checkUsable(&s)
            if !s.builder.isEmpty || s.builder.hasOpenRecord { handOver(&s) }
        }
    }

    public func resize(cols: Int, rows: Int) throws(RecordingWriteError) {
        let size = TerminalSize(columns: UInt16(clamping: cols), rows: UInt16(clamping: rows))
        try control(.resize, size.encoded())
    }

    /// A point on the timeline (policy decision, command start, note): the player's `]` jumps to it.
    public func marker(_ label: String) throws(RecordingWriteError) {
        try control(.marker, Array(label.utf8))
    }

    /// Records that `mask.length` bytes of `mask.stream` from `mask.offset` reach the agent masked.
    /// Returns a position, like `append`: the masked bytes may go to the agent only once the
    /// record is in the file, so a mask record is never missing for what the agent saw. (Each mask
    /// moves the position by one, so the batch that holds it must be written to pass it.)
    @discardableResult
    public func mask(_ mask: RecordedMask) throws(RecordingWriteError) -> UInt64 {
        let now = elapsedMicros()
        return try state.withLock { (s) throws(RecordingWriteError) -> UInt64 in
            try checkUsable(&s)
            s.builder.appendWholeRecord(.mask, time: now, payload: mask.encoded())
            s.appended += 1
            flushIfDue(&s, now: now)
            return s.appended
        }
    }

    public func exit(status: UInt32) throws(RecordingWriteError) { try exit(.status(status)) }

    /// `signal` is the SSH signal name without "SIG" ("TERM", "KILL").
    public func exit(signal: String, coreDumped: Bool = false) throws(RecordingWriteError) {
        try exit(.signal(name: signal, coreDumped: coreDumped))
    }

    private func exit(_ outcome: ExitOutcome) throws(RecordingWriteError) {
        try control(outcome.recordType, outcome.encoded())
        state.withLock { $0.exitOutcome = outcome }
    }

    /// Hands over what is due: a checkpoint every `checkpointInterval`, a batch to write and
    /// fdatasync every `flushInterval`. Call at least every 250 ms, also while the session is
    /// idle: this is also where a failure on the sealing queue reaches the relay.
    public func flushIfDue() throws(RecordingWriteError) {
        let now = elapsedMicros()
        try state.withLock { (s) throws(RecordingWriteError) in
            try checkUsable(&s)
            flushIfDue(&s, now: now)
        }
    }

    /// Seals everything, writes the signed trailer, fdatasyncs and closes; then records the
    /// summary in the directory's session index.
    @discardableResult
    public func finish() throws(RecordingWriteError) -> RecordingOutcome {
        let now = elapsedMicros()
        let summary = try state.withLock { (s) throws(RecordingWriteError) -> RecordingSummary in
            try checkUsable(&s)
            let trailer = s.builder.reserveSignedRecord(time: now)
            handOver(&s, seal: .trailer(sequence: trailer.sequence, time: trailer.time), sync: true)
            s.finished = true
            let sealed = pipeline.withDrainedSealer { sealer in
                (failure: sealer.failure, size: sealer.committed.offset, totals: sealer.totals, hash: sealer.chainHash)
            }
            if let failure = sealed.failure {
                s.failure = failure
                throw failure
            }
            return RecordingSummary(header: header, recordingID: recordingID, end: .normal, durationMicros: trailer.time,
                                    exit: s.exitOutcome, totals: sealed.totals, recordCount: trailer.sequence + 1,
                                    finalHash: hexString(sealed.hash), fileSize: sealed.size)
        }
        var indexError: String?
        if options.updateIndex {
            do { try SessionIndex.record(summary, directory: RecordingFiles.directory(of: path)) } catch {
                indexError = "\(error)"
            }
        }
        return RecordingOutcome(path: path, summary: summary, indexError: indexError)
    }

    /// After a failure: the notice on stderr that the recording holds (nil when it could not be
    /// written, or the writer does not record one). Waits for the sealer.
    public var failureNotice: [UInt8]? { pipeline.withDrainedSealer { $0.failureNotice } }

    /// The first failure, if any. Once set, every call throws.
    public var failure: RecordingWriteError? { state.withLock { $0.failure } ?? pipeline.failure }

    /// Waits until everything handed over so far is sealed and written (tests read the file).
    func waitUntilWritten() { pipeline.drain() }

    // MARK: Internals

    private func elapsedMicros() -> UInt64 {
        let now = clock()
        return now >= startNanos ? (now - startNanos) / 1_000 : 0
    }

    private func checkUsable(_ s: inout FrontState) throws(RecordingWriteError) {
        if let failure = s.failure { throw .poisoned(first: failure) }
        if s.finished { throw .alreadyFinished(path: path) }
        if let late = pipeline.failure {
            // Sealing, writing or a background fdatasync failed since the last call: that ends
            // the session now, and the file is left ending in a clean place.
            pipeline.failClosed(late)
            s.failure = late
            throw late
        }
    }

    private func control(_ type: RecordType, _ payload: [UInt8]) throws(RecordingWriteError) {
        let now = elapsedMicros()
        try state.withLock { (s) throws(RecordingWriteError) in
            try checkUsable(&s)
            s.builder.appendWholeRecord(type, time: now, payload: payload)
            flushIfDue(&s, now: now)
        }
    }

    private func flushIfDue(_ s: inout FrontState, now: UInt64) {
        if s.builder.recordsSinceCheckpoint > 0 || s.builder.hasOpenRecord, now &- s.lastCheckpointTime >= checkpointMicros, now >= s.lastCheckpointTime {
            // The checkpoint ends the batch: the sealer signs the chain through everything before it.
            let checkpoint = s.builder.reserveSignedRecord(time: now)
            handOver(&s, seal: .checkpoint(sequence: checkpoint.sequence, time: checkpoint.time))
            s.lastCheckpointTime = checkpoint.time
            s.builder.recordsSinceCheckpoint = 0
        }
        if now >= s.lastFlushTime, now - s.lastFlushTime >= flushMicros {
            if !s.builder.isEmpty || s.builder.hasOpenRecord || s.unsyncedBatches {
                handOver(&s, sync: true)
            }
            s.lastFlushTime = now
        }
    }

    /// Seals the open record and gives the batch to the sealing queue.
    private func handOver(_ s: inout FrontState, seal: RecordBatch.Seal = .none, sync: Bool = false) {
        s.builder.sealOpenRecord()
        let (bytes, slots) = s.builder.take(replacingWith: pipeline.takeBuffer())
        // `consume`: no reference to the batch's bytes stays here, so the sealer owns them uniquely.
        pipeline.submit(RecordBatch(bytes: consume bytes, slots: consume slots, seal: seal, sync: sync, through: s.appended))
        s.unsyncedBatches = !sync
    }
}

/// What `finish()` hands back for the audit event and the session end message.
public struct RecordingOutcome: Sendable, Equatable {
    public var path: String
    public var summary: RecordingSummary
    /// Set when the recording finished but the session index could not be updated (the index
    /// can be rebuilt from the recordings; the recording itself is complete).
    public var indexError: String?

    public var recordingID: String { summary.recordingID }
    /// Hex SHA-256 chain hash through the trailer.
    public var finalHash: String { summary.finalHash }
    public var totals: StreamTotals { summary.totals }
    public var recordCount: UInt64 { summary.recordCount }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func unlinkQuietly(_ path: String) {
    _ = path.withCString { unlink($0) }
}
