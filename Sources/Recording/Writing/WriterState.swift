import SSHCertificates

/// The writer's mutable state, reached only under its lock.
///
/// `buffer` holds, in order, sealed records not yet written (0..<sealedEnd) and then at most one
/// open data record still collecting bytes. Bytes are copied once, from the caller into `buffer`,
/// and leave by pwrite straight from it.
struct WriterState {
    struct OpenRecord {
        var stream: RecordStream
        var start: Int
        var time: UInt64
    }

    let file: RecordingFile
    let syncer = BackgroundSync()
    var buffer: [UInt8] = []
    var sealedEnd = 0
    var openRecord: OpenRecord?
    var sequence: UInt64 = 0
    var chainHash = FrameLayout.initialChainHash()
    var totals = StreamTotals()
    var lastTime: UInt64 = 0
    /// What is safely in the kernel: the state to fall back to when a write fails.
    var committed = CommitPoint(offset: 0, sequence: 0, chainHash: FrameLayout.initialChainHash(), totals: StreamTotals(), lastTime: 0)
    var failure: RecordingWriteError?
    var finished = false
    var unsynced = false
    var lastFlushTime: UInt64 = 0
    var lastCheckpointTime: UInt64 = 0
    var recordsSinceCheckpoint = 0
    var exitOutcome: ExitOutcome?
    /// The seek index, kept as records are sealed and saved at finish.
    var seekIndex = SeekIndexBuilder()

    init(file: RecordingFile, capacity: Int) {
        self.file = file
        buffer.reserveCapacity(capacity)
    }

    mutating func checkUsable(signer: SSHPrivateKey) throws(RecordingWriteError) {
        if let failure { throw .poisoned(first: failure) }
        if finished { throw .alreadyFinished(path: file.path) }
        if let late = syncer.failure {
            // A background fdatasync failed since the last call: that failure ends the session now.
            fail(late, signer: signer)
            throw late
        }
    }

    /// Adds `bytes` to the open record of `stream` or starts a new one. Bytes join the open record
    /// only when they arrive within the coalescing window and fit whole, so one append of up to
    /// `maxRecordPayload` bytes never spans two records. Returns how many bytes were taken.
    mutating func appendData(stream: RecordStream, time: UInt64, bytes: UnsafeRawBufferPointer,
                             window: UInt64, maxPayload: Int) -> Int {
        if let open = openRecord {
            let size = buffer.count - open.start - FrameLayout.headSize
            if open.stream == stream, time <= open.time &+ window, size + bytes.count <= maxPayload {
                copyIn(bytes, count: bytes.count)
                return bytes.count
            }
            sealOpenRecord()
        }
        let recordTime = max(time, lastTime)
        lastTime = recordTime
        openRecord = OpenRecord(stream: stream, start: buffer.count, time: recordTime)
        buffer.append(contentsOf: repeatElement(0, count: FrameLayout.headSize))
        let taken = min(bytes.count, maxPayload)
        copyIn(bytes, count: taken)
        return taken
    }

    private mutating func copyIn(_ bytes: UnsafeRawBufferPointer, count: Int) {
        guard count > 0 else { return }
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
    }

    /// Fills in the open record's head and digest and extends the chain over it.
    mutating func sealOpenRecord() {
        guard let open = openRecord else { return }
        openRecord = nil
        let payloadLength = buffer.count - open.start - FrameLayout.headSize
        let head = FrameHead(payloadLength: payloadLength, typeByte: open.stream.recordType.rawValue,
                             sequence: sequence, timeMicros: open.time)
        let digest = buffer.withUnsafeMutableBytes { raw -> [UInt8] in
            head.encode(into: raw.baseAddress! + open.start)
            return FrameLayout.payloadDigest(UnsafeRawBufferPointer(rebasing: raw[(open.start + FrameLayout.headSize)...]))
        }
        buffer.append(contentsOf: digest)
        if sequence > 0 {
            buffer.withUnsafeBytes { raw in
                let payload = UnsafeRawBufferPointer(rebasing: raw[(open.start + FrameLayout.headSize)..<(open.start + FrameLayout.headSize + payloadLength)])
                seekIndex.add(record: sequence, offset: committed.offset + UInt64(open.start), time: open.time,
                              output: open.stream == .stdin ? nil : payload)
            }
        }
        finishRecord(start: open.start)
        totals[open.stream] += UInt64(payloadLength)
    }

    /// Appends a complete non-data record, sealing the open data record first.
    mutating func appendWholeRecord(_ type: RecordType, time: UInt64, payload: [UInt8]) {
        sealOpenRecord()
        let recordTime = max(time, lastTime)
        lastTime = recordTime
        let start = buffer.count
        FrameEncoder.append(type: type, sequence: sequence, time: recordTime, payload: payload, to: &buffer)
        if sequence > 0 {
            seekIndex.add(record: sequence, offset: committed.offset + UInt64(start), time: recordTime,
                          marker: type == .marker ? String(decoding: payload, as: UTF8.self) : nil)
        }
        finishRecord(start: start)
    }

    private mutating func finishRecord(start: Int) {
        chainHash = buffer.withUnsafeBytes { raw in
            FrameLayout.nextChainHash(previous: chainHash, frame: UnsafeRawBufferPointer(rebasing: raw[start...]))
        }
        sequence += 1
        recordsSinceCheckpoint += 1
        sealedEnd = buffer.count
    }

    /// Signs the chain so far into a checkpoint record.
    mutating func appendCheckpoint(time: UInt64, signer: SSHPrivateKey) throws(RecordingWriteError) {
        sealOpenRecord()
        let recordTime = max(time, lastTime)
        do {
            let payload = try CheckpointPayload.make(sequence: sequence, time: recordTime, totals: totals, chainHash: chainHash, signer: signer)
            appendWholeRecord(.checkpoint, time: recordTime, payload: payload.encoded())
        } catch {
            let failure = RecordingWriteError.signingFailed(path: file.path, reason: "\(error)")
            self.failure = failure
            throw failure
        }
        lastCheckpointTime = recordTime
        recordsSinceCheckpoint = 0
    }

    /// pwrites the sealed bytes. On failure: cuts the file back to the last good write, tries to
    /// leave a signed recorder-failure trailer there (best effort: the disk may be full), and
    /// poisons the writer.
    mutating func writeOut(signer: SSHPrivateKey) throws(RecordingWriteError) {
        guard sealedEnd > 0 else { return }
        do throws(RecordingWriteError) {
            let end = sealedEnd, offset = committed.offset
            try withRawBytes(buffer) { (raw) throws(RecordingWriteError) in
                try file.write(UnsafeRawBufferPointer(rebasing: raw[0..<end]), at: offset)
            }
        } catch {
            fail(error, signer: signer)
            throw error
        }
        buffer.removeSubrange(0..<sealedEnd)
        committed = CommitPoint(offset: committed.offset + UInt64(sealedEnd), sequence: sequence,
                                chainHash: chainHash, totals: totals, lastTime: lastTime)
        if var open = openRecord { open.start -= sealedEnd; openRecord = open }
        sealedEnd = 0
        unsynced = true
    }

    /// Queues an fdatasync of what was written (the periodic flush).
    mutating func syncInBackground() {
        guard unsynced else { return }
        syncer.request(file)
        unsynced = false
    }

    /// fdatasync now, after any queued background sync (header and trailer).
    mutating func sync(signer: SSHPrivateKey) throws(RecordingWriteError) {
        if let late = syncer.drain(), failure == nil {
            fail(late, signer: signer)
            throw late
        }
        guard unsynced else { return }
        do throws(RecordingWriteError) { try file.sync() } catch {
            fail(error, signer: signer)
            throw error
        }
        unsynced = false
    }

    /// Records the first failure and leaves the file ending in a clean place.
    mutating func fail(_ error: RecordingWriteError, signer: SSHPrivateKey) {
        guard failure == nil else { return }
        failure = error
        guard file.truncate(to: committed.offset) else { return }
        let point = committed
        guard let trailer = try? TrailerPayload.make(sequence: point.sequence, time: point.lastTime, reason: .recorderFailure,
                                                     totals: point.totals, chainHash: point.chainHash, signer: signer) else { return }
        let frame = FrameEncoder.frame(type: .trailer, sequence: point.sequence, time: point.lastTime, payload: trailer.encoded())
        do throws(RecordingWriteError) {
            try withRawBytes(frame) { (raw) throws(RecordingWriteError) in try file.write(raw, at: point.offset) }
            try file.sync()
        } catch {
            file.truncate(to: point.offset)
        }
    }
}

struct CommitPoint {
    var offset: UInt64
    var sequence: UInt64
    var chainHash: [UInt8]
    var totals: StreamTotals
    var lastTime: UInt64
}
