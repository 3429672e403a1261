/// The one JSON writer of Gatehouse: the audit log, the issuance answers and the asciicast
/// export all write their JSON through it.
///
/// Strings are escaped exactly as Foundation's `JSONSerialization` writes them with
/// `.withoutEscapingSlashes`: `"` and `\` escaped, the short escapes for \b \f \n \r \t, every
/// other C0 control character as lowercase `\u00xx`, everything else (DEL, non-ASCII, U+2028 and
/// U+2029) verbatim as UTF-8. That byte-exactness is what keeps the audit log's canonical lines
/// (and so its hash chain) identical to the ones written before this writer existed. Bytes that
/// are not valid UTF-8 become U+FFFD, so the output is always valid JSON.
///
/// Hand-built rather than `JSONEncoder`: the audit log and issuance write a record per decision
/// and the Foundation encoders were the hottest code there (see docs/benchmarks.md); and the
/// writer controls key order and layout, which the audit chain depends on.
public struct JSONWriter: Sendable {
    /// How members and elements are separated: `compact` is `{"a":1,"b":2}` (JSONSerialization),
    /// `spaced` is `{"a": 1, "b": 2}` (the layout asciinema writes).
    public enum Layout: Sendable { case compact, spaced }

    public private(set) var bytes: [UInt8] = []
    private let layout: Layout
    /// One entry per open object or array: whether it already holds a member.
    private var open: [Bool] = []
    private var afterKey = false

    public init(layout: Layout = .compact, capacity: Int = 256) {
        self.layout = layout
        bytes.reserveCapacity(capacity)
    }

    /// The text written so far.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    // MARK: Structure

    public mutating func beginObject() { separate(); bytes.append(UInt8(ascii: "{")); open.append(false) }
    public mutating func endObject() { open.removeLast(); bytes.append(UInt8(ascii: "}")) }
    public mutating func beginArray() { separate(); bytes.append(UInt8(ascii: "[")); open.append(false) }
    public mutating func endArray() { open.removeLast(); bytes.append(UInt8(ascii: "]")) }

    /// A member name; the next value written is its value.
    public mutating func key(_ name: String) {
        separate()
        JSONWriter.appendString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        if layout == .spaced { bytes.append(UInt8(ascii: " ")) }
        afterKey = true
    }

    // MARK: Values

    public mutating func string(_ value: String) { separate(); JSONWriter.appendString(value, to: &bytes) }

    /// UTF-8 bytes as a string; invalid sequences become U+FFFD.
    public mutating func string(utf8 value: some Collection<UInt8>) { string(String(decoding: value, as: UTF8.self)) }

    public mutating func number(_ value: some BinaryInteger) { separate(); bytes.append(contentsOf: String(value).utf8) }

    /// A number already formatted as JSON (a fixed-point time, say); the caller vouches for it.
    public mutating func number(literal: String) { separate(); bytes.append(contentsOf: literal.utf8) }

    public mutating func bool(_ value: Bool) { separate(); bytes.append(contentsOf: (value ? "true" : "false").utf8) }

    public mutating func null() { separate(); bytes.append(contentsOf: "null".utf8) }

    /// Convenience: `"name":"value"`.
    public mutating func member(_ name: String, _ value: String) { key(name); string(value) }
    public mutating func member(_ name: String, _ value: some BinaryInteger) { key(name); number(value) }
    public mutating func member(_ name: String, strings values: [String]) {
        key(name)
        beginArray()
        for value in values { string(value) }
        endArray()
    }

    /// The comma before a member or element (none right after a key or first in a container).
    private mutating func separate() {
        if afterKey { afterKey = false; return }
        guard let last = open.indices.last else { return }
        if open[last] {
            bytes.append(UInt8(ascii: ","))
            if layout == .spaced { bytes.append(UInt8(ascii: " ")) }
        }
        open[last] = true
    }

    // MARK: Strings

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// `s` as a JSON string literal (with its quotes), escaped as described above.
    public static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            // Runs of bytes that need no escape are copied whole: most strings (ids, base64,
            // fingerprints) are one run.
            var runStart = 0
            for (i, byte) in utf8.enumerated() where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i]))
                runStart = i + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "t"))
                default:
                    out.append(contentsOf: "u00".utf8)
                    out.append(hex[Int(byte >> 4)]); out.append(hex[Int(byte & 0x0F)])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `s` as a JSON string literal, as text.
    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 2)
        appendString(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
