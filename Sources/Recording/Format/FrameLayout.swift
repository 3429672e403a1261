import Crypto

/// The byte layout shared by writer, scanner, verifier and recovery (docs/recording-format.md).
///
/// File   = preamble (8 bytes) + records.
/// Record = 25-byte frame head + payload + 32-byte SHA-256 digest of the payload:
///
///     0    u32 LE  payload length
///     4    u8      record type
///     5    u64 LE  sequence number (header = 0, then +1 per record)
///     13   u64 LE  time offset, microseconds since the session started (monotonic clock)
///     21   u32 LE  CRC-32C of bytes 0..<21 (a damaged length is caught before it is trusted)
///     25   ...     payload
///     25+n 32      SHA-256 of the payload
///
/// Chain: C(-1) = SHA-256(chainDomain ‖ preamble); C(i) = SHA-256(C(i-1) ‖ head(i) ‖ digest(i)).
/// The payload digest is both the record's checksum and its link in the chain, so every payload
/// byte is hashed exactly once (one SHA-256 pass is the whole per-byte cost of integrity).
public enum FrameLayout {
    /// "GHREC", NUL, then the format version as u16 LE.
    public static let magic: [UInt8] = Array("GHREC".utf8) + [0x00, 0x01, 0x00]
    public static let formatVersion: UInt16 = 1
    public static let preambleSize = 8
    public static let headSize = 25
    public static let digestSize = 32
    public static let overhead = headSize + digestSize
    /// Upper bound on one payload. A larger length is corruption, never an allocation.
    public static let maxPayload = 16 << 20
    static let chainDomain = Array("gatehouse-recording-chain-v1".utf8)
    static let checkpointDomain = Array("gatehouse-recording-checkpoint-v1".utf8)
    static let trailerDomain = Array("gatehouse-recording-trailer-v1".utf8)
    static let crashEndDomain = Array("gatehouse-recording-crash-end-v1".utf8)

    static func initialChainHash() -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: chainDomain)
        hasher.update(data: magic)
        return Array(hasher.finalize())
    }

    static func payloadDigest(_ payload: UnsafeRawBufferPointer) -> [UInt8] {
        Array(SHA256.hash(data: payload))
    }

    /// C(i) from C(i-1) and a complete frame (its head and trailing digest; the payload is
    /// covered through the digest).
    static func nextChainHash(previous: [UInt8], frame: UnsafeRawBufferPointer) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous)
        hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: frame[0..<headSize]))
        hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: frame[(frame.count - digestSize)...]))
        return Array(hasher.finalize())
    }
}

/// The decoded 25-byte head of a record.
struct FrameHead: Equatable {
    var payloadLength: Int
    var typeByte: UInt8
    var sequence: UInt64
    var timeMicros: UInt64

    var frameSize: Int { FrameLayout.overhead + payloadLength }

    /// Writes the head (with its CRC) at `pointer`.
    func encode(into pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: UInt32(payloadLength).littleEndian, toByteOffset: 0, as: UInt32.self)
        pointer.storeBytes(of: typeByte, toByteOffset: 4, as: UInt8.self)
        pointer.storeBytes(of: sequence.littleEndian, toByteOffset: 5, as: UInt64.self)
        pointer.storeBytes(of: timeMicros.littleEndian, toByteOffset: 13, as: UInt64.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: pointer, count: 21))
        pointer.storeBytes(of: crc.littleEndian, toByteOffset: 21, as: UInt32.self)
    }

    /// Decodes a head; nil when its CRC does not match.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> FrameHead? {
        precondition(bytes.count >= FrameLayout.headSize)
        let stored = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 21, as: UInt32.self))
        guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<21])) == stored else { return nil }
        return FrameHead(
            payloadLength: Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self))),
            typeByte: bytes[4],
            sequence: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 5, as: UInt64.self)),
            timeMicros: UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 13, as: UInt64.self)))
    }
}

enum FrameEncoder {
    /// Appends one complete record (head, payload, payload digest) to `buffer`.
    static func append(type: RecordType, sequence: UInt64, time: UInt64, payload: [UInt8], to buffer: inout [UInt8]) {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: FrameLayout.headSize))
        buffer.append(contentsOf: payload)
        let head = FrameHead(payloadLength: payload.count, typeByte: type.rawValue, sequence: sequence, timeMicros: time)
        buffer.withUnsafeMutableBytes { raw in head.encode(into: raw.baseAddress! + start) }
        buffer.append(contentsOf: payload.withUnsafeBytes { FrameLayout.payloadDigest($0) })
    }

    static func frame(type: RecordType, sequence: UInt64, time: UInt64, payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        append(type: type, sequence: sequence, time: time, payload: payload, to: &bytes)
        return bytes
    }
}
