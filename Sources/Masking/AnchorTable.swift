/// Where the scanner looks: a bit per two-byte pair that starts some keyword's anchor, and for
/// each such pair the keywords to verify. One bit test per input byte is the whole cost of
/// ordinary output.
struct AnchorTable: Sendable {
    /// A keyword to verify at a hit, and whose it is (detector, and its keyword index). Plain
    /// values only (the keyword's bytes live in `keywordBytes`), so the scan copies no references.
    struct Entry: Sendable {
        let detector, index, bytesStart, length, anchorOffset: Int
        let caseInsensitive: Bool
    }

    /// Every keyword's bytes, end to end.
    private(set) var keywordBytes: [UInt8] = []
    /// For each pair with keywords: where its entries stand in `flatEntries`.
    private(set) var flatEntries: [Entry] = []
    private var flatRanges = [UInt32](repeating: 0, count: 65536)

    /// 65,536 bits (8 KiB, stays in L1): bit `first << 8 | second` is set when that pair anchors a keyword.
    private(set) var bits = [UInt64](repeating: 0, count: 1024)
    /// For each pair, 1 + its index in `lists` (0: no keyword).
    private var slots = [UInt16](repeating: 0, count: 65536)
    private(set) var lists: [[Entry]] = []
    /// Bytes that begin some keyword (either case when case-insensitive), for the tail check.
    private var startsKeyword = [Bool](repeating: false, count: 256)
    private(set) var entries: [Entry] = []

    init(detectors: [any Detector]) {
        for (d, detector) in detectors.enumerated() {
            for (k, keyword) in detector.keywords.enumerated() {
                let entry = Entry(detector: d, index: k, bytesStart: keywordBytes.count, length: keyword.bytes.count,
                                  anchorOffset: keyword.anchorOffset, caseInsensitive: keyword.caseInsensitive)
                keywordBytes += keyword.bytes
                entries.append(entry)
                let a = keyword.bytes[keyword.anchorOffset]
                let seconds = keyword.bytes.count == 1 ? (0..<256).map(UInt8.init) : variants(keyword.bytes[keyword.anchorOffset + 1], keyword.caseInsensitive)
                for first in variants(a, keyword.caseInsensitive) {
                    for second in seconds { add(pair: Int(first) << 8 | Int(second), entry) }
                }
                for first in variants(keyword.bytes[0], keyword.caseInsensitive) { startsKeyword[Int(first)] = true }
            }
        }
        flatten()
    }

    /// Lays the entries of each pair side by side, after all keywords are in.
    private mutating func flatten() {
        for pair in 0..<65536 where slots[pair] != 0 {
            let list = lists[Int(slots[pair]) - 1]
            flatRanges[pair] = UInt32(flatEntries.count) << 8 | UInt32(list.count)
            flatEntries += list
        }
    }

    /// The entries of `pair` as a range of `flatEntries`.
    @inline(__always)
    func entryRange(forPair pair: Int) -> Range<Int> {
        let packed = Int(flatRanges[pair])
        return (packed >> 8)..<((packed >> 8) + (packed & 0xFF))
    }

    private mutating func add(pair: Int, _ entry: Entry) {
        bits[pair >> 6] |= 1 << UInt64(pair & 63)
        if slots[pair] == 0 {
            lists.append([])
            slots[pair] = UInt16(lists.count)
        }
        lists[Int(slots[pair]) - 1].append(entry)
    }

    private func variants(_ byte: UInt8, _ caseInsensitive: Bool) -> [UInt8] {
        guard caseInsensitive, (0x61...0x7A).contains(byte) else { return [byte] }
        return [byte, byte & ~0x20]
    }

    /// The first index in `from..<end` from which the bytes up to `end` are a proper prefix of
    /// some keyword (so a keyword may be starting there), or `end`.
    func partialKeywordStart(_ base: UnsafePointer<UInt8>, from: Int, end: Int) -> Int {
        var j = max(from, end - MaskingLimits.maxKeywordLength + 1)
        while j < end {
            if startsKeyword[Int(base[j])] {
                for entry in entries where entry.length > end - j {
                    var k = 0
                    while j + k < end, (entry.caseInsensitive ? asciiLower(base[j + k]) : base[j + k]) == keywordBytes[entry.bytesStart + k] { k += 1 }
                    if j + k == end { return j }
                }
            }
            j += 1
        }
        return end
    }
}

extension MaskingLimits {
    /// Keywords longer than this are refused (custom rules): the tail check looks this far back.
    static let maxKeywordLength = 64
}
