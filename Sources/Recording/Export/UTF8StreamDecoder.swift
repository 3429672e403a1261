/// Turns arbitrary bytes, arriving in chunks, into valid UTF-8 for formats that need text
/// (asciicast). Sequences split across chunks are carried to the next chunk, not replaced; each
/// maximal invalid subpart becomes one U+FFFD (the Unicode "substitution of maximal subparts"
/// practice) and the bytes it replaced are counted, so the export can say how lossy it was.
struct UTF8StreamDecoder {
    private var carry: [UInt8] = []
    /// Input bytes replaced by U+FFFD so far.
    private(set) var replacedBytes = 0
    private static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    /// Valid UTF-8 for `bytes`, holding back an incomplete sequence at the end.
    mutating func decode(_ bytes: [UInt8]) -> [UInt8] {
        let input = carry.isEmpty ? bytes : carry + bytes
        carry = []
        return decode(input, final: false)
    }

    /// Flushes a sequence left incomplete at the end of the stream (it is invalid now).
    mutating func finish() -> [UInt8] {
        let rest = carry
        carry = []
        return decode(rest, final: true)
    }

    private mutating func decode(_ input: [UInt8], final: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        var i = 0
        let n = input.count
        while i < n {
            let lead = input[i]
            if lead < 0x80 { out.append(lead); i += 1; continue }
            let length: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: length = 0
            }
            if length == 0 { replace(1, &out); i += 1; continue }
            var valid = 1
            while valid < length, i + valid < n {
                let byte = input[i + valid]
                let (lo, hi) = valid == 1 ? (low, high) : (UInt8(0x80), UInt8(0xBF))
                guard byte >= lo && byte <= hi else { break }
                valid += 1
            }
            if valid == length {
                out.append(contentsOf: input[i..<i + length])
            } else if i + valid == n && !final {
                carry = Array(input[i..<n])  // may complete in the next chunk
            } else {
                replace(valid, &out)
            }
            i += valid
        }
        return out
    }

    private mutating func replace(_ count: Int, _ out: inout [UInt8]) {
        out.append(contentsOf: Self.replacement)
        replacedBytes += count
    }
}
