/// Character classes of single bytes, looked up in one table so the matchers' inner loops stay
/// branch-light. Every class is ASCII: secrets the rules look for are ASCII by construction.
struct ByteClass: OptionSet, Sendable {
    let rawValue: UInt16

    static let lower = ByteClass(rawValue: 1 << 0)
    static let upper = ByteClass(rawValue: 1 << 1)
    static let digit = ByteClass(rawValue: 1 << 2)
    static let underscore = ByteClass(rawValue: 1 << 3)
    static let dash = ByteClass(rawValue: 1 << 4)
    static let plus = ByteClass(rawValue: 1 << 5)
    static let slash = ByteClass(rawValue: 1 << 6)
    static let equals = ByteClass(rawValue: 1 << 7)
    static let dot = ByteClass(rawValue: 1 << 8)
    static let space = ByteClass(rawValue: 1 << 9)       // space and tab
    static let lineBreak = ByteClass(rawValue: 1 << 10)  // \n and \r
    static let hexLetter = ByteClass(rawValue: 1 << 11)  // a-f A-F
    /// Printable ASCII other than space: what an unquoted value may be made of.
    static let visible = ByteClass(rawValue: 1 << 12)

    static let letter: ByteClass = [.lower, .upper]
    static let alphanumeric: ByteClass = [.lower, .upper, .digit]
    static let base64: ByteClass = [.lower, .upper, .digit, .plus, .slash]
    static let base64URL: ByteClass = [.lower, .upper, .digit, .dash, .underscore]
    static let identifier: ByteClass = [.lower, .upper, .digit, .underscore]
    /// What a configuration key is made of: `DB_PASSWORD`, `spring.datasource.password`, `api-key`.
    static let keyName: ByteClass = [.lower, .upper, .digit, .underscore, .dash, .dot]

    static let table: [UInt16] = {
        var table = [UInt16](repeating: 0, count: 256)
        for byte in 0..<256 {
            var c: ByteClass = []
            switch UInt8(byte) {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): c.insert(.lower)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): c.insert(.upper)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c.insert(.digit)
            case UInt8(ascii: "_"): c.insert(.underscore)
            case UInt8(ascii: "-"): c.insert(.dash)
            case UInt8(ascii: "+"): c.insert(.plus)
            case UInt8(ascii: "/"): c.insert(.slash)
            case UInt8(ascii: "="): c.insert(.equals)
            case UInt8(ascii: "."): c.insert(.dot)
            case UInt8(ascii: " "), UInt8(ascii: "\t"): c.insert(.space)
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"): c.insert(.lineBreak)
            default: break
            }
            if (0x61...0x66).contains(byte) || (0x41...0x46).contains(byte) { c.insert(.hexLetter) }
            if (0x21...0x7E).contains(byte) { c.insert(.visible) }
            table[byte] = c.rawValue
        }
        return table
    }()

    @inline(__always)
    static func of(_ byte: UInt8) -> ByteClass { ByteClass(rawValue: table[Int(byte)]) }

    @inline(__always)
    static func byte(_ byte: UInt8, isIn set: ByteClass) -> Bool { table[Int(byte)] & set.rawValue != 0 }
}

@inline(__always)
func asciiLower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte }
