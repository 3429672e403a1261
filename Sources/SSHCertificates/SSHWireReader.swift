import Foundation

/// Why a blob in SSH wire format (RFC 4251) could not be read. Every case names the field.
public enum SSHWireError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(field: String)
    case trailingBytes(field: String, count: Int)
    case invalidUTF8(field: String)
    case embeddedNUL(field: String)
    case negativeMPInt(field: String)
    case nonMinimalMPInt(field: String)
    case tooLong(field: String, limit: Int)

    public var description: String {
        switch self {
        case .truncated(let f): return "truncated data while reading \(f)"
        case .trailingBytes(let f, let n): return "\(n) unexpected trailing byte(s) after \(f)"
        case .invalidUTF8(let f): return "\(f) is not valid UTF-8"
        case .embeddedNUL(let f): return "\(f) contains a NUL byte"
        case .negativeMPInt(let f): return "\(f) is a negative integer"
        case .nonMinimalMPInt(let f): return "\(f) is not minimally encoded"
        case .tooLong(let f, let limit): return "\(f) is longer than \(limit) bytes"
        }
    }
}

/// A strict cursor over SSH wire data. It never reads past its slice and callers finish with
/// `expectEnd` so that trailing bytes are refused rather than ignored.
public struct SSHWireReader {
    private let bytes: [UInt8]
    private(set) public var offset: Int
    private let end: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.offset = 0
        self.end = bytes.count
    }

    public var isAtEnd: Bool { offset == end }
    public var remaining: Int { end - offset }

    public mutating func readByte(_ field: String) throws(SSHWireError) -> UInt8 {
        guard remaining >= 1 else { throw .truncated(field: field) }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func readBool(_ field: String) throws(SSHWireError) -> Bool {
        try readByte(field) != 0
    }

    public mutating func readUInt32(_ field: String) throws(SSHWireError) -> UInt32 {
        guard remaining >= 4 else { throw .truncated(field: field) }
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(bytes[offset + i]) }
        offset += 4
        return v
    }

    public mutating func readUInt64(_ field: String) throws(SSHWireError) -> UInt64 {
        guard remaining >= 8 else { throw .truncated(field: field) }
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(bytes[offset + i]) }
        offset += 8
        return v
    }

    public mutating func readRaw(_ count: Int, _ field: String) throws(SSHWireError) -> [UInt8] {
        guard count >= 0, remaining >= count else { throw .truncated(field: field) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    /// `string`: uint32 length followed by that many bytes.
    public mutating func readString(_ field: String) throws(SSHWireError) -> [UInt8] {
        let length = try readUInt32(field)
        guard Int(length) <= remaining else { throw .truncated(field: field) }
        return try readRaw(Int(length), field)
    }

    /// A `string` that must be UTF-8 text without NUL bytes (key ids, principals, option names).
    public mutating func readText(_ field: String) throws(SSHWireError) -> String {
        let raw = try readString(field)
        if raw.contains(0) { throw .embeddedNUL(field: field) }
        guard let text = String(validating: raw, as: UTF8.self) else { throw .invalidUTF8(field: field) }
        return text
    }

    /// `mpint`, returned as unsigned big-endian magnitude without leading zeros.
    /// Negative values and non-minimal encodings are refused, as OpenSSH's sshbuf_get_bignum2 does.
    public mutating func readPositiveMPInt(_ field: String) throws(SSHWireError) -> [UInt8] {
        let raw = try readString(field)
        if raw.isEmpty { return [] }
        if raw[0] & 0x80 != 0 { throw .negativeMPInt(field: field) }
        if raw[0] == 0 {
            if raw.count == 1 || raw[1] & 0x80 == 0 { throw .nonMinimalMPInt(field: field) }
            return Array(raw.dropFirst())
        }
        return raw
    }

    public func expectEnd(_ field: String) throws(SSHWireError) {
        if remaining != 0 { throw .trailingBytes(field: field, count: remaining) }
    }
}
