/// PHP's `define('DB_PASSWORD', 'value');` (wp-config.php and its salts `AUTH_KEY`, …): the
/// constant's name says what its value is, as a key does in an assignment.
struct ConstantDefinitionDetector: Detector {
    static let rule = AssignmentDetector.secretRule
    let keywords = [Keyword("define(")]
    let tokens: PrefixedTokenDetector
    var ruleNames: [String] { [Self.rule] }

    /// A quoted PHP string starting at `i`: its contents, or nil.
    static func quoted(_ w: ByteWindow, at i: Int) -> Range<Int>? {
        guard let q = w.byte(i), q == UInt8(ascii: "'") || q == UInt8(ascii: "\"") else { return nil }
        var j = i + 1
        while j < w.upper, w[j] != q {
            if w[j] == 0x0A || w[j] == 0x0D { return nil }
            if w[j] == UInt8(ascii: "\\") { j += 1 }
            j += 1
        }
        return j < w.upper ? (i + 1)..<j : nil
    }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules: EnabledRules) -> DetectorMatch? {
        var i = w.skip(.space, from: keywordStart + 7, limit: keywordStart + 16)
        guard let name = Self.quoted(w, at: i), name.allSatisfy({ ByteClass.byte(w[$0], isIn: ByteClass.keyName) }) else { return nil }
        let kind = SecretKeyNames.classify(w, name)
        guard kind == .secret || kind == .awsSecret || kind == .weak else { return nil }
        i = w.skip(.space, from: name.upperBound + 1, limit: name.upperBound + 8)
        guard w.byte(i) == UInt8(ascii: ",") else { return nil }
        i = w.skip(.space, from: i + 1, limit: i + 16)
        guard let value = Self.quoted(w, at: i), value.count >= 6, !ValueShape.isPlaceholder(w, value, quoted: true),
              !value.contains(where: { ByteClass.byte(w[$0], isIn: .space) }) else { return nil }
        // A weak name (`NONCE_SALT`, `AUTH_KEY` is strong) needs a random-looking value.
        if kind == .weak, !Entropy.looksRandom(w, value) { return nil }
        guard let rule = [tokens.ruleName(forValue: value, in: w, enabled: rules), Self.rule].compactMap({ $0 }).first(where: rules.contains) else { return nil }
        return DetectorMatch(ranges: [FoundRange(start: value.lowerBound, end: value.upperBound, rule: rule)])
    }
}
