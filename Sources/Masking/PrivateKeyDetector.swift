/// PEM and OpenSSH private key blocks, masked whole from `-----BEGIN … PRIVATE KEY-----` to
/// the end of the matching END line. A block longer than one window (an 8192-bit RSA key) is
/// masked window by window up to its END, as long as its lines still look like key material.
/// Also finds blocks whose line breaks are JSON escapes (`\n`), as in a service-account file.
struct PrivateKeyDetector: Detector {
    static let rule = "private-key"
    let keywords = [Keyword("-----BEGIN ")]
    var ruleNames: [String] { [Self.rule] }

    private static let privateKey = Array("PRIVATE KEY".utf8)
    private static let dashes = Array("-----".utf8)
    private static let endMarker = Array("-----END ".utf8)

    func quickCheck(_ w: ByteWindow, keywordStart: Int, keyword: Int) -> QuickVerdict {
        // The label must say PRIVATE KEY before the closing dashes of the BEGIN line.
        let labelStart = keywordStart + 11
        let limit = min(w.upper, labelStart + 48)
        guard let close = w.find(Self.dashes, from: labelStart, to: limit) else { return w.isComplete || w.upper >= labelStart + 48 ? .reject : .needMore }
        return w.find(Self.privateKey, from: labelStart, to: close) != nil ? .candidate : .reject
    }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules: EnabledRules) -> DetectorMatch? {
        guard rules.contains(Self.rule), quickCheck(w, keywordStart: keywordStart, keyword: keyword) == .candidate,
              let close = w.find(Self.dashes, from: keywordStart + 11, to: keywordStart + 11 + 48) else { return nil }
        return body(w, from: close + 5, blockStart: keywordStart)
    }

    func resume(_ w: ByteWindow, at start: Int, state: Int, rules: EnabledRules) -> DetectorMatch? {
        guard rules.contains(Self.rule) else { return nil }
        return body(w, from: start, blockStart: start)
    }

    /// From `from` (inside the block) to the END line's closing dashes; or, with no END in
    /// this window, over the key-like bytes: to the window's end (and on from there in the next
    /// window), or to the last line break before the first byte that is not key material (the
    /// output was cut short and no END will come).
    private func body(_ w: ByteWindow, from: Int, blockStart: Int) -> DetectorMatch? {
        if let end = w.find(Self.endMarker, from: from, to: w.upper),
           let close = w.find(Self.dashes, from: end + 9, to: min(w.upper, end + 9 + 48)),
           isKeyMaterial(w, from..<end) {
            return DetectorMatch(ranges: [FoundRange(start: blockStart, end: close + 5, rule: Self.rule)])
        }
        var i = from
        var lastLineBreak: Int? = nil
        while i < w.upper, isKeyMaterial(w[i]) {
            if w[i] == 0x0A { lastLineBreak = i }
            i += 1
        }
        if i == w.upper {
            guard w.upper > blockStart else { return nil }
            return DetectorMatch(ranges: [FoundRange(start: blockStart, end: w.upper, rule: Self.rule)], continuation: 1)
        }
        guard let lastLineBreak, lastLineBreak > blockStart else { return nil }
        return DetectorMatch(ranges: [FoundRange(start: blockStart, end: lastLineBreak, rule: Self.rule)])
    }

    /// Base64 lines, PEM headers (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: …`, `Comment: "…"`),
    /// line breaks literal or escaped.
    private func isKeyMaterial(_ w: ByteWindow, _ range: Range<Int>) -> Bool {
        range.allSatisfy { isKeyMaterial(w[$0]) }
    }

    @inline(__always)
    private func isKeyMaterial(_ b: UInt8) -> Bool {
        ByteClass.byte(b, isIn: [.lower, .upper, .digit, .plus, .slash, .equals, .space, .lineBreak, .dash, .dot, .underscore])
            || b == UInt8(ascii: ":") || b == UInt8(ascii: ",") || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\")
    }
}
