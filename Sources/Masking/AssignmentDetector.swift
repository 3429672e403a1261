/// Values after keys that name a secret, in the shapes command output shows them:
/// `DB_PASSWORD=…`, `export TOKEN="…"`, `password: …` (YAML), `"client_secret": "…"` (JSON),
/// `password = …` (INI), `--token=…` (a command line in `ps`), `"API_KEY=…"` (an env list in
/// `docker inspect`), `Authorization: Bearer …`. Anchored on the separator (`=` or `:`); the key
/// is read backwards from it, so a key that names nothing secret costs a few byte compares.
struct AssignmentDetector: Detector {
    static let secretRule = "secret-assignment"
    static let entropyRule = "high-entropy-assignment"
    static let awsSecretRule = "aws-secret-access-key"
    static let authorizationRule = "authorization-header"

    /// `:` and `=` separate keys from values; the flags take their value as the next word
    /// (`docker login --password …`, `mysql --password …` in a CI log or in `ps`).
    static let flags = ["--password", "--passwd", "--token", "--api-key", "--apikey", "--secret", "--client-secret", "--access-token",
                        "--auth-token", "--secret-key", "--access-key-secret", "--requirepass", "--masterauth", "--db-password", "--admin-password"]
    let keywords = [Keyword(":"), Keyword("=")] + AssignmentDetector.flags.map { Keyword($0 + " ") }
    let tokens: PrefixedTokenDetector
    var ruleNames: [String] { [Self.secretRule, Self.entropyRule, Self.awsSecretRule, Self.authorizationRule] }

    /// The key before the separator at `separator`: skips spaces and a closing quote (an escaped
    /// one too, as in a JSON string holding JSON), then reads key characters backwards.
    static func key(_ w: ByteWindow, separator: Int) -> Range<Int>? {
        var end = separator
        while end > max(w.lower, separator - 4), w[end - 1] == 0x20 || w[end - 1] == 0x09 { end -= 1 }
        if let q = w.byte(end - 1), q == UInt8(ascii: "\"") || q == UInt8(ascii: "'") {
            end -= 1
            if w.byte(end - 1) == UInt8(ascii: "\\") { end -= 1 }
        }
        // Key characters by comparison, not the class table: this runs at most separators.
        var start = end
        let stop = max(w.lower, end - 96)
        while start > stop {
            let b = w[start - 1]
            guard (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2D || b == 0x2E else { break }
            start -= 1
        }
        guard end - start >= 2, end - start < 96 else { return nil }
        return start..<end
    }

    func quickCheck(_ w: ByteWindow, keywordStart: Int, keyword: Int) -> QuickVerdict {
        if keyword >= 2 {
            // A flag: a word of its own, its value a word that does not start with `-`.
            if let before = w.byte(keywordStart - 1), !ByteClass.byte(before, isIn: [.space, .lineBreak]), before != UInt8(ascii: "\"") { return .reject }
            guard let next = w.byte(keywordStart + keywords[keyword].bytes.count) else { return w.isComplete ? .reject : .needMore }
            return next == UInt8(ascii: "-") || ByteClass.byte(next, isIn: [.space, .lineBreak]) ? .reject : .candidate
        }
        if w.byte(keywordStart + 1) == nil { return w.isComplete ? .reject : .needMore }
        return Self.rejectsSeparator(w, at: keywordStart, colon: keyword == 0) ? .reject : .candidate
    }

    /// True when the separator at `separator` cannot start a secret's value: not `key: value`
    /// or `"key":"value"` (`12:30`, `http://`, `::`), not `key=value` (`==`, `!=`, `<=`, `:=`,
    /// `=>`), or the key names nothing secret. Reads one byte past the separator at most; with
    /// that byte not there yet it does not reject.
    @inline(__always)
    static func mayFollowColon(_ next: UInt8) -> Bool {
        next == UInt8(ascii: " ") || next == UInt8(ascii: "\t") || next == UInt8(ascii: "\"") || next == UInt8(ascii: "'") || next == UInt8(ascii: "\\")
    }

    @inline(__always)
    static func rejectsSeparator(_ w: ByteWindow, at separator: Int, colon: Bool) -> Bool {
        guard let next = w.byte(separator + 1) else { return false }
        if colon {
            guard mayFollowColon(next) else { return true }
        } else {
            if let previous = w.byte(separator - 1), previous == UInt8(ascii: "=") || previous == UInt8(ascii: "!") || previous == UInt8(ascii: "<")
                || previous == UInt8(ascii: ">") || previous == UInt8(ascii: ":") { return true }
            if next == UInt8(ascii: "=") || next == UInt8(ascii: ">") || next == 0x0A || next == 0x0D { return true }
        }
        guard let key = key(w, separator: separator), SecretKeyNames.mightNameSecret(w, key) || isValueKey(w, key) else { return true }
        return false
    }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules: EnabledRules) -> DetectorMatch? {
        guard quickCheck(w, keywordStart: keywordStart, keyword: keyword) == .candidate else { return nil }
        if keyword >= 2 { return flagValue(w, flag: keywordStart..<(keywordStart + keywords[keyword].bytes.count - 1), rules: rules) }
        let separator = keywordStart
        guard let key = Self.key(w, separator: separator) else { return nil }
        var kind = SecretKeyNames.classify(w, key)
        if kind == .none, Self.isValueKey(w, key) { kind = Self.secretNamedBefore(w, key.lowerBound) }
        guard kind != .none, !Self.followsDeclarationWord(w, key) else { return nil }
        let queryString = w.byte(key.lowerBound - 1).map { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "&") } ?? false
        if kind == .authorization { return authorization(w, after: separator, rules: rules) }
        let wholeLine = Self.keyStartsLine(w, key)
        guard let value = Self.value(w, after: separator, colon: keyword == 0, stopAtAmpersand: queryString, wholeLine: wholeLine) else { return nil }
        let candidates: [String?]
        switch kind {
        case .none, .authorization: return nil
        case .awsSecret:
            // 40 characters of base64 after an AWS secret key's name, even starting with `/`.
            guard (ValueShape.isAWSSecretShape(w, value.range) && !ValueShape.isPlaceholder(w, value.range, quoted: value.quoted)) || ValueShape.isPlausibleSecret(w, value.range, quoted: value.quoted, key: key, terminator: value.terminator, wholeLine: value.wholeLine) else { return nil }
            candidates = [tokens.ruleName(forValue: value.range, in: w, enabled: rules),
                          ValueShape.isAWSSecretShape(w, value.range) ? Self.awsSecretRule : nil, Self.secretRule]
        case .secret:
            guard ValueShape.isPlausibleSecret(w, value.range, quoted: value.quoted, key: key, terminator: value.terminator, wholeLine: value.wholeLine) else { return nil }
            candidates = [tokens.ruleName(forValue: value.range, in: w, enabled: rules), Self.secretRule]
        case .weak:
            let token = tokens.ruleName(forValue: value.range, in: w, enabled: rules)
            guard token != nil || (ValueShape.isPlausibleSecret(w, value.range, quoted: value.quoted, key: key, terminator: value.terminator, wholeLine: value.wholeLine)
                                   && value.range.allSatisfy({ ByteClass.byte(w[$0], isIn: [.lower, .upper, .digit, .plus, .slash, .equals, .dash, .underscore, .dot]) })
                                   // Generated secrets of this length all but always hold a digit; code identifiers do not.
                                   && value.range.contains(where: { ByteClass.byte(w[$0], isIn: .digit) })
                                   && Entropy.looksRandom(w, value.range)) else { return nil }
            candidates = [token, Self.entropyRule]
        }
        guard let name = candidates.compactMap({ $0 }).first(where: rules.contains) else { return nil }
        return DetectorMatch(ranges: [FoundRange(start: value.range.lowerBound, end: value.range.upperBound, rule: name)])
    }

    /// The word before a spaced key that says it is not a secret's value: `public key: …`, or
    /// a declaration in source code (`let key: NIOSSLPrivateKey`, `private val token: String`).
    static let declarationWords: Set<String> = ["public", "let", "var", "val", "const", "final", "static", "private", "fileprivate",
                                                 "internal", "readonly", "def", "func", "fn", "mut", "pub", "protected", "inout", "override"]

    static func followsDeclarationWord(_ w: ByteWindow, _ key: Range<Int>) -> Bool {
        guard w.byte(key.lowerBound - 1) == UInt8(ascii: " ") else { return false }
        let start = w.skipBack(.letter, from: key.lowerBound - 1, limit: 12)
        return declarationWords.contains(ValueShape.lowercased(w, start..<(key.lowerBound - 1)))
    }

    struct Value {
        let range: Range<Int>
        let quoted: Bool
        /// The byte that ended an unquoted value (nil: line end or window end).
        let terminator: UInt8?
        /// All that followed an unquoted key on a line of its own.
        var wholeLine = false
    }

    /// `value` as a key: its secret is named by a neighbouring `name` (Kubernetes env, ECS).
    static func isValueKey(_ w: ByteWindow, _ key: Range<Int>) -> Bool {
        key.count == 5 && w.matches(valueWord, at: key.lowerBound, caseInsensitive: true)
    }

    /// What the lines just before a `value` key say it holds: `- name: DB_PASSWORD` then
    /// `value: …` (Kubernetes), `{"name": "API_TOKEN", "value": "…"}` (ECS, docker), or an
    /// entry marked `"sensitive": true` (Terraform output). Reads at most three lines back.
    static let nameWord = Array("name".utf8), sensitiveWord = Array("sensitive".utf8), trueWord = Array("true".utf8)
    static let valueWord = Array("value".utf8), commentStart = Array(" #".utf8)

    static func secretNamedBefore(_ w: ByteWindow, _ end: Int) -> KeyKind {
        var from = end, breaks = 0
        let stop = max(w.lower, end - 400)
        while from > stop {
            if w[from - 1] == 0x0A { breaks += 1; if breaks > 3 { break } }
            from -= 1
        }
        var kind = KeyKind.none
        var at = from
        while let found = w.find(Self.nameWord, from: at, to: end) {
            at = found + 4
            if let before = w.byte(found - 1), ByteClass.byte(before, isIn: ByteClass.keyName) { continue }
            var i = found + 4
            if let q = w.byte(i), q == UInt8(ascii: "\"") || q == UInt8(ascii: "'") { i += 1 }
            i = w.skip(.space, from: i, limit: i + 4)
            guard let separator = w.byte(i), separator == UInt8(ascii: ":") || separator == UInt8(ascii: "=") else { continue }
            i = w.skip(.space, from: i + 1, limit: i + 8)
            if let q = w.byte(i), q == UInt8(ascii: "\"") || q == UInt8(ascii: "'") { i += 1 }
            let nameEnd = w.skip(ByteClass.keyName, from: i, limit: min(end, i + 96))
            guard nameEnd > i else { continue }
            kind = SecretKeyNames.classify(w, i..<nameEnd)
        }
        if kind == .none, let sensitive = w.find(Self.sensitiveWord, from: from, to: end) {
            var i = sensitive + 9
            if w.byte(i) == UInt8(ascii: "\"") { i += 1 }
            i = w.skip(.space, from: i, limit: i + 4)
            if let separator = w.byte(i), separator == UInt8(ascii: ":") || separator == UInt8(ascii: "="),
               w.matches(Self.trueWord, at: w.skip(.space, from: i + 1, limit: i + 8)) { kind = .secret }
        }
        return kind == .authorization ? .none : kind
    }

    /// The key is the first thing on its line (after indentation, `export `, or a YAML list's
    /// `- `) and is not quoted: an env file, a shell profile, YAML, INI.
    static func keyStartsLine(_ w: ByteWindow, _ key: Range<Int>) -> Bool {
        if let after = w.byte(key.upperBound), after == UInt8(ascii: "\"") || after == UInt8(ascii: "'") { return false }
        var i = w.skipBack(.space, from: key.lowerBound, limit: 64)
        if i < key.lowerBound, let b = w.byte(i - 1) {
            if b == UInt8(ascii: "-") {
                i = w.skipBack(.space, from: i - 1, limit: 64)
            } else if ByteClass.byte(b, isIn: .lower) {
                let word = w.skipBack(.lower, from: i, limit: 8)
                guard ["export", "set", "declare", "local", "readonly", "env", "setenv"].contains(ValueShape.lowercased(w, word..<i)) else { return false }
                i = w.skipBack(.space, from: word, limit: 64)
            }
        }
        guard let before = w.byte(i - 1) else { return i == w.lower && w.lowerIsStreamStart }
        return before == 0x0A || before == 0x0D
    }

    /// The value after the separator: quoted (to the matching quote on the same line, escapes
    /// honoured), or unquoted (to a space, quote or punctuation that ends values in the formats
    /// above). After `:` an unquoted value must end its line (or meet a comment or a closing
    /// bracket): `token: expected 3 parts` is a message, not a token.
    static func value(_ w: ByteWindow, after separator: Int, colon: Bool, stopAtAmpersand: Bool, wholeLine: Bool = false) -> Value? {
        let start = w.skip(.space, from: separator + 1, limit: separator + 17)
        guard let first = w.byte(start) else { return nil }
        if wholeLine && first != UInt8(ascii: "\"") && first != UInt8(ascii: "'") && first != UInt8(ascii: "`") && first != UInt8(ascii: "\\") {
            // The rest of the line is the value: after `=` up to a space (a comment may follow),
            // after `:` (YAML) up to the line's end or a ` #` comment.
            var end = start
            if colon {
                let lineEnd = w.lineEnd(from: start)
                guard lineEnd < w.upper || w.isComplete else { return nil }
                end = lineEnd
                if let comment = w.find(Self.commentStart, from: start, to: lineEnd) { end = comment }
                while end > start, ByteClass.byte(w[end - 1], isIn: .space) { end -= 1 }
            } else {
                while end < w.upper, w[end] > 0x20, w[end] != 0x7F { end += 1 }
                guard end < w.upper || w.isComplete else { return nil }
            }
            guard end > start else { return nil }
            // More words after it (other than a comment) make the line code or prose: read the value as one below.
            let rest = w.skip(.space, from: end, limit: end + 64)
            let lineGoesOn = w.byte(rest).map { $0 != 0x0A && $0 != 0x0D && $0 != UInt8(ascii: "#") } ?? false
            // A value ending in `,` or `;` is an entry of code or a literal (`password: hashedPassword,`):
            // read it as one below.
            let entryOfCode = (w[end - 1] == UInt8(ascii: ",") || w[end - 1] == UInt8(ascii: ";"))
                && (start..<(end - 1)).allSatisfy { ByteClass.byte(w[$0], isIn: [.lower, .upper, .digit, .underscore, .dot]) }
            if !entryOfCode && !lineGoesOn {
                return Value(range: start..<end, quoted: false, terminator: nil, wholeLine: true)
            }
        }
        if first == UInt8(ascii: "\\"), w.byte(start + 1) == UInt8(ascii: "\"") {
            // A JSON string inside a JSON string: `\"password\":\"value\"`.
            var i = start + 2
            while i + 1 < w.upper {
                if w[i] == 0x0A || w[i] == 0x0D { return nil }
                if w[i] == UInt8(ascii: "\\") && w[i + 1] == UInt8(ascii: "\"") { return Value(range: (start + 2)..<i, quoted: true, terminator: nil) }
                i += 1
            }
            return nil
        }
        if first == UInt8(ascii: "\"") || first == UInt8(ascii: "'") || first == UInt8(ascii: "`") {
            var i = start + 1
            while i < w.upper {
                let b = w[i]
                if b == 0x0A || b == 0x0D { return nil }
                if b == UInt8(ascii: "\\") && first == UInt8(ascii: "\"") { i += 2; continue }
                if b == first {
                    // After `:`, a quoted value ends its entry (`"k": "v",`, `k: 'v' # note`); more words make it prose.
                    if colon, let after = w.byte(w.skip(.space, from: i + 1, limit: i + 64)), !Self.endsEntry(after) { return nil }
                    return Value(range: (start + 1)..<i, quoted: true, terminator: nil)
                }
                i += 1
            }
            return nil
        }
        var i = start
        var terminator: UInt8? = nil
        scan: while i < w.upper {
            let b = w[i]
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "`"), UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "}"),
                 UInt8(ascii: "]"), UInt8(ascii: ")"), UInt8(ascii: "\\"):
                terminator = b; break scan
            case UInt8(ascii: "&") where stopAtAmpersand:
                terminator = b; break scan
            default:
                if b <= 0x20 || b == 0x7F { break scan }
                i += 1
            }
        }
        guard i > start else { return nil }
        if colon && terminator == nil {
            let next = w.skip(.space, from: i, limit: i + 64)
            if let b = w.byte(next), !Self.endsEntry(b) { return nil }
            if next >= w.upper && !w.isComplete { return nil }
        }
        return Value(range: start..<i, quoted: false, terminator: terminator)
    }

    /// `--password VALUE`: the next word, checked as any value after a secret-naming key.
    func flagValue(_ w: ByteWindow, flag: Range<Int>, rules: EnabledRules) -> DetectorMatch? {
        guard let value = Self.value(w, after: flag.upperBound, colon: false, stopAtAmpersand: false),
              ValueShape.isPlausibleSecret(w, value.range, quoted: value.quoted, key: flag, terminator: value.terminator) else { return nil }
        guard let name = [tokens.ruleName(forValue: value.range, in: w, enabled: rules), Self.secretRule].compactMap({ $0 }).first(where: rules.contains) else { return nil }
        return DetectorMatch(ranges: [FoundRange(start: value.range.lowerBound, end: value.range.upperBound, rule: name)])
    }

    static func endsEntry(_ b: UInt8) -> Bool {
        switch b {
        case 0x0A, 0x0D, UInt8(ascii: "#"), UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ";"), UInt8(ascii: "\""): return true
        default: return false
        }
    }

    /// `Authorization: Bearer <credential>`: the credential after the scheme word is masked.
    func authorization(_ w: ByteWindow, after separator: Int, rules: EnabledRules) -> DetectorMatch? {
        var i = w.skip(.space, from: separator + 1, limit: separator + 17)
        if let q = w.byte(i), q == UInt8(ascii: "\"") || q == UInt8(ascii: "'") { i += 1 }
        let schemeEnd = w.skip([.lower, .upper, .digit, .dash], from: i, limit: i + 32)
        guard schemeEnd > i, w.byte(schemeEnd) == UInt8(ascii: " ") else { return nil }
        let start = schemeEnd + 1
        let end = w.skip([.lower, .upper, .digit, .dot, .underscore, .dash, .plus, .slash, .equals], from: start, limit: start + 4096)
        guard end - start >= 8, !ValueShape.isPlaceholder(w, start..<end) else { return nil }
        let name = [tokens.ruleName(forValue: start..<end, in: w, enabled: rules), Self.authorizationRule].compactMap { $0 }.first(where: rules.contains)
        return name.map { DetectorMatch(ranges: [FoundRange(start: start, end: end, rule: $0)]) }
    }
}
