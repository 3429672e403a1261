/// The relay side of a writer: copies appended bytes into the current batch and frames them into
/// records, numbering and timing them. Nothing here hashes or touches the file, so an append
/// costs the relay one memcpy (plus a 25-byte head per record); `BatchSealer` does the rest.
///
/// `bytes` holds the batch's complete records (each with a zero digest still to fill) and then
/// at most one open data record collecting bytes.
struct BatchBuilder {
    private struct OpenRecord {
        var stream: RecordStream
        var start: Int
        var time: UInt64
    }

    private(set) var bytes: [UInt8]
    private(set) var slots: [RecordBatch.Slot] = []
    private var open: OpenRecord?
    /// Sequence number of the next record.
    private(set) var sequence: UInt64 = 0
    /// Time of the latest record: record times never decrease.
    private(set) var lastTime: UInt64 = 0
    var recordsSinceCheckpoint = 0

    init(buffer: [UInt8]) { bytes = buffer }

    var isEmpty: Bool { bytes.isEmpty }
    var byteCount: Int { bytes.count }
    var hasOpenRecord: Bool { open != nil }

    /// The preamble goes before record 0 in the first batch only.
    mutating func appendPreamble() { bytes.append(contentsOf: FrameLayout.magic) }

    /// Adds `bytes` to the open record of `stream` or starts a new one. Bytes join the open record
    /// only when they arrive within the coalescing window and fit whole, so one append of up to
    /// `maxPayload` bytes never spans two records. Returns how many bytes were taken.
    mutating func appendData(stream: RecordStream, time: UInt64, bytes input: UnsafeRawBufferPointer,
                             window: UInt64, maxPayload: Int) -> Int {
        if let current = open {
            let size = bytes.count - current.start - FrameLayout.headSize
            if current.stream == stream, time <= current.time &+ window, size + input.count <= maxPayload {
                copyIn(input, count: input.count)
                return input.count
            }
            sealOpenRecord()
        }
        let recordTime = nextTime(time)
        open = OpenRecord(stream: stream, start: bytes.count, time: recordTime)
        bytes.append(contentsOf: repeatElement(0, count: FrameLayout.headSize))
        let taken = min(input.count, maxPayload)
        copyIn(input, count: taken)
        return taken
    }

    private mutating func copyIn(_ input: UnsafeRawBufferPointer, count: Int) {
        guard count > 0 else { return }
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[0..<count]))
    }

    /// Closes the open data record: writes its head and leaves room for its digest.
    mutating func sealOpenRecord() {
        guard let current = open else { return }
        open = nil
        let length = bytes.count - current.start - FrameLayout.headSize
        finishRecord(start: current.start, payloadLength: length, type: current.stream.recordType, time: current.time)
    }

    /// Appends a complete non-data record (header, resize, marker, exit), sealing the open data
    /// record first.
    mutating func appendWholeRecord(_ type: RecordType, time: UInt64, payload: [UInt8]) {
        sealOpenRecord()
        let recordTime = nextTime(time)
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: FrameLayout.headSize))
        bytes.append(contentsOf: payload)
        finishRecord(start: start, payloadLength: payload.count, type: type, time: recordTime)
    }

    /// Reserves the sequence number and time of a signed record (checkpoint or trailer) that the
    /// sealer will append after everything framed so far.
    mutating func reserveSignedRecord(time: UInt64) -> (sequence: UInt64, time: UInt64) {
        sealOpenRecord()
        let reserved = (sequence, nextTime(time))
        sequence += 1
        return reserved
    }

    /// Hands over the framed records and starts an empty batch in `buffer` (a recycled one).
    mutating func take(replacingWith buffer: [UInt8]) -> (bytes: [UInt8], slots: [RecordBatch.Slot]) {
        precondition(open == nil, "seal the open record before taking a batch")
        defer { bytes = buffer; slots = [] }
        return (bytes, slots)
    }

    /// Gives an empty builder a buffer with room for a whole batch.
    mutating func startBatch(in buffer: [UInt8]) {
        precondition(bytes.isEmpty && slots.isEmpty)
        bytes = buffer
    }

    private mutating func nextTime(_ time: UInt64) -> UInt64 {
        lastTime = max(time, lastTime)
        return lastTime
    }

    private mutating func finishRecord(start: Int, payloadLength: Int, type: RecordType, time: UInt64) {
        let head = FrameHead(payloadLength: payloadLength, typeByte: type.rawValue, sequence: sequence, timeMicros: time)
        bytes.withUnsafeMutableBytes { raw in head.encode(into: raw.baseAddress! + start) }
        bytes.append(contentsOf: repeatElement(0, count: FrameLayout.digestSize))
        slots.append(RecordBatch.Slot(start: start, payloadLength: payloadLength, type: type, time: time))
        sequence += 1
        recordsSinceCheckpoint += 1
    }
}
