import Crypto
import SSHCertificates
#if canImport(Glibc)
import Glibc
#endif

/// The writer's back end, run on its own serial queue (`SealingPipeline`): fills in each record's
/// SHA-256 payload digest, extends the hash chain, signs checkpoints and the trailer, keeps the
/// seek index and pwrites the batch. This is the per-byte work the relay thread no longer does.
struct BatchSealer {
    let file: RecordingFile
    let signer: SSHPrivateKey
    let syncer = BackgroundSync()
    private(set) var chainHash = FrameLayout.initialChainHash()
    private(set) var totals = StreamTotals()
    /// What is safely in the kernel: the state to fall back to when a write fails.
    private(set) var committed = CommitPoint(offset: 0, sequence: 0, chainHash: FrameLayout.initialChainHash(), totals: StreamTotals(), lastTime: 0)
    private(set) var failure: RecordingWriteError?
    private(set) var closed = false
    private var sequence: UInt64 = 0
    private var lastTime: UInt64 = 0
    private var unsynced = false
    private var seekIndex = SeekIndexBuilder()
    /// Record a one-line notice on stderr when the recording fails, so the session's last words
    /// to the agent are in the recording too (session channels; forwards carry no stderr).
    let recordsFailureNotice: Bool
    /// The notice recorded at the failure, if it could be written: the relay sends exactly these
    /// bytes, so the agent's stderr still equals the recorded stderr.
    private(set) var failureNotice: [UInt8]?
    /// Disk blocks reserved past the written end, so the failure's notice and signed trailer
    /// always fit, even on a full disk.
    private var reservedThrough: UInt64 = 0
    /// The relay's byte position through which batches are in the file (`RecordBatch.through`).
    private(set) var writtenThrough: UInt64 = 0
    static let reserve = 64 * 1024

    init(file: RecordingFile, signer: SSHPrivateKey, recordsFailureNotice: Bool = false) {
        self.file = file
        self.signer = signer
        self.recordsFailureNotice = recordsFailureNotice
    }

    /// Seals and writes one batch. After a failure every later batch is dropped: the file already
    /// ends in a clean place (see `fail`).
    mutating func process(_ batch: inout RecordBatch) throws(RecordingWriteError) {
        if let failure { throw failure }
        if let late = syncer.failure {
            fail(late)
            throw late
        }
        batch.bytes.withUnsafeMutableBytes { raw in
            for slot in batch.slots { seal(slot, in: raw) }
        }
        let (totals, chainHash, signer) = (self.totals, self.chainHash, self.signer)
        switch batch.seal {
        case .none: break
        case .checkpoint(let sequence, let time):
            try appendSigned(to: &batch.bytes, type: .checkpoint, sequence: sequence, time: time) {
                try CheckpointPayload.make(sequence: sequence, time: time, totals: totals, chainHash: chainHash, signer: signer).encoded()
            }
        case .trailer(let sequence, let time):
            try appendSigned(to: &batch.bytes, type: .trailer, sequence: sequence, time: time) {
                try TrailerPayload.make(sequence: sequence, time: time, reason: .normal, totals: totals, chainHash: chainHash, signer: signer).encoded()
            }
        }
        try writeOut(batch.bytes)
        writtenThrough = batch.through
        try keepReserve()
        if case .trailer = batch.seal {
            try syncNow()
            closed = true
            file.close()
            seekIndex.finish(recordingSize: committed.offset).save(nextTo: file.path)
        } else if batch.sync, unsynced {
            syncer.request(file)
            unsynced = false
        }
    }

    /// Fills in the payload digest of the record at `slot`, extends the chain over it and notes
    /// it in the seek index. The digest doubles as the chain link: each payload byte is hashed once.
    private mutating func seal(_ slot: RecordBatch.Slot, in raw: UnsafeMutableRawBufferPointer) {
        let payload = UnsafeRawBufferPointer(rebasing: raw[slot.payloadRange])
        let digest = SHA256.hash(data: payload)
        digest.withUnsafeBytes { source in
            UnsafeMutableRawBufferPointer(rebasing: raw[slot.digestRange]).copyMemory(from: source)
        }
        chainHash = FrameLayout.nextChainHash(previous: chainHash, frame: UnsafeRawBufferPointer(rebasing: raw[slot.frameRange]))
        let offset = committed.offset + UInt64(slot.start)
        if sequence > 0 {
            switch slot.type {
            case .stdout, .stderr: seekIndex.add(record: sequence, offset: offset, time: slot.time, output: payload)
            case .marker: seekIndex.add(record: sequence, offset: offset, time: slot.time, marker: String(decoding: payload, as: UTF8.self))
            default: seekIndex.add(record: sequence, offset: offset, time: slot.time)
            }
        }
        if let stream = slot.type.stream { totals[stream] += UInt64(slot.payloadLength) }
        sequence += 1
        lastTime = slot.time
    }

    /// Signs the chain so far into a checkpoint or trailer and appends it to the batch.
    private mutating func appendSigned(to bytes: inout [UInt8], type: RecordType, sequence reserved: UInt64, time: UInt64,
                                       payload make: () throws -> [UInt8]) throws(RecordingWriteError) {
        precondition(reserved == sequence, "signed record out of sequence")
        let payload: [UInt8]
        do { payload = try make() } catch {
            let failure = RecordingWriteError.signingFailed(path: file.path, reason: "\(error)")
            fail(failure)
            throw failure
        }
        let start = bytes.count
        FrameEncoder.append(type: type, sequence: reserved, time: time, payload: payload, to: &bytes)
        bytes.withUnsafeBytes { raw in
            chainHash = FrameLayout.nextChainHash(previous: chainHash, frame: UnsafeRawBufferPointer(rebasing: raw[start...]))
        }
        seekIndex.add(record: reserved, offset: committed.offset + UInt64(start), time: time)
        sequence += 1
        lastTime = time
    }

    /// pwrites a sealed batch at the end of the file. On failure: cuts the file back to the last
    /// good write, leaves a signed recorder-failure trailer there if it can, and stops.
    private mutating func writeOut(_ bytes: [UInt8]) throws(RecordingWriteError) {
        guard !bytes.isEmpty else { return }
        do throws(RecordingWriteError) {
            let offset = committed.offset
            try withRawBytes(bytes) { (raw) throws(RecordingWriteError) in try file.write(raw, at: offset) }
        } catch {
            fail(error)
            throw error
        }
        committed = CommitPoint(offset: committed.offset + UInt64(bytes.count), sequence: sequence, chainHash: chainHash,
                                totals: totals, lastTime: lastTime)
        unsynced = true
    }

    /// Keeps at least half of `reserve` bytes of allocated space past the end. When the disk
    /// cannot give more, the recording fails now, while what is left of the reserve still holds
    /// the notice and the trailer.
    private mutating func keepReserve() throws(RecordingWriteError) {
        guard !closed, committed.offset + UInt64(Self.reserve / 2) > reservedThrough else { return }
        let code = file.reserve(at: committed.offset, length: Self.reserve)
        if code == 0 {
            reservedThrough = committed.offset + UInt64(Self.reserve)
        } else if code == ENOSPC || code == EDQUOT {
            let error = RecordingWriteError.writeFailed(path: file.path, errno: code, offset: committed.offset)
            fail(error)
            throw error
        }
        // Other errors (a filesystem that cannot reserve): the notice stays best effort.
    }

    /// fdatasync now, after any queued background sync (the header and the trailer).
    mutating func syncNow() throws(RecordingWriteError) {
        if let late = syncer.drain(), failure == nil {
            fail(late)
            throw late
        }
        guard unsynced else { return }
        do throws(RecordingWriteError) { try file.sync() } catch {
            fail(error)
            throw error
        }
        unsynced = false
    }

    /// Records the first failure and leaves the file ending in a clean place: cut back to the
    /// last complete write, then (best effort: the disk may be full) a signed reason-2 trailer.
    mutating func fail(_ error: RecordingWriteError) {
        guard failure == nil else { return }
        failure = error
        guard !closed, file.truncate(to: committed.offset) else { return }
        let point = committed
        var bytes: [UInt8] = []
        var sequence = point.sequence, chain = point.chainHash, totals = point.totals
        var notice: [UInt8]?
        if recordsFailureNotice {
            let text = Array("gatehouse: the session can no longer be recorded (\(error)) and was ended.\n".utf8)
            FrameEncoder.append(type: .stderr, sequence: sequence, time: point.lastTime, payload: text, to: &bytes)
            bytes.withUnsafeBytes { chain = FrameLayout.nextChainHash(previous: chain, frame: $0) }
            totals[.stderr] += UInt64(text.count)
            sequence += 1
            notice = text
        }
        guard let trailer = try? TrailerPayload.make(sequence: sequence, time: point.lastTime, reason: .recorderFailure,
                                                     totals: totals, chainHash: chain, signer: signer) else { return }
        FrameEncoder.append(type: .trailer, sequence: sequence, time: point.lastTime, payload: trailer.encoded(), to: &bytes)
        do throws(RecordingWriteError) {
            try withRawBytes(bytes) { (raw) throws(RecordingWriteError) in try file.write(raw, at: point.offset) }
            try file.sync()
            failureNotice = notice
        } catch {
            file.truncate(to: point.offset)
        }
    }

    /// Dropped without finish: leave the file as a crash would, for recovery to close.
    mutating func abandon() {
        _ = syncer.drain()
        closed = true
        file.close()
    }
}

/// The last state known to be in the kernel.
struct CommitPoint {
    var offset: UInt64
    var sequence: UInt64
    var chainHash: [UInt8]
    var totals: StreamTotals
    var lastTime: UInt64
}
