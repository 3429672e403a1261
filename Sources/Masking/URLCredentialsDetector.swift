/// Credentials in URLs, `scheme://user:password@host`: the password is masked (the user and
/// host stay, they say what the URL is for). A long random user with no password
/// (`https://<token>@github.com`) is a token and is masked too.
struct URLCredentialsDetector: Detector {
    static let rule = "url-credentials"
    let keywords = [Keyword("://")]
    let tokens: PrefixedTokenDetector
    var ruleNames: [String] { [Self.rule] }

    /// Bytes that end a URL's authority part.
    @inline(__always)
    static func endsAuthority(_ b: UInt8) -> Bool {
        switch b {
        // `#` is left out: unencoded in passwords often enough, and an `@` must still follow.
        case UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "`"),
             UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "\\"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "["),
             UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: ","), UInt8(ascii: ";"): return true
        default: return b <= 0x20 || b >= 0x7F
        }
    }

    func quickCheck(_ w: ByteWindow, keywordStart: Int, keyword: Int) -> QuickVerdict {
        // A scheme of letters before `://`.
        guard let before = w.byte(keywordStart - 1), ByteClass.byte(before, isIn: .alphanumeric) else { return .reject }
        return .candidate
    }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules: EnabledRules) -> DetectorMatch? {
        let authorityStart = keywordStart + 3
        var i = authorityStart
        var lastAt: Int? = nil, firstColon: Int? = nil
        while i < w.upper, i - authorityStart < 512, !Self.endsAuthority(w[i]) {
            if w[i] == UInt8(ascii: "@") { lastAt = i }
            if w[i] == UInt8(ascii: ":"), firstColon == nil { firstColon = i }
            i += 1
        }
        guard let at = lastAt, let host = w.byte(at + 1), ByteClass.byte(host, isIn: .alphanumeric) || host == UInt8(ascii: "[") else { return nil }
        let secret: Range<Int>
        if let colon = firstColon, colon < at {
            secret = (colon + 1)..<at
            guard secret.count >= 1, !ValueShape.isPlaceholder(w, secret) else { return nil }
        } else {
            // No password: the user part is masked only if it is itself a token.
            secret = authorityStart..<at
            guard tokens.ruleName(forValue: secret, in: w, enabled: rules) != nil || Entropy.looksRandom(w, secret, minLength: 20) else { return nil }
        }
        let name = tokens.ruleName(forValue: secret, in: w, enabled: rules) ?? Self.rule
        guard rules.contains(name) else { return nil }
        return DetectorMatch(ranges: [FoundRange(start: secret.lowerBound, end: secret.upperBound, rule: name)])
    }
}

/// Slack incoming webhooks: the path after `hooks.slack.com/services/` (or `/workflows/`,
/// `/triggers/`) is the credential.
struct SlackWebhookDetector: Detector {
    static let rule = "slack-webhook"
    let keywords = [Keyword("slack.com/", anchorOffset: 4)]
    var ruleNames: [String] { [Self.rule] }
    private static let hooks = Array("hooks.".utf8)
    private static let paths = ["services/", "workflows/", "triggers/"].map { Array($0.utf8) }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules: EnabledRules) -> DetectorMatch? {
        guard rules.contains(Self.rule), w.matches(Self.hooks, at: keywordStart - 6) else { return nil }
        let pathStart = keywordStart + 10
        guard let kind = Self.paths.first(where: { w.matches($0, at: pathStart) }) else { return nil }
        let secretStart = pathStart + kind.count
        let end = w.skip([.lower, .upper, .digit, .slash, .underscore, .dash], from: secretStart, limit: secretStart + 256)
        guard end - secretStart >= 20, Entropy.characterClasses(w, secretStart..<end) >= 2 else { return nil }
        return DetectorMatch(ranges: [FoundRange(start: secretStart, end: end, rule: Self.rule)])
    }
}
