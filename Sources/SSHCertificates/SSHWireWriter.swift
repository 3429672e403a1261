import Foundation

/// Builds SSH wire data (RFC 4251 types).
public struct SSHWireWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func writeByte(_ v: UInt8) { bytes.append(v) }
    public mutating func writeBool(_ v: Bool) { bytes.append(v ? 1 : 0) }

    public mutating func writeUInt32(_ v: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(shift))) }
    }

    public mutating func writeUInt64(_ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    public mutating func writeRaw<C: Collection>(_ raw: C) where C.Element == UInt8 { bytes.append(contentsOf: raw) }

    public mutating func writeString<C: Collection>(_ raw: C) where C.Element == UInt8 {
        writeUInt32(UInt32(raw.count))
        bytes.append(contentsOf: raw)
    }

    public mutating func writeString(_ text: String) { writeString(Array(text.utf8)) }

    /// Writes an unsigned magnitude as a positive `mpint` (leading zeros stripped, 0x00 prefix
    /// when the high bit is set).
    public mutating func writePositiveMPInt<C: Collection>(_ magnitude: C) where C.Element == UInt8 {
        var m = Array(magnitude.drop(while: { $0 == 0 }))
        if let first = m.first, first & 0x80 != 0 { m.insert(0, at: 0) }
        writeString(m)
    }
}
