/// Masks one output stream (a channel's stdout or stderr) as it flows. One per stream; not
/// shared between threads (a value type: the pump owns it).
///
/// `feed` takes each chunk as it arrives and returns what may be released now; `flush` (the
/// pump calls it at EOF, or when the stream has been idle ~50 ms) releases the rest. In between
/// the masker holds back fewer than `MaskingLimits.holdbackLimit` bytes: a keyword waits until
/// the window after it has arrived, so a secret split across reads is still caught, and the
/// output is the same for any chunking of the same bytes (as long as no flush falls between).
public struct StreamMasker: Sendable {
    public let mode: MaskingMode
    let rules: MaskingRules

    /// Raw bytes from stream offset `bufferStart`: history kept for lookbehind, then the bytes
    /// not yet released. Every position below is an index into it.
    private var buffer: [UInt8] = []
    private var bufferStart: UInt64 = 0
    /// Bytes before this are released.
    private var released = 0
    /// The next anchor position to examine.
    private var scanPosition = 0
    /// The end of the last accepted mask: a new one must start at or after it.
    private var cursor = 0
    /// Found, not yet released.
    private var pending: [FoundRange] = []
    /// A block (a long private key, a Secret's data) still being masked at `cursor`.
    private var continuation: (detector: Int, state: Int)?
    /// The last record released: a record continuing it (same rule, adjacent) shows no new marker.
    private var lastRecord: MaskRecord?

    /// Whether each output carries the raw bytes it released (`MaskedOutput.raw`).
    public let collectsRaw: Bool

    public init(rules: MaskingRules = .builtin, mode: MaskingMode, collectsRaw: Bool = false) {
        self.rules = rules
        self.mode = mode
        self.collectsRaw = collectsRaw
    }

    /// Raw bytes fed so far.
    public var rawCount: UInt64 { bufferStart + UInt64(buffer.count) }
    /// Raw bytes fed but not yet released.
    public var heldBackCount: Int { buffer.count - released }
    /// Bytes kept in memory (held back, and history for lookbehind).
    public var bufferedCount: Int { buffer.count }

    public mutating func feed(_ chunk: [UInt8]) -> MaskedOutput {
        chunk.withUnsafeBufferPointer { feed(UnsafeRawBufferPointer($0)) }
    }

    public mutating func feed(_ chunk: UnsafeRawBufferPointer) -> MaskedOutput {
        var output = MaskedOutput()
        feed(chunk, into: &output)
        return output
    }

    /// Appends to `output` (the pump may reuse one across calls to spare allocations).
    public mutating func feed(_ chunk: UnsafeRawBufferPointer, into output: inout MaskedOutput) {
        // Typed, so the copy is one memcpy rather than a byte-by-byte sequence append.
        buffer.append(contentsOf: chunk.assumingMemoryBound(to: UInt8.self))
        scan(final: false)
        release(into: &output)
        compact()
    }

    public mutating func flush() -> MaskedOutput {
        var output = MaskedOutput()
        flush(into: &output)
        return output
    }

    public mutating func flush(into output: inout MaskedOutput) {
        scan(final: true)
        release(into: &output)
        compact()
    }

    // MARK: - Scanning

    /// Where the released bytes may go up to after a scan.
    private var safeEnd = 0

    private mutating func scan(final: Bool) {
        let n = buffer.count
        let table = rules.anchors
        let enabled = rules.enabled
        let detectors = rules.detectors
        let assignmentIndex = rules.assignmentDetectorIndex
        var newPending: [FoundRange] = []
        var position = scanPosition
        var blockedAt: Int? = nil
        var cursor = self.cursor
        var continuation = self.continuation
        let streamStart = -Int(bufferStart)   // index of the stream's first byte (≤ 0 once compacted)

        buffer.withUnsafeBufferPointer { raw in
            guard let base = raw.baseAddress else { return }
            func window(from keywordStart: Int, span: Int) -> ByteWindow {
                let lower = max(0, keywordStart - MaskingLimits.lookbehind)
                return ByteWindow(base: base, lower: lower, upper: min(n, keywordStart + span),
                                  isComplete: final || n >= keywordStart + span, lowerIsStreamStart: lower == streamStart)
            }
            func keywordMatches(_ entry: AnchorTable.Entry, at start: Int) -> Bool {
                table.keywordBytes.withUnsafeBufferPointer { keyword in
                    for k in 0..<entry.length {
                        let b = entry.caseInsensitive ? asciiLower(base[start + k]) : base[start + k]
                        if b != keyword[entry.bytesStart + k] { return false }
                    }
                    return true
                }
            }
            /// Accepts a detector's answer if its ranges are sane and clear of binary data.
            func accept(_ found: DetectorMatch, keywordStart: Int, window: ByteWindow) -> Bool {
                var ranges: [FoundRange] = []
                for range in found.ranges {
                    let start = max(range.start, released)
                    guard range.start >= keywordStart, start >= cursor, range.end > start, range.end <= window.upper else { continue }
                    guard TextCheck.isText(window, around: start..<range.end) else { return false }
                    ranges.append(FoundRange(start: start, end: range.end, rule: range.rule))
                }
                guard let last = ranges.last else { return false }
                newPending.append(contentsOf: ranges)
                cursor = last.end
                return true
            }

            scanning: while true {
                if let (d, state) = continuation {
                    guard final || n >= cursor + MaskingLimits.window, cursor < n else { blockedAt = nil; break scanning }
                    let w = window(from: cursor, span: MaskingLimits.window)
                    let before = cursor
                    if let found = detectors[d].resume(w, at: cursor, state: state, rules: enabled), accept(found, keywordStart: before, window: w),
                       found.continuation != nil, cursor > before {
                        continuation = (d, found.continuation!)
                    } else {
                        continuation = nil
                    }
                    position = max(position, cursor)
                    if continuation != nil { continue scanning }
                }
                // The hot loop: one bit test per byte, a rolling pair.
                guard position + 1 < n else { break scanning }
                var i = position
                var pair = 0
                var hit = false
                table.bits.withUnsafeBufferPointer { bits in
                    // Each pair read afresh (two loads) rather than rolled: no chain from one byte to the next.
                    while i + 1 < n {
                        pair = Int(base[i]) &<< 8 | Int(base[i + 1])
                        if bits[pair &>> 6] & (1 &<< UInt64(pair & 63)) != 0 { hit = true; return }
                        i += 1
                    }
                }
                position = i
                guard hit else { break scanning }
                var decided = false
                for e in table.entryRange(forPair: pair) {
                    let entry = table.flatEntries[e]
                    let keywordStart = i - entry.anchorOffset
                    guard keywordStart >= cursor, keywordStart >= 0 else { continue }
                    // `:` not followed by a space or quote (`12:30`, `http:`) is most of the hits on
                    // ordinary output: turned away before anything else (the pair holds the next byte).
                    if entry.length == 1, base[i] == UInt8(ascii: ":"), !AssignmentDetector.mayFollowColon(base[i + 1]) { continue }
                    let quick = window(from: keywordStart, span: MaskingLimits.quickSpan)
                    if keywordStart + entry.length > quick.upper {
                        if quick.isComplete { continue }
                        blockedAt = i; break scanning
                    }
                    // A one-byte keyword is the anchor's first byte, which the table already matched.
                    guard entry.length == 1 || keywordMatches(entry, at: keywordStart) else { continue }
                    // The separators `:` and `=` are most hits on ordinary output: their cheap
                    // rejection runs without going through the detector table.
                    if entry.length == 1, entry.detector == assignmentIndex,
                       AssignmentDetector.rejectsSeparator(quick, at: keywordStart, colon: base[keywordStart] == UInt8(ascii: ":")) { continue }
                    let detector = detectors[entry.detector]
                    switch detector.quickCheck(quick, keywordStart: keywordStart, keyword: entry.index) {
                    case .reject: continue
                    case .needMore:
                        if quick.isComplete { continue }
                        blockedAt = i; break scanning
                    case .candidate: break
                    }
                    guard final || n >= keywordStart + MaskingLimits.window else { blockedAt = i; break scanning }
                    let full = window(from: keywordStart, span: MaskingLimits.window)
                    if let found = detector.match(full, keywordStart: keywordStart, keyword: entry.index, rules: enabled),
                       accept(found, keywordStart: keywordStart, window: full) {
                        if let state = found.continuation { continuation = (entry.detector, state) }
                        decided = true
                        break
                    }
                }
                position = decided ? max(i + 1, cursor) : i + 1
            }
            if final {
                safeEnd = n
            } else if let blockedAt {
                safeEnd = max(cursor, blockedAt - MaskingLimits.maxAnchorOffset)
            } else if continuation != nil {
                safeEnd = cursor
            } else {
                safeEnd = max(cursor, table.partialKeywordStart(base, from: max(released, position - MaskingLimits.maxAnchorOffset), end: n))
            }
            safeEnd = min(n, max(safeEnd, released))
        }
        pending.append(contentsOf: newPending)
        scanPosition = position
        self.cursor = cursor
        self.continuation = continuation
    }

    // MARK: - Releasing

    private mutating func release(into output: inout MaskedOutput) {
        let end = safeEnd
        defer { output.rawReleased = bufferStart + UInt64(released) }
        guard end > released else { return }
        let offset = bufferStart
        var records: [MaskRecord] = []
        var kept: [FoundRange] = []
        for range in pending {
            if range.start < end {
                records.append(MaskRecord(offset: offset + UInt64(range.start), length: range.end - range.start, rule: range.rule))
            } else {
                kept.append(range)
            }
        }
        pending = kept
        let mode = self.mode
        let start = released
        let collectsRaw = self.collectsRaw
        buffer.withUnsafeBufferPointer { raw in
            let piece = UnsafeBufferPointer(rebasing: raw[start..<end])
            if collectsRaw { output.raw.append(contentsOf: piece) }
            if records.isEmpty {
                output.bytes.append(contentsOf: piece)
            } else {
                let withPredecessor = lastRecord.map { [$0] + records } ?? records
                MaskedView.append(raw: piece, at: offset + UInt64(start), records: withPredecessor, mode: mode, to: &output.bytes)
            }
        }
        output.masks.append(contentsOf: records)
        if let last = records.last { lastRecord = last }
        released = end
    }

    /// Drops history the matchers can no longer look at, once enough of it has piled up.
    private mutating func compact() {
        // Matchers read back from a keyword (never before the scan position less the anchor
        // offset) or from a pending continuation's cursor; `cursor` alone may lag far behind.
        var oldestNeeded = min(released, scanPosition - MaskingLimits.maxAnchorOffset)
        if continuation != nil { oldestNeeded = min(oldestNeeded, cursor) }
        let keep = oldestNeeded - MaskingLimits.lookbehind
        guard keep >= 16384 || (keep > 0 && keep * 2 >= buffer.count) else { return }
        // Moved down inside the same storage: `removeFirst` may hand back a fresh allocation,
        // and fresh pages per feed cost more than the scan.
        let remaining = buffer.count - keep
        buffer.withUnsafeMutableBufferPointer { p in
            guard let base = p.baseAddress else { return }
            base.update(from: base + keep, count: remaining)
        }
        buffer.removeLast(keep)
        bufferStart += UInt64(keep)
        released -= keep
        scanPosition -= keep
        cursor = max(cursor - keep, -1)
        safeEnd -= keep
        pending = pending.map { FoundRange(start: $0.start - keep, end: $0.end - keep, rule: $0.rule) }
    }
}
