/// What a configuration key says about its value: `DB_PASSWORD`, `client_secret`,
/// `aws_secret_access_key`, `x-api-key` promise a secret; `key`, `auth`, `salt` only hint at
/// one (the value must then look random); `password_file`, `token_type`, `secretName` name
/// something else. Keys are split into words at `_ - .` and lower-to-upper case changes.
enum KeyKind: Equatable {
    case none
    /// A key that names a secret outright.
    case secret
    /// AWS's secret access key (the value has a known shape).
    case awsSecret
    /// A key that only hints at a secret.
    case weak
    /// An HTTP `Authorization` header: the value is a scheme and a credential.
    case authorization
}

enum SecretKeyNames {
    /// Words that name a secret on their own, also inside a longer word (`PGPASSWORD`).
    static let secretWords = ["password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey", "privatekey", "secretkey", "credential"]
        .map { Array($0.utf8) }
    /// Short words that name a secret only as a whole word.
    static let secretSegments: Set<String> = ["pass", "pwd", "pw", "psk", "dsn", "masterauth", "requirepass"]
    /// Words ending in `pass` that are not a password (`SSHPASS`, `DBPASS`, `ROOTPASS` are).
    static let passLookalikes: Set<String> = ["bypass", "compass", "encompass", "overpass", "underpass", "trespass", "surpass", "lowpass",
                                              "highpass", "bandpass", "allpass", "firstpass", "onepass", "multipass", "singlepass", "twopass"]
    /// `key` names a secret after these words (`api_key`, `signing-key`, `AccountKey`).
    static let keyQualifiers: Set<String> = ["api", "access", "secret", "private", "signing", "sign", "encryption", "encrypt", "master",
                                              "client", "license", "app", "auth", "account", "service", "shared", "hmac", "jwt", "webhook",
                                              "deploy", "admin", "root", "storage", "subscription", "consumer", "bot", "primary", "secondary"]
    /// Words that hint at a secret: the value must look random.
    static let weakSegments: Set<String> = ["key", "auth", "salt", "cookie", "session", "sig", "signature", "hmac", "bearer", "jwt", "private", "cred", "creds", "nonce"]
    /// Words that make the key name something else than the secret itself.
    static let otherThings: Set<String> = [
        "type", "types", "length", "len", "name", "names", "file", "files", "path", "paths", "dir", "url", "uri", "urls", "endpoint",
        "ttl", "expiry", "expires", "expiration", "expire", "expired", "hint", "prompt", "count", "max", "min", "tokens", "tokenizer",
        "tokenize", "tokenized", "ref", "refs", "version", "format", "policy", "policies", "mode", "enabled", "enable", "disabled",
        "size", "limit", "limits", "usage", "header", "field", "at", "date", "time", "timeout", "rotation", "algorithm", "alg",
        "method", "strategy", "label", "description", "desc", "provider", "manager", "secretary", "secretaries", "reset", "change",
        "changed", "less", "required", "kind", "placeholder", "example", "prefix", "suffix", "env", "var", "source", "store",
        "backend", "location", "generator", "validator", "validation", "regex", "pattern", "fingerprint", "mount", "volume",
        "volumes", "template", "class", "index", "input", "output", "spec", "budget", "status", "state", "scope", "scopes",
        "audience", "issuer", "exchange", "request", "response", "error", "errors", "message", "msg", "text", "keyring",
        "keyid", "keys", "secrets", "existing", "selector", "duration", "lifetime", "interval", "seconds", "minutes",
        "days", "age", "use", "parameter", "param", "params", "last", "last4", "first", "preview", "public", "publishable", "pub",
    ]

    /// The words of `key` in lowercase (ASCII).
    static func words(_ w: ByteWindow, _ key: Range<Int>) -> [String] {
        var words: [String] = []
        var current: [UInt8] = []
        var previous: UInt8 = 0
        for i in key {
            let b = w[i]
            let isUpper = ByteClass.byte(b, isIn: .upper)
            if !ByteClass.byte(b, isIn: .alphanumeric) {
                if !current.isEmpty { words.append(String(decoding: current, as: UTF8.self)); current.removeAll(keepingCapacity: true) }
            } else {
                if isUpper, ByteClass.byte(previous, isIn: .lower), !current.isEmpty {
                    words.append(String(decoding: current, as: UTF8.self)); current.removeAll(keepingCapacity: true)
                }
                current.append(asciiLower(b))
            }
            previous = b
        }
        if !current.isEmpty { words.append(String(decoding: current, as: UTF8.self)) }
        return words
    }

    /// Does the key hold a stem a secret-naming key holds somewhere (`pass`, `pw`, `secret`,
    /// `token`, `key`, `auth`, …)? Most keys (`level`, `time`, `Name`) are turned away here,
    /// before they are split into words. Runs at every `:` and `=` of the output, so it is a
    /// switch over bytes with no allocation.
    static func mightNameSecret(_ w: ByteWindow, _ key: Range<Int>) -> Bool {
        let end = key.upperBound
        @inline(__always) func follows(_ i: Int, _ stem: StaticString) -> Bool {
            let n = stem.utf8CodeUnitCount
            guard i + n <= end else { return false }
            let p = stem.utf8Start
            for k in 0..<n where asciiLower(w[i + k]) != p[k] { return false }
            return true
        }
        for i in key {
            let next = i + 1
            switch asciiLower(w[i]) {
            case UInt8(ascii: "p"): if follows(next, "ass") || follows(next, "w") || follows(next, "riv") || follows(next, "sk") { return true }
            case UInt8(ascii: "s"): if follows(next, "ecret") || follows(next, "alt") || follows(next, "ession") || follows(next, "ig") { return true }
            case UInt8(ascii: "t"): if follows(next, "oken") { return true }
            case UInt8(ascii: "k"): if follows(next, "ey") { return true }
            case UInt8(ascii: "a"): if follows(next, "uth") { return true }
            case UInt8(ascii: "c"): if follows(next, "ookie") || follows(next, "red") { return true }
            case UInt8(ascii: "b"): if follows(next, "earer") { return true }
            case UInt8(ascii: "j"): if follows(next, "wt") { return true }
            case UInt8(ascii: "h"): if follows(next, "mac") { return true }
            case UInt8(ascii: "n"): if follows(next, "once") { return true }
            case UInt8(ascii: "d"): if follows(next, "sn") { return true }
            default: continue
            }
        }
        return false
    }

    static func classify(_ w: ByteWindow, _ key: Range<Int>) -> KeyKind {
        guard key.count >= 2, mightNameSecret(w, key) else { return .none }
        let parts = words(w, key)
        guard !parts.isEmpty else { return .none }
        let joined = parts.joined()
        if joined == "authorization" || joined == "proxyauthorization" { return .authorization }
        if parts.contains(where: otherThings.contains) { return .none }
        if joined.hasBytes("secretaccesskey") || (parts.contains("aws") && parts.contains("secret")) { return .awsSecret }
        for (index, part) in parts.enumerated() {
            if secretSegments.contains(part) { return .secret }
            if part.count > 4, part.hasSuffix("pass"), !passLookalikes.contains(part) { return .secret }
            if part == "key", index > 0, keyQualifiers.contains(parts[index - 1]) { return .secret }
            // `userPasswordKey`, `tokenKey`: the name of the entry that holds the secret, not the secret.
            if part == "key", index == parts.count - 1, index > 0, ["password", "passwd", "token", "pass", "pwd"].contains(parts[index - 1]) { return .none }
            let bytes = Array(part.utf8)
            for word in secretWords where bytes.count >= word.count && contains(bytes, word) { return .secret }
        }
        return parts.contains(where: weakSegments.contains) ? .weak : .none
    }

    private static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return true }
        }
        return false
    }
}
