/// The bytes a matcher may read around one keyword hit: indices are positions in the masker's
/// buffer; `lower..<upper` is readable. `upper` is either a fixed distance past the hit or the
/// end of the stream so far at a flush, never "whatever has arrived", so a matcher's answer does
/// not depend on how the stream was chunked.
struct ByteWindow {
    let base: UnsafePointer<UInt8>
    /// The first readable index: lookbehind into bytes already released (the stream's history).
    let lower: Int
    /// One past the last readable index.
    let upper: Int
    /// False while `upper` is only what has arrived so far (a quick check may answer "need
    /// more"); true when `upper` is the window's fixed end or the end of the stream at a flush.
    let isComplete: Bool
    /// True when `lower` is the stream's first byte (nothing before it was ever sent).
    let lowerIsStreamStart: Bool

    @inline(__always) subscript(_ i: Int) -> UInt8 { base[i] }

    @inline(__always) func byte(_ i: Int) -> UInt8? { i >= lower && i < upper ? base[i] : nil }

    @inline(__always) func contains(_ i: Int) -> Bool { i >= lower && i < upper }

    /// The index of the first byte at or after `i` that is not in `set` (or `limit`/`upper`).
    @inline(__always)
    func skip(_ set: ByteClass, from i: Int, limit: Int = .max) -> Int {
        var j = i
        let end = min(upper, limit)
        while j < end, ByteClass.byte(base[j], isIn: set) { j += 1 }
        return j
    }

    /// The index just after the last byte before `i` that is not in `set`, going back no
    /// further than `limit` bytes.
    @inline(__always)
    func skipBack(_ set: ByteClass, from i: Int, limit: Int) -> Int {
        var j = i
        let stop = max(lower, i - limit)
        while j > stop, ByteClass.byte(base[j - 1], isIn: set) { j -= 1 }
        return j
    }

    func matches(_ text: [UInt8], at i: Int, caseInsensitive: Bool = false) -> Bool {
        guard i >= lower, i + text.count <= upper else { return false }
        for (k, expected) in text.enumerated() {
            let actual = caseInsensitive ? asciiLower(base[i + k]) : base[i + k]
            if actual != expected { return false }
        }
        return true
    }

    /// The first index in `from..<to` where `text` occurs.
    func find(_ text: [UInt8], from: Int, to: Int) -> Int? {
        guard let first = text.first else { return nil }
        let last = min(to, upper) - text.count
        var i = max(from, lower)
        while i <= last {
            if base[i] == first && matches(text, at: i) { return i }
            i += 1
        }
        return nil
    }

    /// The end of the line holding `i`: the index of its `\n` or `\r`, or `upper`.
    func lineEnd(from i: Int) -> Int {
        var j = i
        while j < upper, base[j] != 0x0A, base[j] != 0x0D { j += 1 }
        return j
    }

    /// The start of the line holding `i`, looking back at most `limit` bytes (nil if further).
    func lineStart(of i: Int, limit: Int) -> Int? {
        var j = i
        let stop = max(lower, i - limit)
        while j > stop {
            if base[j - 1] == 0x0A || base[j - 1] == 0x0D { return j }
            j -= 1
        }
        return j == lower && lowerIsStreamStart ? j : nil
    }

    func bytes(_ range: Range<Int>) -> [UInt8] { Array(UnsafeBufferPointer(start: base + range.lowerBound, count: range.count)) }
}
