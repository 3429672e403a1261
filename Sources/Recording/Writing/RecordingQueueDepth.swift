import Synchronization

/// Batches handed to sealing queues and not yet written, summed over every recording in the
/// process: how far the disk is behind the relays. Read by metrics (a gauge sampled on scrape);
/// each `SealingPipeline` adds a batch as it queues it and takes it off once it is written.
public enum RecordingQueueDepth {
    private static let queued = Atomic<Int>(0)

    /// Batches queued or being sealed now, across all writers.
    public static var batches: Int { queued.load(ordering: .relaxed) }

    static func add() { queued.add(1, ordering: .relaxed) }
    static func remove() { queued.subtract(1, ordering: .relaxed) }
}
