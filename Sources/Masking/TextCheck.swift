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
        // Let the last character finish past the margin; only the window's end may cut one.
        let limit = min(w.upper, end + 3)
        var bytes = UnsafeBufferPointer(start: w.base + i, count: max(0, limit - i)).makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        while i < end {
            switch parser.parseScalar(from: &bytes) {
            case .valid(let encoded):
                if encoded.first == 0 { return false }
                i += encoded.count
            case .error(let length):
                return i + length >= w.upper
            case .emptyInput:
                return true
            }
        }
        return true
    }
}
