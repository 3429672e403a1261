/// Secrets in space-separated configuration lines: `.netrc` (`machine h login u password S`,
/// or `password S` on a line of its own), redis.conf (`requirepass S`, `masterauth S`). The
/// value is the line's last word; a line that goes on after it is prose, not a directive.
struct DirectiveDetector: Detector {
    static let rule = AssignmentDetector.secretRule
    static let directives = ["password ", "passwd ", "requirepass ", "masterauth "]
    let keywords = DirectiveDetector.directives.map { Keyword($0) }
    let tokens: PrefixedTokenDetector
    var ruleNames: [String] { [Self.rule] }
    /// Words of a `.netrc` line that may follow a password.
    static let netrcWords = ["machine ", "login ", "account ", "default", "macdef "].map { Array($0.utf8) }

    func quickCheck(_ w: ByteWindow, keywordStart: Int, keyword: Int) -> QuickVerdict {
        if let before = w.byte(keywordStart - 1), !ByteClass.byte(before, isIn: [.space, .lineBreak]) { return .reject }
        return .candidate
    }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules: EnabledRules) -> DetectorMatch? {
        let keywordEnd = keywordStart + keywords[keyword].bytes.count
        // On a line of its own, or after `.netrc`'s `machine`/`login` words on the same line.
        guard let lineStart = w.lineStart(of: keywordStart, limit: 512) else { return nil }
        let indent = w.skip(.space, from: lineStart, limit: keywordStart)
        if indent != keywordStart {
            guard keyword <= 1, w.find(Self.netrcWords[1], from: lineStart, to: keywordStart) != nil else { return nil }
        }
        var start = w.skip(.space, from: keywordEnd, limit: keywordEnd + 16)
        var quoted = false
        var end = start
        if let q = w.byte(start), q == UInt8(ascii: "\"") || q == UInt8(ascii: "'") {
            quoted = true
            start += 1
            end = start
            while end < w.upper, w[end] != q, w[end] != 0x0A, w[end] != 0x0D { end += 1 }
            guard w.byte(end) == q else { return nil }
        } else {
            while end < w.upper, w[end] > 0x20, w[end] != 0x7F { end += 1 }
        }
        guard end > start else { return nil }
        // The value ends the line (or a `.netrc` word follows it).
        let after = w.skip(.space, from: end + (quoted ? 1 : 0), limit: end + 64)
        if let next = w.byte(after), next != 0x0A, next != 0x0D {
            guard Self.netrcWords.contains(where: { w.matches($0, at: after) }) else { return nil }
        } else if after >= w.upper && !w.isComplete {
            return nil
        }
        let value = start..<end
        guard ValueShape.isPlausibleSecret(w, value, quoted: quoted, key: keywordStart..<(keywordEnd - 1), terminator: nil, wholeLine: true) else { return nil }
        // A word of lowercase letters (`password required`, `passwd changed`) is prose unless long.
        guard value.count >= 16 || value.contains(where: { !ByteClass.byte(w[$0], isIn: .lower) }) else { return nil }
        guard let name = [tokens.ruleName(forValue: value, in: w, enabled: rules), Self.rule].compactMap({ $0 }).first(where: rules.contains) else { return nil }
        return DetectorMatch(ranges: [FoundRange(start: value.lowerBound, end: value.upperBound, rule: name)])
    }
}
