import Dispatch
import Synchronization

/// Hands a writer's batches from the relay thread to one serial queue that seals and writes them,
/// so hashing and pwrite run beside the relay instead of inside it.
///
/// Bounded: at most `maxInFlight` batches are queued or being sealed; `submit` waits for a free
/// place, so a slow disk slows the relay (as a full pipe would) instead of growing memory, and a
/// failed write is known after at most that many more batches. A failure is published before
/// the batch's place is freed, so the relay's next call sees it.
final class SealingPipeline: Sendable {
    private let queue = DispatchQueue(label: "gatehouse.recording.sealer")
    private let places: DispatchSemaphore
    private let sealer: Mutex<BatchSealer>
    /// The first failure, readable without waiting for a batch being sealed.
    private let failureBox = Mutex<RecordingWriteError?>(nil)
    private let syncer: BackgroundSync
    /// One emptied batch buffer, kept for reuse so a busy session does not allocate (and fault
    /// in) a fresh megabyte per batch. Only one: while bulk output flows the relay fills one
    /// buffer as the sealer empties the other, and a session that goes idle keeps two, not
    /// `maxInFlight + 1`.
    private let spareBuffers = Mutex<[[UInt8]]>([])
    private let bufferCapacity: Int
    private let maxInFlight: Int
    private let inline: Bool
    /// The recorded-byte position through which everything is in the file (pwritten, perhaps
    /// not yet synced): bytes up to here may cross to the other side of the session.
    private let written = Atomic<UInt64>(0)
    /// Batches submitted and not yet sealed and written.
    private let inFlight = Atomic<Int>(0)
    /// Called on the sealing queue after each batch is written, so an owner waiting to release
    /// bytes wakes at once instead of at its next poll.
    private let onWritten: (@Sendable () -> Void)?

    /// `inline`: seal and write on the submitting thread instead (the writer before pipelining;
    /// kept so benchmarks can compare the two on the same code).
    init(sealer: BatchSealer, maxInFlight: Int, bufferCapacity: Int, inline: Bool = false, onWritten: (@Sendable () -> Void)? = nil) {
        self.inline = inline
        self.onWritten = onWritten
        self.syncer = sealer.syncer
        self.sealer = Mutex(sealer)
        self.maxInFlight = max(1, maxInFlight)
        self.places = DispatchSemaphore(value: self.maxInFlight)
        self.bufferCapacity = bufferCapacity
    }

    /// The first failure of the sealer or of a background fdatasync, if any.
    var failure: RecordingWriteError? { failureBox.withLock { $0 } ?? syncer.failure }

    var writtenPosition: UInt64 { written.load(ordering: .acquiring) }

    /// No batch is queued or being sealed: a new one would be written at once.
    var isIdle: Bool { inFlight.load(ordering: .relaxed) == 0 }

    /// Queues a batch; waits while `maxInFlight` batches are ahead of it. The batch moves to the
    /// queue through a handoff box so its buffer stays uniquely referenced: the sealer fills the
    /// digests in place, and a second reference would make Swift copy the whole batch first.
    func submit(_ batch: consuming RecordBatch) {
        if inline {
            var batch = batch
            seal(&batch)
            return
        }
        let handoff = Handoff(batch)
        inFlight.add(1, ordering: .relaxed)
        RecordingQueueDepth.add()
        places.wait()
        queue.async { [self] in
            var batch = handoff.take()
            seal(&batch)
            inFlight.subtract(1, ordering: .relaxed)
            RecordingQueueDepth.remove()
            places.signal()
            onWritten?()
        }
    }

    /// Seals and writes one batch; a failure is published before the caller frees its place.
    private func seal(_ batch: inout RecordBatch) {
        // Only a batch that reached the file moves the position: after a failure nothing more
        // is released, so the other side never sees a byte the file lacks. (A batch written just
        // before its reserve could not be extended is in the file, and is released.)
        let through: UInt64
        do throws(RecordingWriteError) {
            through = try sealer.withLock { (s) throws(RecordingWriteError) -> UInt64 in
                try s.process(&batch)
                return s.writtenThrough
            }
        } catch {
            failureBox.withLock { if $0 == nil { $0 = error } }
            through = sealer.withLock { $0.writtenThrough }
        }
        if through > written.load(ordering: .relaxed) { written.store(through, ordering: .releasing) }
        recycle(&batch.bytes)
    }

    /// Owned by one side at a time: filled by the relay thread, emptied on the queue.
    private final class Handoff: @unchecked Sendable {
        private var batch: RecordBatch?
        init(_ batch: consuming RecordBatch) { self.batch = batch }
        func take() -> RecordBatch {
            defer { batch = nil }
            return batch!
        }
    }

    /// Waits until every submitted batch is sealed and written.
    func drain() { queue.sync {} }

    /// Runs `body` on the sealer once everything submitted is done.
    func withDrainedSealer<R>(_ body: (inout BatchSealer) -> R) -> R {
        drain()
        return sealer.withLock { body(&$0) }
    }

    /// Closes the file after a failure noticed outside the sealer (a background fdatasync), so
    /// the file ends in the same clean place as after a failed write.
    func failClosed(_ error: RecordingWriteError) {
        withDrainedSealer { $0.fail(error) }
        failureBox.withLock { if $0 == nil { $0 = error } }
    }

    /// An empty buffer for the next batch, recycled when one is free.
    func takeBuffer() -> [UInt8] {
        if let buffer = spareBuffers.withLock({ $0.popLast() }) { return buffer }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(bufferCapacity)
        return buffer
    }

    private func recycle(_ bytes: inout [UInt8]) {
        var spare: [UInt8] = []
        swap(&spare, &bytes)
        spare.removeAll(keepingCapacity: true)
        spareBuffers.withLock { spares in
            if spares.isEmpty { spares.append(spare) }
        }
    }
}
