/// The values under a Kubernetes Secret's `data:` and `stringData:` (YAML, as `kubectl get
/// secret -o yaml` prints it, or JSON). `stringData` exists only in Secrets; `data` also in
/// ConfigMaps, so its values are masked when `kind: Secret` is within reach (before, or after:
/// kubectl sorts `data` before `kind`) or when every value is base64 as a Secret's are.
/// A block longer than one window is followed into the next one.
struct KubernetesSecretDetector: Detector {
    static let rule = "kubernetes-secret-data"
    let keywords = [Keyword("data:", anchorOffset: 3), Keyword("stringData:", anchorOffset: 5), Keyword("\"data\":", anchorOffset: 4), Keyword("\"stringData\":", anchorOffset: 6)]
    var ruleNames: [String] { [Self.rule] }

    private static let yamlKind = Array("kind: Secret".utf8)
    private static let jsonKind = Array("\"kind\": \"Secret\"".utf8)

    /// Where a YAML block's parse stands at a window's end.
    struct BlockState {
        var indent: Int              // the `data:` line's indent; keys are deeper
        var scalarIndent: Int?       // inside `key: |`, the key's indent
        var inValue = false          // the window ended inside a value line

        init(indent: Int, scalarIndent: Int? = nil, inValue: Bool = false) {
            self.indent = indent
            self.scalarIndent = scalarIndent
            self.inValue = inValue
        }

        init(encoded: Int) {
            indent = encoded & 0xFFF
            let scalar = (encoded >> 12) & 0xFFF
            scalarIndent = scalar == 0 ? nil : scalar - 1
            inValue = encoded & (1 << 24) != 0
        }

        var encoded: Int { (indent & 0xFFF) | (((scalarIndent.map { $0 + 1 }) ?? 0) << 12) | (inValue ? 1 << 24 : 0) | (1 << 25) }
    }

    func quickCheck(_ w: ByteWindow, keywordStart: Int, keyword: Int) -> QuickVerdict {
        if keyword >= 2 { return .candidate }
        // YAML: the key alone at the start of its line, nothing after it.
        if let before = w.byte(keywordStart - 1), before != UInt8(ascii: " "), before != 0x0A, before != 0x0D { return .reject }
        let after = w.skip(.space, from: keywordStart + keywords[keyword].bytes.count, limit: keywordStart + 40)
        guard let next = w.byte(after) else { return w.isComplete ? .reject : .needMore }
        return next == 0x0A || next == 0x0D ? .candidate : .reject
    }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules: EnabledRules) -> DetectorMatch? {
        guard rules.contains(Self.rule), quickCheck(w, keywordStart: keywordStart, keyword: keyword) == .candidate else { return nil }
        let stringData = keyword == 1 || keyword == 3
        if keyword >= 2 { return json(w, from: keywordStart + keywords[keyword].bytes.count, stringData: stringData) }
        guard let lineStart = w.lineStart(of: keywordStart, limit: 128), (lineStart..<keywordStart).allSatisfy({ w[$0] == UInt8(ascii: " ") }) else { return nil }
        let firstLine = w.lineEnd(from: keywordStart) + 1
        let found = yaml(w, from: firstLine, state: BlockState(indent: keywordStart - lineStart))
        guard !found.ranges.isEmpty else { return nil }
        if !stringData && !hasSecretContext(w, yaml: true) && !allBase64(w, found.ranges) { return nil }
        return found
    }

    func resume(_ w: ByteWindow, at start: Int, state: Int, rules: EnabledRules) -> DetectorMatch? {
        guard rules.contains(Self.rule) else { return nil }
        let state = BlockState(encoded: state)
        // A resume starts where the last mask ended: inside a value line, or on the line of the
        // last value (whose rest is skipped).
        let found = yaml(w, from: state.inValue ? start : w.lineEnd(from: start) + 1, state: state)
        return found.ranges.isEmpty ? nil : found
    }

    private func hasSecretContext(_ w: ByteWindow, yaml: Bool) -> Bool {
        let text = yaml ? Self.yamlKind : Self.jsonKind
        guard let at = w.find(text, from: w.lower, to: w.upper) else { return false }
        guard let next = w.byte(at + text.count) else { return true }
        return !ByteClass.byte(next, isIn: .alphanumeric)
    }

    private func allBase64(_ w: ByteWindow, _ ranges: [FoundRange]) -> Bool {
        // A value cut by the window's end is judged by its characters alone.
        ranges.allSatisfy { r in r.end - r.start >= 4 && ((r.end - r.start) % 4 == 0 || r.end == w.upper)
            && (r.start..<r.end).allSatisfy { ByteClass.byte(w[$0], isIn: ByteClass.base64.union(.equals)) } }
            && ranges.contains { $0.end - $0.start >= 16 }
    }

    /// Masks the values of `key: value` lines deeper than `state.indent`, and the lines of
    /// block scalars (`key: |`), until a line at the block's indent or shallower.
    private func yaml(_ w: ByteWindow, from: Int, state initial: BlockState) -> DetectorMatch {
        var state = initial
        var ranges: [FoundRange] = []
        var i = from
        // The state as of the last mask: a resume starts at that mask's end.
        var stateAtLastMask = state
        func add(_ start: Int, _ end: Int) {
            guard end > start else { return }
            ranges.append(FoundRange(start: start, end: end, rule: Self.rule))
            stateAtLastMask = state
            stateAtLastMask.inValue = false
        }
        if state.inValue {
            let end = w.lineEnd(from: i)
            add(i, end)
            if end == w.upper { return DetectorMatch(ranges: ranges, continuation: state.encoded) }
            state.inValue = false
            i = end + 1
        }
        while i < w.upper {
            let end = w.lineEnd(from: i)
            let contentStart = w.skip(.space, from: i, limit: end)
            let indent = contentStart - i
            if contentStart == end {
                if end == w.upper { break }
                i = end + 1
                continue
            }
            if indent <= state.indent { return DetectorMatch(ranges: ranges) }
            if let scalar = state.scalarIndent, indent > scalar {
                add(contentStart, end)
                if end == w.upper { state.inValue = true; return DetectorMatch(ranges: ranges, continuation: state.encoded) }
                i = end + 1
                continue
            }
            state.scalarIndent = nil
            var keyEnd = w.skip([.lower, .upper, .digit, .dot, .underscore, .dash], from: contentStart, limit: end)
            if keyEnd == contentStart, w.byte(contentStart) == UInt8(ascii: "\"") {
                keyEnd = w.skip([.lower, .upper, .digit, .dot, .underscore, .dash], from: contentStart + 1, limit: end)
                guard w.byte(keyEnd) == UInt8(ascii: "\"") else { return DetectorMatch(ranges: ranges) }
                keyEnd += 1
            }
            guard keyEnd > contentStart, w.byte(keyEnd) == UInt8(ascii: ":") else { return DetectorMatch(ranges: ranges) }
            var valueStart = w.skip(.space, from: keyEnd + 1, limit: end)
            var valueEnd = end
            while valueEnd > valueStart, ByteClass.byte(w[valueEnd - 1], isIn: .space) { valueEnd -= 1 }
            if valueEnd == w.upper {
                // The window ends inside this value: mask what is here, go on in the next window.
                add(valueStart, valueEnd)
                state.inValue = true
                return DetectorMatch(ranges: ranges, continuation: state.encoded)
            }
            if valueEnd > valueStart, let b = w.byte(valueStart), b == UInt8(ascii: "|") || b == UInt8(ascii: ">") {
                state.scalarIndent = indent
            } else {
                if valueEnd - valueStart >= 2, let q = w.byte(valueStart), q == UInt8(ascii: "\"") || q == UInt8(ascii: "'"), w[valueEnd - 1] == q {
                    valueStart += 1
                    valueEnd -= 1
                }
                add(valueStart, valueEnd)
            }
            i = end + 1
        }
        // The window ended between lines: the block may go on.
        return DetectorMatch(ranges: ranges, continuation: stateAtLastMask.encoded)
    }

    /// `"data": { "key": "value", … }`: every value string.
    private func json(_ w: ByteWindow, from: Int, stringData: Bool) -> DetectorMatch? {
        var i = w.skip([.space, .lineBreak], from: from)
        guard w.byte(i) == UInt8(ascii: "{") else { return nil }
        i += 1
        var ranges: [FoundRange] = []
        func string(at start: Int) -> Range<Int>? {
            guard w.byte(start) == UInt8(ascii: "\"") else { return nil }
            var j = start + 1
            while j < w.upper {
                if w[j] == UInt8(ascii: "\\") { j += 2; continue }
                if w[j] == UInt8(ascii: "\"") { return (start + 1)..<j }
                if w[j] == 0x0A { return nil }
                j += 1
            }
            return nil
        }
        while true {
            i = w.skip([.space, .lineBreak], from: i)
            guard let key = string(at: i) else { break }
            i = w.skip(.space, from: key.upperBound + 1)
            guard w.byte(i) == UInt8(ascii: ":") else { break }
            i = w.skip(.space, from: i + 1)
            guard let value = string(at: i) else { break }
            if !value.isEmpty { ranges.append(FoundRange(start: value.lowerBound, end: value.upperBound, rule: Self.rule)) }
            i = w.skip([.space, .lineBreak], from: value.upperBound + 1)
            guard w.byte(i) == UInt8(ascii: ",") else { break }
            i += 1
        }
        guard !ranges.isEmpty, stringData || hasSecretContext(w, yaml: false) || allBase64(w, ranges) else { return nil }
        return DetectorMatch(ranges: ranges)
    }
}
