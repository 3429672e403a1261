/// Binary data passes untouched: a mask is applied only where the bytes in and around it are
/// text. A NUL byte or an invalid UTF-8 sequence within `margin` bytes of a found range (as far
/// as the window reaches) means binary (a tarball, an image, compressed data), and the range is
/// left alone, so such a stream comes out byte for byte as it went in.
enum TextCheck {
    static let margin = 64

    static func isText(_ w: ByteWindow, around range: Range<Int>) -> Bool {
        var i = max(w.lower, range.lowerBound - margin)
        let end = min(w.upper, range.upperBound + margin)
        // A piece of a character that began before the margin is not evidence of anything.
        var skipped = 0
        while i < end, skipped < 3, w[i] & 0xC0 == 0x80 { i += 1; skipped += 1 }
        while i < end {
            let b = w[i]
            if b == 0 { return false }
            if b < 0x80 { i += 1; continue }
            let length: Int
            var low: UInt8 = 0x80, high: UInt8 = 0xBF
            switch b {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return false
            }
            for k in 1..<length {
                // A character cut by the margin's end is not evidence either.
                guard i + k < end else { return true }
                let c = w[i + k]
                if k == 1 ? !(low...high).contains(c) : c & 0xC0 != 0x80 { return false }
            }
            i += length
        }
        return true
    }
}
