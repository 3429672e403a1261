/// Records framed on the relay's thread, on their way to the sealing queue.
///
/// `bytes` is exactly what will be written, in file order, except that every record's 32-byte
/// payload digest is still zero: the relay thread only copies and frames (the head and its
/// CRC-32C are 25 bytes of work per record); the SHA-256 pass over the payload, the chain, the
/// signatures and the write happen on the writer's queue (`BatchSealer`).
struct RecordBatch: Sendable {
    /// Where one record sits in `bytes`, and what the sealer needs to know about it.
    struct Slot: Sendable {
        var start: Int
        var payloadLength: Int
        var type: RecordType
        var time: UInt64

        var payloadRange: Range<Int> { (start + FrameLayout.headSize)..<(start + FrameLayout.headSize + payloadLength) }
        var digestRange: Range<Int> { payloadRange.upperBound..<(payloadRange.upperBound + FrameLayout.digestSize) }
        var frameRange: Range<Int> { start..<digestRange.upperBound }
    }

    /// A signed record the sealer appends after the batch's records: its payload signs the chain
    /// through them, which only the sealer knows. The relay side reserved its sequence and time.
    enum Seal: Sendable {
        case none
        case checkpoint(sequence: UInt64, time: UInt64)
        case trailer(sequence: UInt64, time: UInt64)
    }

    var bytes: [UInt8]
    var slots: [Slot]
    var seal: Seal = .none
    /// Ask for an fdatasync once written: the periodic flush (the header and trailer sync inline).
    var sync = false
    /// The writer's recorded-byte position once this batch is in the file: what the relay may
    /// release to the other side when the sealer publishes it (`RecordingWriter.writtenPosition`).
    var through: UInt64 = 0
}
