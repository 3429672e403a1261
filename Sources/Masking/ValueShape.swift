/// Whether a value found after a secret-naming key is a secret or something that only sits
/// where one could: a placeholder (`changeme` is a secret, `<your-token>` and `${TOKEN}` are
/// not), a type in source code (`password: String`), a reference to another variable
/// (`token = self.token`), a path, a number, a date.
enum ValueShape {
    static let placeholders: Set<String> = [
        "true", "false", "null", "nil", "none", "undefined", "yes", "no", "on", "off", "required", "optional", "string", "str",
        "bytes", "int", "integer", "bool", "boolean", "number", "object", "any", "text", "char", "redacted", "hidden", "masked",
        "secret", "password", "token", "empty", "default", "auto", "disabled", "enabled", "unset", "notset", "example", "dummy",
        "placeholder", "sample", "todo", "fixme", "tbd", "value", "self", "this", "void", "securestring", "secretstr",
        "option", "optional<string>", "[]byte", "&str", "string?", "uuid", "sensitive", "omitted", "removed", "filtered",
        "never", "always", "hidden", "protected", "private", "public", "internal", "unknown", "invalid", "expired",
    ]

    static func lowercased(_ w: ByteWindow, _ range: Range<Int>) -> String {
        String(decoding: range.map { asciiLower(w[$0]) }, as: UTF8.self)
    }

    /// Not a secret whatever the key: empty-ish, templated, masked, a repeated character.
    static func isPlaceholder(_ w: ByteWindow, _ range: Range<Int>) -> Bool {
        guard let first = w.byte(range.lowerBound) else { return true }
        switch first {
        case UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "{"), UInt8(ascii: "<"), UInt8(ascii: "["), UInt8(ascii: "*"),
             UInt8(ascii: "("), UInt8(ascii: "#"), UInt8(ascii: "&"), UInt8(ascii: "!"):
            return true
        default: break
        }
        if range.allSatisfy({ w[$0] == first }) { return true }
        if range.count <= 32, placeholders.contains(lowercased(w, range)) { return true }
        // `${VAR}`, `{{ .Values.x }}`, `$(cat f)` inside the value.
        var previous: UInt8 = 0
        for i in range {
            let b = w[i]
            if (previous == UInt8(ascii: "$") && (b == UInt8(ascii: "{") || b == UInt8(ascii: "(")))
                || (previous == UInt8(ascii: "{") && b == UInt8(ascii: "{")) { return true }
            previous = b
        }
        return false
    }

    /// The checks for a value after a key that names a secret.
    static func isPlausibleSecret(_ w: ByteWindow, _ range: Range<Int>, quoted: Bool, key: Range<Int>, terminator: UInt8?) -> Bool {
        guard range.count >= 6, !isPlaceholder(w, range) else { return false }
        var hasDigit = false, allDigitsOrDots = true, identifierLike = true, dots = 0
        for (n, i) in range.enumerated() {
            let b = w[i]
            let c = ByteClass.of(b)
            // A quoted sentence is a message, not a password.
            if c.contains(.space) || c.contains(.lineBreak) { return false }
            if c.contains(.digit) { hasDigit = true } else if c.contains(.dot) { dots += 1 } else { allDigitsOrDots = false }
            if !(c.intersection([.lower, .upper, .underscore]) != [] || (n > 0 && (c.contains(.digit) || c.contains(.dot)))) { identifierLike = false }
            if !quoted {
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
