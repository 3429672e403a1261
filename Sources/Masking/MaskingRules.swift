/// A compiled set of rules: which rules are on, their detectors, and the scanner's anchor
/// table. Immutable and shared: build it once per configuration (and per scope selection),
/// then give it to every `StreamMasker`.
public final class MaskingRules: Sendable {
    /// Every rule on, the default.
    public static let builtin = MaskingRules(custom: [], enabled: Set(BuiltinRules.names))

    /// The rules on, built-in ones in catalogue order, then custom ones.
    public let ruleNames: [String]
    public let customRules: [CustomRule]
    let detectors: [any Detector]
    let enabled: EnabledRules
    let anchors: AnchorTable
    /// Where the assignment detector stands in `detectors` (-1: off), for the scanner's fast path.
    let assignmentDetectorIndex: Int

    /// `rules`: the names to turn on (nil: all, built-in and custom); `exclude`: names to turn off.
    public convenience init(rules: [String]? = nil, exclude: [String] = [], custom: [CustomRule] = []) throws(MaskingRulesError) {
        let known = BuiltinRules.names + custom.map(\.name)
        for name in (rules ?? []) + exclude where !known.contains(name) { throw MaskingRulesError.unknownRule(name, known: known) }
        var on = Set(rules ?? known)
        on.subtract(exclude)
        self.init(custom: custom, enabled: on)
    }

    init(custom: [CustomRule], enabled: Set<String>) {
        self.customRules = custom
        self.enabled = EnabledRules(names: enabled)
        self.ruleNames = (BuiltinRules.names + custom.map(\.name)).filter(enabled.contains)
        let tokens = PrefixedTokenDetector(rules: PrefixedTokenRules.all)
        let all: [any Detector] = [
            PrivateKeyDetector(), KubernetesSecretDetector(), AssignmentDetector(tokens: tokens), URLCredentialsDetector(tokens: tokens),
            SlackWebhookDetector(), JWTDetector(), tokens, DirectiveDetector(tokens: tokens), CommandLineDetector(tokens: tokens),
            ConstantDefinitionDetector(tokens: tokens),
            CustomRuleDetector(rules: custom),
        ]
        self.detectors = all.filter { $0.ruleNames.contains(where: enabled.contains) }
        self.anchors = AnchorTable(detectors: detectors)
        self.assignmentDetectorIndex = detectors.firstIndex { $0 is AssignmentDetector } ?? -1
    }

    /// A narrower set for one scope (`masking: {rules: […], exclude: […]}`): only rules this set has.
    public func selecting(rules: [String]?, exclude: [String]) throws(MaskingRulesError) -> MaskingRules {
        let known = BuiltinRules.names + customRules.map(\.name)
        for name in (rules ?? []) + exclude where !known.contains(name) { throw MaskingRulesError.unknownRule(name, known: known) }
        var on = Set(rules ?? ruleNames).intersection(enabled.names)
        on.subtract(exclude)
        return MaskingRules(custom: customRules, enabled: on)
    }
}

public enum MaskingRulesError: Error, Equatable, CustomStringConvertible {
    case unknownRule(String, known: [String])

    public var description: String {
        switch self {
        case .unknownRule(let name, let known): return "unknown masking rule \"\(name)\" (known: \(known.joined(separator: ", ")))"
        }
    }
}

/// The built-in rules: stable names (operators select and exclude them, mask records and
/// metrics carry them) and what each one catches.
public enum BuiltinRules {
    public static let catalogue: [(name: String, catches: String)] = [
        ("private-key", "PEM and OpenSSH private key blocks, BEGIN to END, also with JSON-escaped line breaks"),
        ("aws-access-key-id", "AWS access key ids: AKIA/ASIA/ABIA/ACCA and 16 capitals or digits"),
        ("aws-secret-access-key", "40-character AWS secret keys after an aws_secret_access_key / SecretAccessKey key"),
        ("github-token", "GitHub classic tokens: ghp_, gho_, ghu_, ghs_, ghr_"),
        ("github-fine-grained-token", "GitHub fine-grained tokens: github_pat_"),
        ("gitlab-token", "GitLab tokens: glpat-, glrt-, gldt-, glptt-, glcbt-, glft-, glimt-, glsoat-, gloas-, glagent-, runner registration GR1348941"),
        ("slack-token", "Slack tokens: xoxb-, xoxp-, xoxa-, xoxr-, xoxs-, xoxe-, xapp-"),
        ("slack-webhook", "the secret path of hooks.slack.com/services/… webhook URLs"),
        ("stripe-key", "Stripe secret and restricted keys (sk_live_, sk_test_, rk_…) and webhook secrets (whsec_)"),
        ("google-api-key", "Google API keys: AIza and 35 characters"),
        ("google-oauth-secret", "Google OAuth client secrets (GOCSPX-) and access tokens (ya29.)"),
        ("openai-api-key", "OpenAI-style keys: sk-proj-, sk-svcacct-, sk-admin-, long random sk-"),
        ("anthropic-api-key", "Anthropic keys: sk-ant-"),
        ("npm-token", "npm tokens: npm_"),
        ("pypi-token", "PyPI upload tokens: pypi-AgEIcHlwaS5vcmc…"),
        ("huggingface-token", "Hugging Face tokens: hf_"),
        ("vault-token", "HashiCorp Vault tokens: hvs., hvb., hvr."),
        ("digitalocean-token", "DigitalOcean tokens: dop_v1_, doo_v1_, dor_v1_"),
        ("shopify-token", "Shopify tokens: shpat_, shpss_, shpca_, shppa_"),
        ("sendgrid-key", "SendGrid keys: SG.…"),
        ("age-secret-key", "age secret keys: AGE-SECRET-KEY-1…"),
        ("docker-hub-token", "Docker Hub access tokens: dckr_pat_, dckr_oat_"),
        ("grafana-token", "Grafana service account tokens: glsa_"),
        ("postman-api-key", "Postman API keys: PMAK-"),
        ("linear-api-key", "Linear API keys: lin_api_, lin_oauth_"),
        ("databricks-token", "Databricks personal access tokens: dapi and 32 hex digits"),
        ("pulumi-token", "Pulumi access tokens: pul- and 40 hex digits"),
        ("atlassian-token", "Atlassian API tokens: ATATT3…, ATCTT3…"),
        ("new-relic-key", "New Relic keys: NRAK-, NRII-, NRJS-"),
        ("doppler-token", "Doppler tokens: dp.st., dp.pt., dp.sa., dp.ct., dp.scim., dp.audit."),
        ("heroku-token", "Heroku API keys in the HRKU- format"),
        ("figma-token", "Figma personal access tokens: figd_"),
        ("supabase-token", "Supabase access tokens: sbp_ and 40 hex digits"),
        ("notion-token", "Notion integration tokens: ntn_"),
        ("twilio-api-key", "Twilio API key ids with secrets' shape: SK and 32 hex digits"),
        ("mailgun-key", "Mailgun API keys: key- and 32 hex digits"),
        ("jwt", "JSON Web Tokens whose header decodes to a JOSE header"),
        ("url-credentials", "the password in scheme://user:password@host, a token used as the user"),
        ("authorization-header", "the credential in Authorization: Bearer/Basic/token …"),
        ("secret-assignment", "values after keys naming a secret (password, secret, token, api_key, …) in env, .env, YAML, JSON, INI, command lines"),
        ("high-entropy-assignment", "random-looking values after keys that only hint at a secret (key, auth, salt, session, …)"),
        ("kubernetes-secret-data", "values under a Kubernetes Secret's data: / stringData:, YAML or JSON"),
    ]

    public static let names: [String] = catalogue.map(\.name)
}
