/// Little-endian writer and bounds-checked reader for the fixed-layout payloads.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func raw(_ value: [UInt8]) { bytes.append(contentsOf: value) }
    /// u32 LE length, then the bytes.
    mutating func string(_ value: [UInt8]) { u32(UInt32(value.count)); raw(value) }
}

/// Why a payload did not decode. Turned into a located message by the scanner.
enum PayloadError: Error, Equatable, CustomStringConvertible {
    case tooShort(need: Int, have: Int)
    case trailingBytes(Int)
    case invalid(String)

    var description: String {
        switch self {
        case .tooShort(let need, let have): "payload too short (needs \(need) more bytes, \(have) left)"
        case .trailingBytes(let count): "\(count) unexpected bytes after the payload's fields"
        case .invalid(let why): why
        }
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    var remaining: Int { bytes.count - position }

    mutating func u8() throws(PayloadError) -> UInt8 { UInt8(try uint(1)) }
    mutating func u16() throws(PayloadError) -> UInt16 { UInt16(try uint(2)) }
    mutating func u32() throws(PayloadError) -> UInt32 { UInt32(try uint(4)) }
    mutating func u64() throws(PayloadError) -> UInt64 { try uint(8) }

    mutating func raw(_ count: Int) throws(PayloadError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .tooShort(need: count, have: remaining) }
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    mutating func string() throws(PayloadError) -> [UInt8] { try raw(Int(try u32())) }

    mutating func rest() -> [UInt8] { defer { position = bytes.count }; return Array(bytes[position...]) }

    func expectEnd() throws(PayloadError) {
        if remaining != 0 { throw .trailingBytes(remaining) }
    }

    private mutating func uint(_ width: Int) throws(PayloadError) -> UInt64 {
        guard remaining >= width else { throw .tooShort(need: width, have: remaining) }
        var value: UInt64 = 0
        for index in 0..<width { value |= UInt64(bytes[position + index]) << (8 * UInt64(index)) }
        position += width
        return value
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits: [Character] = Array("0123456789abcdef")
    var text = ""
    text.reserveCapacity(bytes.count * 2)
    for byte in bytes { text.append(digits[Int(byte >> 4)]); text.append(digits[Int(byte & 0xF)]) }
    return text
}

func hex32(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}

/// `Array.withUnsafeBytes` with a typed error (the standard one only rethrows `any Error`).
func withRawBytes<R, E: Error>(_ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    let result: Result<R, E> = array.withUnsafeBytes { raw in Result { () throws(E) -> R in try body(raw) } }
    return try result.get()
}
