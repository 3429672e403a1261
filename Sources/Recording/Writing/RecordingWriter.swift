import SSHCertificates
import Synchronization

/// Records one session channel into one file, as the bytes cross.
///
/// The relay owns it and calls it from one thread at a time (it may move between threads: the
/// state sits behind an uncontended lock, so the type is honestly `Sendable`). The owner calls
/// `flushIfDue()` at least every 250 ms, and every append checks the same deadlines: sealed bytes
/// are pwritten on the caller's thread within `flushInterval` (+ the polling gap), so a kill -9
/// loses at most the last second; the fdatasync that follows runs on a background queue (see
/// `BackgroundSync`) so the relay does not wait for the disk, and its failure ends the session
/// at the next call.
///
/// Fail closed: the first error is thrown as a `RecordingWriteError`; from then on every call
/// throws `.poisoned(first:)` and the session must end.
public final class RecordingWriter: Sendable {
    public struct Options: Sendable {
        /// Seal, write and fdatasync at least this often. With the owner polling every 250 ms,
        /// 0.5 s keeps the worst case under one second.
        public var flushInterval: Double = 0.5
        /// Signed checkpoint at least this often while anything new was recorded.
        public var checkpointInterval: Double = 5.0
        /// Chunks of one stream within this window of the record's first byte share a record:
        /// bulk output becomes few large records, timing stays within 10 ms.
        public var coalesceWindow: Double = 0.010
        /// Largest payload of one data record. One append up to this size is exactly one record.
        public var maxRecordPayload: Int = 256 * 1024
        /// Sealed bytes buffered before a pwrite between flushes (bounds memory per session).
        public var writeThreshold: Int = 1 << 20
        /// On finish, write the summary sidecar and append to the directory's session index.
        public var updateIndex: Bool = true

        public init() {}
    }

    public let path: String
    public let recordingID: String
    public let header: SessionHeader
    private let signer: SSHPrivateKey
    private let options: Options
    private let clock: @Sendable () -> UInt64
    private let startNanos: UInt64
    private let flushMicros: UInt64
    private let checkpointMicros: UInt64
    private let windowMicros: UInt64
    private let state: Mutex<WriterState>

    /// Creates `<directory>/<session>-ch<channel>.ghrec` (0600, exclusive), writes and syncs the
    /// header and the directory. Throws here, before the session starts, when the directory is
    /// not writable or the disk is full: no recording, no session.
    public init(directory: String, header: SessionHeader, signer: SSHPrivateKey,
                clock: @escaping @Sendable () -> UInt64 = MonotonicClock.nanoseconds,
                options: Options = Options()) throws(RecordingWriteError) {
        guard RecordingFiles.isValidSessionID(header.sessionID), header.channel >= 0 else { throw .invalidSessionID(header.sessionID) }
        let recordingID = header.recordingID
        let path = RecordingFiles.path(directory: directory, recordingID: recordingID)
        let file = try RecordingFile(creating: path)
        self.path = path
        self.recordingID = recordingID
        self.header = header
        self.signer = signer
        self.options = options
        self.clock = clock
        self.startNanos = clock()
        self.flushMicros = UInt64(max(0, options.flushInterval) * 1_000_000)
        self.checkpointMicros = UInt64(max(0, options.checkpointInterval) * 1_000_000)
        self.windowMicros = UInt64(max(0, options.coalesceWindow) * 1_000_000)
        var initial = WriterState(file: file, capacity: options.writeThreshold + options.maxRecordPayload + 4096)
        let headerPayload = HeaderRecord(session: header, recordingKey: signer.publicKey.openSSHLine).encoded()
        initial.buffer.append(contentsOf: FrameLayout.magic)
        initial.sealedEnd = initial.buffer.count
        initial.appendWholeRecord(.header, time: 0, payload: headerPayload)
        do throws(RecordingWriteError) {
            try initial.writeOut(signer: signer)
            try initial.sync(signer: signer)
            try RecordingFile.syncDirectory(directory)
        } catch {
            file.close()
            unlinkQuietly(path)
            throw error
        }
        initial.recordsSinceCheckpoint = 0
        self.state = Mutex(initial)
    }

    deinit {
        // Dropped without finish(): leave the file as a crash would, for recovery to close.
        state.withLock { s in
            _ = s.syncer.drain()
            s.file.close()
        }
    }

    // MARK: Recording

    /// Records bytes that crossed on `stream`. Stdin is not kept when the header says input is
    /// not recorded (the scope's policy).
    public func append(_ stream: RecordStream, _ bytes: UnsafeRawBufferPointer) throws(RecordingWriteError) {
        let now = elapsedMicros()
        try state.withLock { (s) throws(RecordingWriteError) in
            try s.checkUsable(signer: signer)
            if stream == .stdin && !header.inputRecorded { return }
            var remaining = bytes
            while !remaining.isEmpty {
                let taken = s.appendData(stream: stream, time: now, bytes: remaining, window: windowMicros, maxPayload: options.maxRecordPayload)
                remaining = UnsafeRawBufferPointer(rebasing: remaining[taken...])
            }
            if s.buffer.count >= options.writeThreshold {
                s.sealOpenRecord()
                try s.writeOut(signer: signer)
            }
            try flushIfDue(&s, now: now)
        }
    }

    public func append(_ stream: RecordStream, _ bytes: some Collection<UInt8>) throws(RecordingWriteError) {
        let result: Result<Void, RecordingWriteError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(RecordingWriteError) in try append(stream, UnsafeRawBufferPointer(buffer)) }
        }
        if let result { return try result.get() }
        try withRawBytes(Array(bytes)) { (raw) throws(RecordingWriteError) in try append(stream, raw) }
    }

    public func resize(cols: Int, rows: Int) throws(RecordingWriteError) {
        let size = TerminalSize(columns: UInt16(clamping: cols), rows: UInt16(clamping: rows))
        try control(.resize, size.encoded())
    }

    /// A point on the timeline (policy decision, command start, note): the player's `]` jumps to it.
    public func marker(_ label: String) throws(RecordingWriteError) {
        try control(.marker, Array(label.utf8))
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

    /// Seals what is due: a checkpoint every `checkpointInterval`, write + fdatasync every
    /// `flushInterval`. Call at least every 250 ms, also while the session is idle.
    public func flushIfDue() throws(RecordingWriteError) {
        let now = elapsedMicros()
        try state.withLock { (s) throws(RecordingWriteError) in
            try s.checkUsable(signer: signer)
            try flushIfDue(&s, now: now)
        }
    }

    /// Seals everything, writes the signed trailer, fdatasyncs and closes; then records the
    /// summary in the directory's session index.
    @discardableResult
    public func finish() throws(RecordingWriteError) -> RecordingOutcome {
        let now = elapsedMicros()
        let summary = try state.withLock { (s) throws(RecordingWriteError) -> RecordingSummary in
            try s.checkUsable(signer: signer)
            s.sealOpenRecord()
            let time = max(now, s.lastTime)
            do {
                let trailer = try TrailerPayload.make(sequence: s.sequence, time: time, reason: .normal, totals: s.totals,
                                                      chainHash: s.chainHash, signer: signer)
                s.appendWholeRecord(.trailer, time: time, payload: trailer.encoded())
            } catch {
                let failure = RecordingWriteError.signingFailed(path: path, reason: "\(error)")
                s.fail(failure, signer: signer)
                throw failure
            }
            try s.writeOut(signer: signer)
            try s.sync(signer: signer)
            s.finished = true
            s.file.close()
            s.seekIndex.finish(recordingSize: s.committed.offset).save(nextTo: path)
            return RecordingSummary(header: header, recordingID: recordingID, end: .normal, durationMicros: s.lastTime,
                                    exit: s.exitOutcome, totals: s.totals, recordCount: s.sequence,
                                    finalHash: hexString(s.chainHash), fileSize: s.committed.offset)
        }
        var indexError: String?
        if options.updateIndex {
            do { try SessionIndex.record(summary, directory: RecordingFiles.directory(of: path)) } catch {
                indexError = "\(error)"
            }
        }
        return RecordingOutcome(path: path, summary: summary, indexError: indexError)
    }

    /// The first failure, if any. Once set, every call throws.
    public var failure: RecordingWriteError? { state.withLock { $0.failure } }

    // MARK: Internals

    private func elapsedMicros() -> UInt64 {
        let now = clock()
        return now >= startNanos ? (now - startNanos) / 1_000 : 0
    }

    private func control(_ type: RecordType, _ payload: [UInt8]) throws(RecordingWriteError) {
        let now = elapsedMicros()
        try state.withLock { (s) throws(RecordingWriteError) in
            try s.checkUsable(signer: signer)
            s.appendWholeRecord(type, time: now, payload: payload)
            try flushIfDue(&s, now: now)
        }
    }

    private func flushIfDue(_ s: inout WriterState, now: UInt64) throws(RecordingWriteError) {
        if s.recordsSinceCheckpoint > 0 || s.openRecord != nil, now &- s.lastCheckpointTime >= checkpointMicros, now >= s.lastCheckpointTime {
            try s.appendCheckpoint(time: now, signer: signer)
        }
        if now >= s.lastFlushTime, now - s.lastFlushTime >= flushMicros {
            s.sealOpenRecord()
            try s.writeOut(signer: signer)
            s.syncInBackground()
            s.lastFlushTime = now
        }
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
