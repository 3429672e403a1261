/// A keyword that makes a detector look closer. The scanner finds keywords by a two-byte
/// anchor (`anchorOffset` into the keyword) in one table lookup per input byte; picking a rare
/// pair (say `yJ` of `eyJ`) keeps hits, and so the matchers' work, rare on ordinary output.
struct Keyword: Sendable {
    let bytes: [UInt8]      // lowercase when `caseInsensitive`
    let caseInsensitive: Bool
    let anchorOffset: Int

    /// A one-byte keyword (`:`, `=`) anchors on every pair it begins.
    init(_ text: String, caseInsensitive: Bool = false, anchorOffset: Int? = nil) {
        let bytes = caseInsensitive ? Array(text.lowercased().utf8) : Array(text.utf8)
        let offset = anchorOffset ?? Keyword.rarestPair(bytes)
        precondition(!bytes.isEmpty && bytes.count <= MaskingLimits.maxKeywordLength && (bytes.count == 1 || offset + 2 <= bytes.count)
                     && offset <= MaskingLimits.maxAnchorOffset)
        self.bytes = bytes
        self.caseInsensitive = caseInsensitive
        self.anchorOffset = offset
    }

    /// The offset of the pair least likely in ordinary text: punctuation and digits are rarer
    /// than capitals, capitals rarer than lowercase, and a doubled byte (`--`) is common.
    static func rarestPair(_ bytes: [UInt8]) -> Int {
        func rarity(_ b: UInt8) -> Int {
            switch ByteClass.of(b) {
            case .lower: return 1
            case .upper, .digit: return 3
            default: return 4
            }
        }
        guard bytes.count > 2 else { return 0 }
        var best = 0, bestScore = Int.min
        for offset in 0...min(bytes.count - 2, MaskingLimits.maxAnchorOffset) {
            let score = rarity(bytes[offset]) + rarity(bytes[offset + 1]) - (bytes[offset] == bytes[offset + 1] ? 4 : 0)
            if score > bestScore { best = offset; bestScore = score }
        }
        return best
    }
}

/// One masked range a detector found, in buffer indices, and the rule that names it.
struct FoundRange {
    let start: Int
    let end: Int
    let rule: String
}

/// A detector's answer at one hit: the ranges to mask (ascending, not overlapping; all at or
/// after the keyword's first byte) and, for a block longer than one window (a long private key,
/// a Secret's data), a state to resume from at the end of the last range.
struct DetectorMatch {
    var ranges: [FoundRange]
    var continuation: Int? = nil
}

/// What a quick look at a hit decided: no secret here, worth the full look, or (only while the
/// window is incomplete) too few bytes to tell yet.
enum QuickVerdict { case reject, candidate, needMore }

/// A family of rules behind a set of keywords. `match` sees a full window (or the stream's end
/// at a flush) and must answer from the window alone, so its answer never depends on chunking.
protocol Detector: Sendable {
    var keywords: [Keyword] { get }
    /// The rule names this detector can report.
    var ruleNames: [String] { get }
    /// A cheap decision from the bytes near the hit (the scanner calls it before the full window
    /// has arrived, so ordinary output is released without waiting). Defaults to `.candidate`.
    func quickCheck(_ window: ByteWindow, keywordStart: Int, keyword: Int) -> QuickVerdict
    func match(_ window: ByteWindow, keywordStart: Int, keyword: Int, rules: EnabledRules) -> DetectorMatch?
    /// Continues a block that did not fit in the previous window.
    func resume(_ window: ByteWindow, at start: Int, state: Int, rules: EnabledRules) -> DetectorMatch?
}

extension Detector {
    func quickCheck(_ window: ByteWindow, keywordStart: Int, keyword: Int) -> QuickVerdict { .candidate }
    func resume(_ window: ByteWindow, at start: Int, state: Int, rules: EnabledRules) -> DetectorMatch? { nil }
}

/// The masker's fixed sizes. The holdback bound follows from them: a hit waits for at most
/// `window` bytes past its keyword, whose first byte is at most `maxAnchorOffset` before the
/// anchor, so fewer than `holdbackLimit` bytes are ever held.
public enum MaskingLimits {
    /// The most bytes a masker ever holds back.
    public static let holdbackLimit = 4096
    /// How far back matchers may read into already released bytes (the key before a value,
    /// `kind: Secret` before `data:`, the binary check's margin).
    public static let lookbehind = 4096
    static let maxAnchorOffset = 8
    /// How far past a keyword's first byte a matcher may read.
    static let window = holdbackLimit - maxAnchorOffset - 1
    /// How far past a keyword's first byte a quick check may read.
    static let quickSpan = 64
}
