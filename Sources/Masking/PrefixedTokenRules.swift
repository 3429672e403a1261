/// A token type recognised by its fixed prefix: the prefix, then a run of body characters of a
/// bounded length, with no letter or digit glued on either side.
struct PrefixedTokenRule: Sendable {
    let name: String
    let prefixes: [String]
    let body: ByteClass
    let bodyLength: ClosedRange<Int>
    /// An extra shape check over the whole token (prefix included).
    var validate: (@Sendable (ByteWindow, Range<Int>) -> Bool)? = nil

    /// The token's end if one of this rule's tokens starts at `start` with prefix `prefix`.
    func match(_ w: ByteWindow, at start: Int, prefix: Int) -> Int? {
        let bodyStart = start + prefixes[prefix].utf8.count
        if let before = w.byte(start - 1), ByteClass.byte(before, isIn: ByteClass.alphanumeric.union(body)) { return nil }
        let end = w.skip(body, from: bodyStart, limit: bodyStart + bodyLength.upperBound + 1)
        guard bodyLength.contains(end - bodyStart) else { return nil }
        if let after = w.byte(end), ByteClass.byte(after, isIn: .alphanumeric) { return nil }
        if let validate, !validate(w, start..<end) { return nil }
        return end
    }
}

/// The built-in prefixed token types. Shapes follow the providers' published formats; lengths
/// are a little looser than the formats where providers have lengthened tokens before.
enum PrefixedTokenRules {
    static let all: [PrefixedTokenRule] = [
        PrefixedTokenRule(name: "aws-access-key-id", prefixes: ["AKIA", "ASIA", "ABIA", "ACCA"], body: [.upper, .digit], bodyLength: 16...16),
        PrefixedTokenRule(name: "github-token", prefixes: ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], body: .alphanumeric, bodyLength: 30...255),
        PrefixedTokenRule(name: "github-fine-grained-token", prefixes: ["github_pat_"], body: .identifier, bodyLength: 50...255),
        PrefixedTokenRule(name: "gitlab-token", prefixes: ["glpat-", "glptt-", "glrt-", "gldt-", "glcbt-", "glft-", "glimt-", "glsoat-", "gloas-", "glagent-", "GR1348941"],
                          body: [.lower, .upper, .digit, .underscore, .dash, .dot], bodyLength: 20...255),
        PrefixedTokenRule(name: "slack-token", prefixes: ["xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xapp-"],
                          body: [.lower, .upper, .digit, .dash], bodyLength: 20...255, validate: { w, r in Entropy.characterClasses(w, r) >= 2 }),
        PrefixedTokenRule(name: "stripe-key", prefixes: ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "whsec_"], body: .alphanumeric, bodyLength: 16...255),
        PrefixedTokenRule(name: "google-api-key", prefixes: ["AIza"], body: .base64URL, bodyLength: 35...35),
        PrefixedTokenRule(name: "google-oauth-secret", prefixes: ["GOCSPX-", "ya29."], body: [.lower, .upper, .digit, .underscore, .dash, .dot], bodyLength: 24...2048),
        // Anthropic before OpenAI: both begin `sk-`, the longer prefix decides.
        PrefixedTokenRule(name: "anthropic-api-key", prefixes: ["sk-ant-"], body: .base64URL, bodyLength: 32...255),
        PrefixedTokenRule(name: "openai-api-key", prefixes: ["sk-proj-", "sk-svcacct-", "sk-admin-", "sk-"], body: .base64URL, bodyLength: 20...255,
                          validate: { w, r in
                              // A bare `sk-` is short and common (`sk-learn`): demand a long, mixed, random-looking body.
                              let ant: [UInt8] = Array("sk-ant-".utf8)
                              if w.matches(ant, at: r.lowerBound) { return false }
                              return r.count >= 32 && Entropy.characterClasses(w, r) >= 3 && Entropy.bitsPerByte(w, r) >= 4.0
                          }),
        PrefixedTokenRule(name: "npm-token", prefixes: ["npm_"], body: .alphanumeric, bodyLength: 36...36),
        PrefixedTokenRule(name: "pypi-token", prefixes: ["pypi-AgEIcHlwaS5vcmc"], body: .base64URL, bodyLength: 30...1024),
        PrefixedTokenRule(name: "huggingface-token", prefixes: ["hf_"], body: .alphanumeric, bodyLength: 30...40,
                          validate: { w, r in Entropy.characterClasses(w, r) >= 2 }),
        PrefixedTokenRule(name: "vault-token", prefixes: ["hvs.", "hvb.", "hvr."], body: .base64URL, bodyLength: 24...255),
        PrefixedTokenRule(name: "digitalocean-token", prefixes: ["dop_v1_", "doo_v1_", "dor_v1_"], body: [.digit, .hexLetter], bodyLength: 64...64),
        PrefixedTokenRule(name: "shopify-token", prefixes: ["shpat_", "shpss_", "shpca_", "shppa_"], body: [.digit, .hexLetter], bodyLength: 32...32),
        PrefixedTokenRule(name: "sendgrid-key", prefixes: ["SG."], body: [.lower, .upper, .digit, .underscore, .dash, .dot], bodyLength: 66...70,
                          validate: { w, r in w[r.lowerBound + 25] == UInt8(ascii: ".") }),
        PrefixedTokenRule(name: "age-secret-key", prefixes: ["AGE-SECRET-KEY-1"], body: [.upper, .digit], bodyLength: 58...58),
        PrefixedTokenRule(name: "docker-hub-token", prefixes: ["dckr_pat_", "dckr_oat_"], body: .base64URL, bodyLength: 20...64),
        PrefixedTokenRule(name: "grafana-token", prefixes: ["glsa_"], body: .identifier, bodyLength: 32...64),
        PrefixedTokenRule(name: "postman-api-key", prefixes: ["PMAK-"], body: [.digit, .hexLetter, .dash], bodyLength: 55...64),
        PrefixedTokenRule(name: "linear-api-key", prefixes: ["lin_api_", "lin_oauth_"], body: .alphanumeric, bodyLength: 40...64),
        PrefixedTokenRule(name: "databricks-token", prefixes: ["dapi"], body: [.digit, .hexLetter], bodyLength: 32...32,
                          validate: { w, r in Entropy.characterClasses(w, r) >= 2 }),
        PrefixedTokenRule(name: "pulumi-token", prefixes: ["pul-"], body: [.digit, .hexLetter], bodyLength: 40...40),
        PrefixedTokenRule(name: "atlassian-token", prefixes: ["ATATT3", "ATCTT3"], body: [.lower, .upper, .digit, .dash, .underscore, .equals], bodyLength: 100...400),
        PrefixedTokenRule(name: "new-relic-key", prefixes: ["NRAK-", "NRII-", "NRJS-"], body: [.upper, .digit, .hexLetter], bodyLength: 19...40),
        PrefixedTokenRule(name: "doppler-token", prefixes: ["dp.st.", "dp.pt.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."],
                          body: [.lower, .upper, .digit, .dash, .underscore, .dot], bodyLength: 40...200),
        PrefixedTokenRule(name: "heroku-token", prefixes: ["HRKU-"], body: .base64URL, bodyLength: 30...80),
        PrefixedTokenRule(name: "figma-token", prefixes: ["figd_"], body: .base64URL, bodyLength: 38...48),
        PrefixedTokenRule(name: "supabase-token", prefixes: ["sbp_"], body: [.digit, .hexLetter], bodyLength: 40...40),
        PrefixedTokenRule(name: "notion-token", prefixes: ["ntn_"], body: .alphanumeric, bodyLength: 40...50),
        PrefixedTokenRule(name: "twilio-api-key", prefixes: ["SK"], body: [.digit, .hexLetter], bodyLength: 32...32,
                          validate: { w, r in Entropy.characterClasses(w, r) >= 2 }),
        PrefixedTokenRule(name: "mailgun-key", prefixes: ["key-"], body: [.digit, .hexLetter], bodyLength: 32...32,
                          validate: { w, r in Entropy.characterClasses(w, r) >= 2 }),
    ]
}

/// Finds the prefixed token types anywhere in the stream.
struct PrefixedTokenDetector: Detector {
    let rules: [PrefixedTokenRule]
    let keywords: [Keyword]
    /// For each keyword: its rule and prefix.
    let owners: [(rule: Int, prefix: Int)]

    init(rules: [PrefixedTokenRule]) {
        self.rules = rules
        var keywords: [Keyword] = [], owners: [(Int, Int)] = []
        for (r, rule) in rules.enumerated() {
            for (p, prefix) in rule.prefixes.enumerated() {
                keywords.append(Keyword(prefix))
                owners.append((r, p))
            }
        }
        self.keywords = keywords
        self.owners = owners
    }

    var ruleNames: [String] { rules.map(\.name) }

    func quickCheck(_ w: ByteWindow, keywordStart: Int, keyword: Int) -> QuickVerdict {
        let (r, _) = owners[keyword]
        if let before = w.byte(keywordStart - 1), ByteClass.byte(before, isIn: ByteClass.alphanumeric.union(rules[r].body)) { return .reject }
        guard let first = w.byte(keywordStart + keywords[keyword].bytes.count) else { return w.isComplete ? .reject : .needMore }
        return ByteClass.byte(first, isIn: rules[r].body) ? .candidate : .reject
    }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules enabled: EnabledRules) -> DetectorMatch? {
        let (r, p) = owners[keyword]
        let rule = rules[r]
        guard enabled.contains(rule.name), let end = rule.match(w, at: keywordStart, prefix: p) else { return nil }
        return DetectorMatch(ranges: [FoundRange(start: keywordStart, end: end, rule: rule.name)])
    }

    /// The rule whose token is exactly `range` (a value after `TOKEN=`, a URL's password), so
    /// the mask names the token type rather than the generic rule.
    func ruleName(forValue range: Range<Int>, in w: ByteWindow, enabled: EnabledRules) -> String? {
        for (k, keyword) in keywords.enumerated() where w.matches(keyword.bytes, at: range.lowerBound) {
            let (r, p) = owners[k]
            guard enabled.contains(rules[r].name) else { continue }
            let sub = ByteWindow(base: w.base, lower: range.lowerBound, upper: range.upperBound, isComplete: true, lowerIsStreamStart: false)
            if rules[r].match(sub, at: range.lowerBound, prefix: p) == range.upperBound { return rules[r].name }
        }
        if JWTDetector.tokenEnd(w, at: range.lowerBound) == range.upperBound, enabled.contains(JWTDetector.rule) { return JWTDetector.rule }
        return nil
    }
}
