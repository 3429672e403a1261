/// Passwords on command lines, where each tool has its own flag: `mysql -pS` / `-p'S'`,
/// `sshpass -p S`, `docker login -p S`, `curl -u user:S`, `htpasswd -b file user S`,
/// `openssl … -k S` / `pass:S`, `aws configure set aws_secret_access_key S`. Seen in shell
/// history, CI logs and `ps` output. Anchored on the tool's name; reads the rest of its line.
struct CommandLineDetector: Detector {
    static let rule = AssignmentDetector.secretRule
    enum Tool: Int, CaseIterable { case mysql, mariadb, sshpass, docker, curl, htpasswd, openssl, awsConfigure }
    static let names = ["mysql", "mariadb", "sshpass ", "docker login ", "curl ", "htpasswd ", "openssl ", "aws configure set "]
    let keywords = CommandLineDetector.names.map { Keyword($0) }
    static let passPrefix = Array("pass:".utf8)
    let tokens: PrefixedTokenDetector
    var ruleNames: [String] { [Self.rule, AssignmentDetector.awsSecretRule] }

    func quickCheck(_ w: ByteWindow, keywordStart: Int, keyword: Int) -> QuickVerdict {
        // The tool's own name: not the end of a longer word (`pymysql`); a path before it is fine.
        if let before = w.byte(keywordStart - 1), ByteClass.byte(before, isIn: [.lower, .upper, .digit, .underscore, .dash, .dot]) { return .reject }
        return .candidate
    }

    /// One word of the command line: its bytes, and the part inside quotes when quoted.
    struct Word {
        let range: Range<Int>
        /// Without surrounding quotes (and without a quote right after a flag: `-p'x'`).
        var inner: Range<Int>
    }

    static func words(_ w: ByteWindow, from: Int, to end: Int) -> [Word] {
        var words: [Word] = []
        var i = from
        while i < end {
            i = w.skip(.space, from: i, limit: end)
            guard i < end else { break }
            let start = i
            var quote: UInt8? = nil
            while i < end {
                let b = w[i]
                if let q = quote { if b == q { quote = nil } } else if b == UInt8(ascii: "\"") || b == UInt8(ascii: "'") { quote = b } else if ByteClass.byte(b, isIn: .space) { break }
                i += 1
            }
            words.append(Word(range: start..<i, inner: unquoted(w, start..<i)))
        }
        return words
    }

    static func unquoted(_ w: ByteWindow, _ r: Range<Int>) -> Range<Int> {
        guard r.count >= 2, let q = w.byte(r.lowerBound), q == UInt8(ascii: "\"") || q == UInt8(ascii: "'"), w[r.upperBound - 1] == q else { return r }
        return (r.lowerBound + 1)..<(r.upperBound - 1)
    }

    /// `-pS` / `-p'S'`: the value glued to a one-letter flag.
    static func glued(_ w: ByteWindow, _ word: Word, flag: UInt8) -> Range<Int>? {
        let r = word.range
        guard r.count > 2, w[r.lowerBound] == UInt8(ascii: "-"), w[r.lowerBound + 1] == flag, w[r.lowerBound + 2] != UInt8(ascii: "-") else { return nil }
        return unquoted(w, (r.lowerBound + 2)..<r.upperBound)
    }

    static func text(_ w: ByteWindow, _ word: Word) -> String { String(decoding: w.bytes(word.range), as: UTF8.self) }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules: EnabledRules) -> DetectorMatch? {
        let lineEnd = w.lineEnd(from: keywordStart)
        guard lineEnd < w.upper || w.isComplete, let tool = Tool(rawValue: keyword) else { return nil }
        let args = Self.words(w, from: keywordStart + keywords[keyword].bytes.count, to: lineEnd)
        var values: [Range<Int>] = []
        var awsSecret = false
        func next(after index: Int) -> Range<Int>? { index + 1 < args.count ? args[index + 1].inner : nil }
        switch tool {
        case .mysql, .mariadb:
            // `mysql -pS`; `-p S` would be a database name, so only the glued form.
            for word in args { if let v = Self.glued(w, word, flag: UInt8(ascii: "p")) { values.append(v) } }
        case .sshpass:
            for (i, word) in args.enumerated() {
                if Self.text(w, word) == "-p", let v = next(after: i) { values.append(v) } else if let v = Self.glued(w, word, flag: UInt8(ascii: "p")) { values.append(v) }
            }
        case .docker:
            for (i, word) in args.enumerated() where Self.text(w, word) == "-p" { if let v = next(after: i) { values.append(v) } }
        case .curl:
            for (i, word) in args.enumerated() {
                let t = Self.text(w, word)
                var credential: Range<Int>? = nil
                if t == "-u" || t == "--user" || t == "--proxy-user" || t == "-U" { credential = next(after: i) } else if let v = Self.glued(w, word, flag: UInt8(ascii: "u")) { credential = v }
                // `user:password`: the part after the first colon.
                if let c = credential, let colon = c.first(where: { w[$0] == UInt8(ascii: ":") }), colon + 1 < c.upperBound { values.append((colon + 1)..<c.upperBound) }
            }
        case .htpasswd:
            let options = args.prefix { w[$0.range.lowerBound] == UInt8(ascii: "-") }
            let flags = options.flatMap { w.bytes($0.range) }
            guard flags.contains(UInt8(ascii: "b")) else { break }
            let positional = args.dropFirst(options.count)
            // `-b file user password`, or with `-n` (no file) `user password`.
            let index = flags.contains(UInt8(ascii: "n")) ? 1 : 2
            if positional.count > index { values.append(positional[positional.startIndex + index].inner) }
        case .openssl:
            for (i, word) in args.enumerated() {
                let t = Self.text(w, word)
                if t == "-k" || t == "-K", let v = next(after: i) { values.append(v) }
                let inner = word.inner
                if w.matches(Self.passPrefix, at: inner.lowerBound), inner.count > 5 { values.append((inner.lowerBound + 5)..<inner.upperBound) }
            }
        case .awsConfigure:
            if args.count >= 2 {
                let kind = SecretKeyNames.classify(w, args[0].inner)
                if kind == .secret || kind == .awsSecret { values.append(args[1].inner); awsSecret = kind == .awsSecret }
            }
        }
        var ranges: [FoundRange] = []
        for value in values.sorted(by: { $0.lowerBound < $1.lowerBound }) where value.count >= 4 && !ValueShape.isPlaceholder(w, value, quoted: true) {
            guard !value.contains(where: { ByteClass.byte(w[$0], isIn: [.space, .lineBreak]) }) else { continue }
            let candidates = [tokens.ruleName(forValue: value, in: w, enabled: rules),
                              awsSecret && ValueShape.isAWSSecretShape(w, value) ? AssignmentDetector.awsSecretRule : nil, Self.rule]
            guard let name = candidates.compactMap({ $0 }).first(where: rules.contains) else { continue }
            if let last = ranges.last, last.end > value.lowerBound { continue }
            ranges.append(FoundRange(start: value.lowerBound, end: value.upperBound, rule: name))
        }
        return ranges.isEmpty ? nil : DetectorMatch(ranges: ranges)
    }
}
