/// Whether a value found after a secret-naming key is a secret or something that only sits
/// where one could: a placeholder (`changeme` is a secret, `<your-token>` and `${TOKEN}` are
/// not), a type in source code (`password: String`), a reference to another variable
/// (`token = self.token`), a path, a number, a date.
enum ValueShape {
    static let placeholders: Set<String> = [
        "true", "false", "null", "nil", "none", "undefined", "yes", "no", "on", "off", "required", "optional", "string", "str",
        "bytes", "int", "integer", "bool", "boolean", "number", "object", "any", "text", "char", "redacted", "hidden", "masked",
        "secret", "password", "passwd", "pass", "pwd", "token", "empty", "default", "auto", "disabled", "enabled", "unset", "notset", "example", "dummy",
        "placeholder", "sample", "todo", "fixme", "tbd", "value", "self", "this", "void", "securestring", "secretstr",
        "option", "optional<string>", "[]byte", "&str", "string?", "uuid", "sensitive", "omitted", "removed", "filtered",
        "never", "always", "hidden", "protected", "private", "public", "internal", "unknown", "invalid", "expired",
    ]

    static func lowercased(_ w: ByteWindow, _ range: Range<Int>) -> String {
        String(decoding: range.map { asciiLower(w[$0]) }, as: UTF8.self)
    }

    /// Not a secret whatever the key: empty-ish, templated, masked, a repeated character. A
    /// first byte of punctuation says so only in the shapes templates and references take
    /// (`${X}`, `$X`, `%(x)s`, `<your-token>`, `[REDACTED]`, `***`, a YAML anchor or tag, a
    /// comment after a space): a generated password may start with any of them.
    static func isPlaceholder(_ w: ByteWindow, _ range: Range<Int>, quoted: Bool = false) -> Bool {
        guard let first = w.byte(range.lowerBound), !range.isEmpty else { return true }
        let second: UInt8? = range.count > 1 ? w[range.lowerBound + 1] : nil
        let last = w[range.upperBound - 1]
        let rest = (range.lowerBound + 1)..<range.upperBound
        switch first {
        case UInt8(ascii: "$"):
            guard let second else { return true }
            if second == UInt8(ascii: "{") || second == UInt8(ascii: "(") || second == UInt8(ascii: "_") || ByteClass.byte(second, isIn: .letter) { return true }
        case UInt8(ascii: "%"):
            if range.count <= 3 || second == UInt8(ascii: "(") || second == UInt8(ascii: "{") || last == UInt8(ascii: "%") { return true }
        case UInt8(ascii: "{"): if last == UInt8(ascii: "}") { return true }
        case UInt8(ascii: "<"): if last == UInt8(ascii: ">") { return true }
        case UInt8(ascii: "["): if last == UInt8(ascii: "]") { return true }
        case UInt8(ascii: "("): if last == UInt8(ascii: ")") { return true }
        case UInt8(ascii: "*"): if second == UInt8(ascii: "*") { return true }
        case UInt8(ascii: "#"):
            // `password: # set me` (a comment after a space); `DB_PASSWORD=#x9…` is a value.
            if !quoted, let before = w.byte(range.lowerBound - 1), ByteClass.byte(before, isIn: .space) { return true }
        case UInt8(ascii: "&"), UInt8(ascii: "!"):
            // A YAML anchor (`&defaults`) or tag (`!Ref`): a word after the sign.
            if !quoted, rest.allSatisfy({ ByteClass.byte(w[$0], isIn: [.lower, .upper, .digit, .dash, .underscore]) }) { return true }
        default: break
        }
        if range.allSatisfy({ w[$0] == first }) { return true }
        if range.count <= 32, placeholders.contains(lowercased(w, range)) { return true }
        // `${VAR}`, `{{ .Values.x }}`, `$(cat f)` inside the value: an opening with its closing after it.
        var previous: UInt8 = 0
        var open: UInt8? = nil
        for i in range {
            let b = w[i]
            if let closer = open, b == closer { return true }
            if open == nil {
                if previous == UInt8(ascii: "$") && b == UInt8(ascii: "{") { open = UInt8(ascii: "}") }
                else if previous == UInt8(ascii: "$") && b == UInt8(ascii: "(") { open = UInt8(ascii: ")") }
                else if previous == UInt8(ascii: "{") && b == UInt8(ascii: "{") { open = UInt8(ascii: "}") }
            }
            previous = b
        }
        return false
    }

    /// The checks for a value after a key that names a secret.
    /// `wholeLine`: the value is all that follows its key on a line of its own (`KEY=value` in an
    /// env file, `key: value` in YAML), so punctuation inside it is part of it.
    static func isPlausibleSecret(_ w: ByteWindow, _ range: Range<Int>, quoted: Bool, key: Range<Int>, terminator: UInt8?, wholeLine: Bool = false) -> Bool {
        guard range.count >= 6, !isPlaceholder(w, range, quoted: quoted) else { return false }
        // A version range (`"jsonwebtoken": "^9.0.2"`, `~1.2.3-beta.1` in a lockfile).
        if let first = w.byte(range.lowerBound), first == UInt8(ascii: "^") || first == UInt8(ascii: "~"),
           let second = w.byte(range.lowerBound + 1), ByteClass.byte(second, isIn: .digit),
           range.dropFirst().allSatisfy({ ByteClass.byte(w[$0], isIn: [.digit, .dot, .lower, .dash, .plus]) }) { return false }
        var codeEnd = range.upperBound
        while codeEnd > range.lowerBound, w[codeEnd - 1] == UInt8(ascii: ";") || w[codeEnd - 1] == UInt8(ascii: ",") { codeEnd -= 1 }
        if wholeLine, codeEnd > range.lowerBound, let closer = w.byte(codeEnd - 1) {
            // Code, not a value: a call or an index (`token = get_token()`, `os.environ["X"]`).
            let opener: UInt8? = closer == UInt8(ascii: ")") ? UInt8(ascii: "(") : closer == UInt8(ascii: "]") ? UInt8(ascii: "[") : nil
            if let opener, (range.lowerBound..<codeEnd).contains(where: { w[$0] == opener }) { return false }
            // A member of an object in code (`this.password = …`, `self.token = …`).
            let head = lowercased(w, key.lowerBound..<min(key.upperBound, key.lowerBound + 5))
            if head == "this." || head == "self." { return false }
        }
        var hasDigit = false, allDigitsOrDots = true, identifierLike = true, dots = 0
        for (n, i) in range.enumerated() {
            let b = w[i]
            let c = ByteClass.of(b)
            // A quoted sentence is a message, not a password.
            if c.contains(.space) || c.contains(.lineBreak) { return false }
            if c.contains(.digit) { hasDigit = true } else if c.contains(.dot) { dots += 1 } else { allDigitsOrDots = false }
            if !(c.intersection([.lower, .upper, .underscore]) != [] || (n > 0 && (c.contains(.digit) || c.contains(.dot)))) { identifierLike = false }
            if !quoted && !wholeLine {
                switch b {
                case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(ascii: "}"),
                     UInt8(ascii: "<"), UInt8(ascii: ">"): return false
                default: break
                }
            }
        }
        // Numbers and versions (`3`, `1.2.3`); a long all-digit value is a PIN-like secret.
        if allDigitsOrDots && (dots > 0 || range.count < 6) { return false }
        if startsLikePath(w, range) || looksLikeDate(w, range) { return false }
        if !quoted && identifierLike {
            // Source code: `token = self.token`, `password: hashedPassword,`, `api_key = API_KEY`.
            if dots > 0 && !hasDigit { return false }
            if let t = terminator, t == UInt8(ascii: ",") || t == UInt8(ascii: ";") || t == UInt8(ascii: ")") { if !hasDigit { return false } }
        }
        // A short lowercase word (`admin`, `groups`) is a setting, not a generated or chosen secret.
        if range.count < 8, range.allSatisfy({ ByteClass.byte(w[$0], isIn: .lower) }) { return false }
        // `postgres-password`, `api_token`, `GLEWLWYD2_SESSION_ID`: a name for the secret, not the secret.
        if range.allSatisfy({ ByteClass.byte(w[$0], isIn: [.lower, .upper, .digit, .dash, .underscore, .dot]) }), namesSameThing(w, range, key: key) { return false }
        return true
    }

    /// `token = new_token`, `SECRET = SECRET_KEY`: the value names the key's own secret word.
    static func namesSameThing(_ w: ByteWindow, _ range: Range<Int>, key: Range<Int>) -> Bool {
        let value = lowercased(w, range)
        let keyText = lowercased(w, key)
        if value == keyText || keyText.hasSuffix(value) { return true }
        if ["password", "passwd", "secret", "token", "pass", "pwd", "auth"].contains(where: { value.hasBytes($0) && keyText.hasBytes($0) }) { return true }
        return SecretKeyNames.words(w, key).contains { $0.count >= 4 && value.hasBytes($0) }
    }

    static func startsLikePath(_ w: ByteWindow, _ range: Range<Int>) -> Bool {
        // A long random-looking value is base64 that happens to start with `/`, not a path.
        if range.count >= 24, Entropy.looksRandom(w, range), range.filter({ w[$0] == UInt8(ascii: "/") }).count * 16 < range.count { return false }
        // Paths hold few kinds of punctuation; a value starting `/` with `{`, `^`, `!`… is a password.
        guard range.allSatisfy({ ByteClass.byte(w[$0], isIn: [.lower, .upper, .digit, .slash, .dot, .underscore, .dash, .plus, .equals])
                                 || [UInt8(ascii: "~"), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "%"), UInt8(ascii: "\\")].contains(w[$0]) }) else { return false }
        let prefixes = ["/", "./", "../", "~/", "file:", "http://", "https://", "c:\\", "s3://", "gs://", "arn:", "vault:", "projects/"]
        let head = lowercased(w, range.lowerBound..<min(range.upperBound, range.lowerBound + 10))
        return prefixes.contains { head.hasPrefix($0) }
    }

    /// `2024-05-01…`, `12:30:00`.
    static func looksLikeDate(_ w: ByteWindow, _ range: Range<Int>) -> Bool {
        guard range.count >= 8 else { return false }
        let d = { (i: Int) in ByteClass.byte(w[range.lowerBound + i], isIn: .digit) }
        let b = { (i: Int) in w[range.lowerBound + i] }
        if d(0) && d(1) && d(2) && d(3) && b(4) == UInt8(ascii: "-") && d(5) && d(6) && b(7) == UInt8(ascii: "-") { return true }
        if d(0) && d(1) && b(2) == UInt8(ascii: ":") && d(3) && d(4) && b(5) == UInt8(ascii: ":") { return true }
        return false
    }

    /// AWS secret access keys: 40 characters of base64.
    static func isAWSSecretShape(_ w: ByteWindow, _ range: Range<Int>) -> Bool {
        range.count == 40 && range.allSatisfy { ByteClass.byte(w[$0], isIn: .base64) } && Entropy.characterClasses(w, range) >= 2
    }
}
