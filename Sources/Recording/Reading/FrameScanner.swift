#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One record as framed on disk, checked only for its own integrity (head CRC, length, payload digest).
struct Frame {
    /// Position in the file (0 = the header record), not the sequence number written in the head.
    var position: UInt64
    var offset: UInt64
    var head: FrameHead
    var payload: [UInt8]
    /// Chain hash through this record (only when the scanner tracks the chain).
    var chainHash: [UInt8]
    /// False when the payload digest did not match; the length was trusted (its head CRC matched).
    var payloadIntact: Bool
    var storedDigest: [UInt8]
    var computedDigest: [UInt8]

    /// "stored 1a2b3c4d…, computed 5e6f7a8b…" for messages.
    var digestMismatch: String {
        "SHA-256 stored \(hexString(Array(storedDigest.prefix(4))))…, computed \(hexString(Array(computedDigest.prefix(4))))…"
    }

    var end: UInt64 { offset + UInt64(head.frameSize) }
}

/// Where framing stopped making sense.
enum FrameDamage: Equatable {
    /// Fewer bytes than a record head remain at the end of the file.
    case truncatedHead(have: Int)
    /// The head's CRC does not match. `zeroTail`: everything from here to the end is zero bytes
    /// (blocks a crash left unfilled), which recovery may treat as a torn tail.
    case headChecksum(zeroTail: Bool)
    case lengthTooLarge(Int)
    /// The head is intact but the file ends inside the record.
    case truncatedRecord(have: UInt64, need: Int)
}

enum ScanStep {
    case frame(Frame)
    case end
    case damage(position: UInt64, offset: UInt64, FrameDamage)
}

/// Reads frames sequentially with a 1 MiB buffer. Never trusts a length before the head's own CRC
/// matched and never allocates more than `FrameLayout.maxPayload` for one record.
final class FrameScanner {
    let path: String
    let fileSize: UInt64
    private let fd: Int32
    private let trackChain: Bool
    /// Read buffer: bytes `bufferStart..<bufferEnd` are file bytes not consumed yet. Allocated once
    /// (grown only for a record larger than it) and filled by read(2) in place.
    private var buffer = [UInt8](repeating: 0, count: FrameScanner.chunk)
    private var bufferStart = 0
    private var bufferEnd = 0
    private(set) var offset: UInt64
    private(set) var position: UInt64
    private(set) var chainHash: [UInt8]
    private static let chunk = 1 << 20

    /// Opens `path` and checks the preamble; or, with `resumeAt`, starts at a known record boundary.
    init(path: String, trackChain: Bool, resumeAt: (offset: UInt64, position: UInt64, chainHash: [UInt8])? = nil) throws(RecordingReadError) {
        self.path = path
        self.trackChain = trackChain
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: ErrnoName.describe(errno)) }
        self.fd = fd
        var info = stat()
        guard fstat(fd, &info) == 0 else { let code = errno; _ = systemClose(fd); throw .cannotOpen(path: path, reason: ErrnoName.describe(code)) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { _ = systemClose(fd); throw .cannotOpen(path: path, reason: "not a regular file") }
        fileSize = UInt64(info.st_size)
        offset = 0
        position = 0
        chainHash = FrameLayout.initialChainHash()
        if let resume = resumeAt {
            offset = resume.offset; position = resume.position; chainHash = resume.chainHash
            guard lseek(fd, off_t(resume.offset), SEEK_SET) >= 0 else { _ = systemClose(fd); throw .cannotOpen(path: path, reason: ErrnoName.describe(errno)) }
            return
        }
        do throws(RecordingReadError) { try readPreamble() } catch { _ = systemClose(fd); throw error }
    }

    deinit { _ = systemClose(fd) }

    private func readPreamble() throws(RecordingReadError) {
        guard try ensure(FrameLayout.preambleSize) else {
            throw .notARecording(path: path, reason: "the file is \(fileSize) bytes, shorter than the 8-byte preamble")
        }
        let preamble = Array(buffer[bufferStart..<bufferStart + FrameLayout.preambleSize])
        guard preamble.starts(with: FrameLayout.magic.prefix(6)) else {
            throw .notARecording(path: path, reason: "the first bytes are not \"GHREC\\0\"")
        }
        guard preamble == FrameLayout.magic else {
            throw .notARecording(path: path, reason: "format version \(Int(preamble[6]) | Int(preamble[7]) << 8) is not supported (expected 1)")
        }
        bufferStart += FrameLayout.preambleSize
        offset = UInt64(FrameLayout.preambleSize)
    }

    func next() throws(RecordingReadError) -> ScanStep {
        let start = offset
        guard try ensure(1) else { return .end }
        guard try ensure(FrameLayout.headSize) else {
            return .damage(position: position, offset: start, .truncatedHead(have: available))
        }
        let head = buffer.withUnsafeBytes { raw in
            FrameHead.decode(UnsafeRawBufferPointer(rebasing: raw[bufferStart..<bufferStart + FrameLayout.headSize]))
        }
        guard let head else {
            return .damage(position: position, offset: start, .headChecksum(zeroTail: remainingIsZero(from: start)))
        }
        guard head.payloadLength <= FrameLayout.maxPayload else {
            return .damage(position: position, offset: start, .lengthTooLarge(head.payloadLength))
        }
        guard try ensure(head.frameSize) else {
            return .damage(position: position, offset: start, .truncatedRecord(have: fileSize - start, need: head.frameSize))
        }
        let payloadStart = bufferStart + FrameLayout.headSize
        let payloadEnd = payloadStart + head.payloadLength
        let frameEnd = payloadEnd + FrameLayout.digestSize
        let computed = buffer.withUnsafeBytes { raw in FrameLayout.payloadDigest(UnsafeRawBufferPointer(rebasing: raw[payloadStart..<payloadEnd])) }
        let stored = Array(buffer[payloadEnd..<frameEnd])
        if trackChain {
            chainHash = buffer.withUnsafeBytes { raw in
                FrameLayout.nextChainHash(previous: chainHash, frame: UnsafeRawBufferPointer(rebasing: raw[bufferStart..<frameEnd]))
            }
        }
        let frame = Frame(position: position, offset: start, head: head, payload: Array(buffer[payloadStart..<payloadEnd]),
                          chainHash: chainHash, payloadIntact: computed == stored,
                          storedDigest: stored, computedDigest: computed)
        bufferStart += head.frameSize
        offset += UInt64(head.frameSize)
        position += 1
        return .frame(frame)
    }

    private var available: Int { bufferEnd - bufferStart }

    /// Makes `count` bytes available from `bufferStart`; false at end of file.
    private func ensure(_ count: Int) throws(RecordingReadError) -> Bool {
        if available >= count { return true }
        if bufferStart > 0 {
            let (from, length) = (bufferStart, available)
            buffer.withUnsafeMutableBytes { raw in
                if length > 0 { memmove(raw.baseAddress!, raw.baseAddress! + from, length) }
            }
            bufferStart = 0
            bufferEnd = length
        }
        if count > buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: count - buffer.count)) }
        while bufferEnd < count {
            let end = bufferEnd
            let got = buffer.withUnsafeMutableBytes { raw in read(fd, raw.baseAddress! + end, raw.count - end) }
            if got < 0 {
                let code = errno
                if code == EINTR { continue }
                throw .io(path: path, offset: offset, reason: ErrnoName.describe(code))
            }
            if got == 0 { return false }
            bufferEnd += got
        }
        return true
    }

    /// True when every byte from `start` to the end of the file is zero.
    private func remainingIsZero(from start: UInt64) -> Bool {
        var cursor = start
        var block = [UInt8](repeating: 0, count: 65536)
        while cursor < fileSize {
            let got = block.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(cursor)) }
            if got <= 0 { return false }
            if block[0..<got].contains(where: { $0 != 0 }) { return false }
            cursor += UInt64(got)
        }
        return true
    }
}
