import SSHCertificates

/// Streams the records of a recording in order, checking framing as it goes: CRCs, sequence
/// numbers, time order, header first, nothing after the end. The first problem is thrown with
/// its record number and byte offset. Signatures and the chain are `RecordingVerifier`'s job.
///
/// Reading a live or crashed recording stops cleanly at the end of the last complete record
/// when `allowTornTail` is set (the player's `--follow` and exports of unfinished sessions).
public final class RecordingReader {
    public let path: String
    public let header: SessionHeader
    /// The key that signs this recording, as named in its header.
    public let recordingKey: SSHPublicKey
    /// Byte offset just past the last record returned.
    public var offset: UInt64 { scanner.offset }
    public var fileSize: UInt64 { scanner.fileSize }
    public private(set) var lastTime: UInt64 = 0
    public private(set) var ended: RecordingEnd?
    private let scanner: FrameScanner
    private let allowTornTail: Bool
    private var nextIndex: UInt64

    public init(path: String, allowTornTail: Bool = false) throws(RecordingReadError) {
        self.path = path
        self.allowTornTail = allowTornTail
        scanner = try FrameScanner(path: path, trackChain: false)
        nextIndex = 0
        let headerRecord: HeaderRecord
        switch try scanner.next() {
        case .end:
            throw .damaged(record: 0, offset: UInt64(FrameLayout.preambleSize), reason: "the file ends before the header record")
        case .damage(_, let offset, let damage):
            throw .damaged(record: 0, offset: offset, reason: Self.describe(damage))
        case .frame(let frame):
            guard frame.payloadIntact else { throw .damaged(record: 0, offset: frame.offset, reason: "header payload checksum mismatch") }
            guard frame.head.typeByte == RecordType.header.rawValue, frame.head.sequence == 0 else {
                throw .damaged(record: 0, offset: frame.offset, reason: "the first record is not the header")
            }
            do { headerRecord = try HeaderRecord.decode(frame.payload) } catch {
                throw .damaged(record: 0, offset: frame.offset, reason: "\(error)")
            }
            do { recordingKey = try headerRecord.publicKey() } catch {
                throw .damaged(record: 0, offset: frame.offset, reason: "\(error)")
            }
        }
        header = headerRecord.session
        nextIndex = 1
    }

    /// Resumes reading at a record boundary found through a `SeekIndex`.
    init(path: String, header: SessionHeader, recordingKey: SSHPublicKey, resumeAt offset: UInt64, index: UInt64,
         time: UInt64, allowTornTail: Bool) throws(RecordingReadError) {
        self.path = path; self.header = header; self.recordingKey = recordingKey; self.allowTornTail = allowTornTail
        scanner = try FrameScanner(path: path, trackChain: false, resumeAt: (offset, index, FrameLayout.initialChainHash()))
        nextIndex = index
        lastTime = time
    }

    /// The next record, or nil at the end (after the trailer, or at a torn tail when allowed).
    public func next() throws(RecordingReadError) -> Record? {
        switch try scanner.next() {
        case .end:
            if ended == nil && !allowTornTail {
                throw .damaged(record: nextIndex, offset: scanner.offset,
                               reason: "the recording ends without a trailer (unfinished: still live, crashed, or truncated)")
            }
            return nil
        case .damage(_, let offset, let damage):
            if allowTornTail && Self.isTornTail(damage) { return nil }
            throw .damaged(record: nextIndex, offset: offset, reason: Self.describe(damage))
        case .frame(let frame):
            let index = nextIndex
            if ended != nil {
                throw .damaged(record: index, offset: frame.offset, reason: "\(scanner.fileSize - frame.offset) bytes follow the end of the recording")
            }
            guard frame.payloadIntact else {
                throw .damaged(record: index, offset: frame.offset,
                               reason: "payload checksum mismatch (\(frame.digestMismatch))")
            }
            guard frame.head.sequence == index else {
                throw .damaged(record: index, offset: frame.offset,
                               reason: "sequence number \(frame.head.sequence) where \(index) was expected (records dropped, duplicated or reordered)")
            }
            guard let type = RecordType(rawValue: frame.head.typeByte), type != .header else {
                throw .damaged(record: index, offset: frame.offset, reason: "record type 0x\(String(frame.head.typeByte, radix: 16)) is not allowed here")
            }
            guard frame.head.timeMicros >= lastTime else {
                throw .damaged(record: index, offset: frame.offset,
                               reason: "time \(frame.head.timeMicros) µs is before the previous record's \(lastTime) µs")
            }
            let content: RecordContent
            do { content = try ContentDecoder.decode(type: type, payload: frame.payload) } catch {
                throw .damaged(record: index, offset: frame.offset, reason: "\(type) record: \(error)")
            }
            if case .end(let end) = content { ended = end }
            nextIndex += 1
            lastTime = frame.head.timeMicros
            return Record(index: index, offset: frame.offset, timeMicros: frame.head.timeMicros, content: content, size: frame.head.frameSize)
        }
    }

    static func isTornTail(_ damage: FrameDamage) -> Bool {
        switch damage {
        case .truncatedHead, .truncatedRecord: true
        case .headChecksum(let zeroTail): zeroTail
        case .lengthTooLarge: false
        }
    }

    static func describe(_ damage: FrameDamage) -> String {
        switch damage {
        case .truncatedHead(let have):
            "the file ends inside the record head (\(have) of \(FrameLayout.headSize) bytes): truncated"
        case .headChecksum(let zeroTail):
            zeroTail ? "record head is zero bytes to the end of the file (torn tail of a crashed write)"
                     : "record head checksum mismatch (the head was altered or the file is corrupt here)"
        case .lengthTooLarge(let length):
            "payload length \(length) exceeds the \(FrameLayout.maxPayload >> 20) MiB limit"
        case .truncatedRecord(let have, let need):
            "the file ends inside the record (\(have) of \(need) bytes): truncated"
        }
    }
}
