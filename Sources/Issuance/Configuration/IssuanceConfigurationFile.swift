import ConfigurationSupport
import Foundation
import Policy
import SSHCertificates
import Yams

extension IssuanceConfiguration {
    /// Reads the `issuance:` section of the configuration file; nil when there is none. Every
    /// mistake is a ConfigurationError naming file, line, column and key, like the rest of the file.
    /// `knownScopes` (the file's `scopes:`) lets a mapping to an undefined scope fail at load
    /// instead of producing certificates that can never do anything.
    public static func load(file: String, knownScopes: Set<String>? = nil) throws -> IssuanceConfiguration? {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: file, line: 0, column: 0, key: "(file)", message: "cannot be read as UTF-8 text")
        }
        return try parse(yaml: text, file: file, knownScopes: knownScopes)
    }

    public static func parse(yaml: String, file: String, knownScopes: Set<String>? = nil) throws -> IssuanceConfiguration? {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw ConfigurationError(file: file, line: 1, column: 1, key: "(document)", message: "not valid YAML: \(error)")
        }
        guard let root, let top = root.mapping, let section = top.first(where: { $0.key.string == "issuance" })?.value else { return nil }
        return try parse(node: section, reader: YAMLReader(file: file), knownScopes: knownScopes)
    }

    static func parse(node: Node, reader r: YAMLReader, knownScopes: Set<String>?) throws -> IssuanceConfiguration {
        var c = IssuanceConfiguration()
        let m = try r.mapping(node, "issuance")
        try r.onlyKeys(m, ["listen", "tls", "issuers", "mapping", "max_ttl", "default_ttl", "rate_limit", "max_body_bytes", "max_token_bytes", "bastion_addresses",
                             "audit_prompt", "audit_prompt_max_bytes"], "issuance")
        if let n = r.node(m, "listen") {
            let text = try r.string(n, "issuance.listen")
            guard let address = ListenAddress(text) else { throw r.error(n, "issuance.listen", "\"\(text)\" is not host:port or [v6]:port") }
            c.listenHost = address.host
            c.listenPort = address.port
        }
        if let n = r.node(m, "tls") {
            let t = try r.mapping(n, "issuance.tls")
            try r.onlyKeys(t, ["certificate", "key"], "issuance.tls")
            guard let cert = try r.optionalString(t, "certificate", "issuance.tls"), let key = try r.optionalString(t, "key", "issuance.tls") else {
                throw r.error(n, "issuance.tls", "needs both certificate and key (PEM files)")
            }
            for (k, path) in [("certificate", cert), ("key", key)] where !FileManager.default.isReadableFile(atPath: path) {
                throw r.error(r.node(t, k)!, "issuance.tls.\(k)", "\(path) cannot be read")
            }
            c.tls = TLSFiles(certificate: cert, key: key)
        }
        if c.tls == nil && !isLoopback(c.listenHost) {
            throw r.error(r.node(m, "listen") ?? node, "issuance.listen", "\(c.listenHost) is not a loopback address: plain HTTP would carry bearer tokens in the clear; set issuance.tls")
        }
        c.maxTTL = try r.duration(m, "max_ttl", "issuance").map(UInt64.init) ?? c.maxTTL
        c.defaultTTL = try r.duration(m, "default_ttl", "issuance").map(UInt64.init) ?? min(c.defaultTTL, c.maxTTL)
        if c.defaultTTL > c.maxTTL { throw r.error(r.node(m, "default_ttl")!, "issuance.default_ttl", "is longer than max_ttl (\(c.maxTTL) s)") }
        c.maxBodyBytes = try r.int(m, "max_body_bytes", "issuance", in: 1024...(1 << 20)) ?? c.maxBodyBytes
        c.maxTokenBytes = try r.int(m, "max_token_bytes", "issuance", in: 1024...(64 * 1024)) ?? c.maxTokenBytes
        if let n = r.node(m, "audit_prompt") {
            let text = try r.string(n, "issuance.audit_prompt")
            guard let mode = PromptAuditMode(rawValue: text) else {
                throw r.error(n, "issuance.audit_prompt", "\"\(text)\" is not one of full, hash, none")
            }
            c.auditPrompt = mode
        }
        c.auditPromptMaxBytes = try r.int(m, "audit_prompt_max_bytes", "issuance", in: 256...(1 << 20)) ?? c.auditPromptMaxBytes
        if let n = r.node(m, "rate_limit") {
            let l = try r.mapping(n, "issuance.rate_limit")
            try r.onlyKeys(l, ["per_minute", "burst"], "issuance.rate_limit")
            c.rateLimit.perMinute = try r.int(l, "per_minute", "issuance.rate_limit", in: 1...1_000_000) ?? c.rateLimit.perMinute
            c.rateLimit.burst = try r.int(l, "burst", "issuance.rate_limit", in: 1...1_000_000) ?? c.rateLimit.burst
        }
        if let n = r.node(m, "bastion_addresses") {
            for (i, item) in try r.sequence(n, "issuance.bastion_addresses").enumerated() {
                let text = try r.string(item, "issuance.bastion_addresses[\(i)]")
                guard ListenAddress(text) != nil else {
                    throw r.error(item, "issuance.bastion_addresses[\(i)]", "\"\(text)\" is not host:port or [v6]:port")
                }
                c.bastionAddresses.append(text)
            }
        }
        if let n = r.node(m, "mapping") { c.mapping = try parseMapping(n, "issuance.mapping", r, knownScopes: knownScopes) }
        guard let list = r.node(m, "issuers") else {
            throw ConfigurationError(file: r.file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0, key: "issuance.issuers", message: "is required: at least one trusted OIDC issuer")
        }
        let items = try r.sequence(list, "issuance.issuers")
        if items.isEmpty { throw r.error(list, "issuance.issuers", "needs at least one issuer") }
        for (i, item) in items.enumerated() {
            let issuer = try parseIssuer(item, "issuance.issuers[\(i)]", r, knownScopes: knownScopes)
            if c.issuers.contains(where: { $0.issuer == issuer.issuer }) { throw r.error(item, "issuance.issuers[\(i)].issuer", "issuer \(issuer.issuer) is listed twice") }
            c.issuers.append(issuer)
        }
        return c
    }

    static func parseIssuer(_ node: Node, _ path: String, _ r: YAMLReader, knownScopes: Set<String>?) throws -> IssuerConfiguration {
        let m = try r.mapping(node, path)
        try r.onlyKeys(m, ["issuer", "audiences", "audience", "algorithms", "token_type", "skew", "max_token_age", "jti_replay", "jwks_uri",
                           "refresh_interval", "key_max_age", "mapping"], path)
        guard let url = try r.optionalString(m, "issuer", path), !url.isEmpty else {
            throw r.error(node, "\(path).issuer", "is required (the exact \"iss\" of the provider's tokens)")
        }
        try checkURL(url, r.node(m, "issuer")!, "\(path).issuer", r)
        var audiences = try r.strings(m, "audiences", path)
        if let single = try r.optionalString(m, "audience", path) { audiences.append(single) }
        guard !audiences.isEmpty, audiences.allSatisfy({ !$0.isEmpty }) else {
            throw r.error(node, "\(path).audiences", "is required: the client id(s) tokens must be issued for; a token for any audience would do otherwise")
        }
        var i = IssuerConfiguration(issuer: url, audiences: audiences)
        if let n = r.node(m, "algorithms") {
            let names = try r.strings(m, "algorithms", path)
            guard !names.isEmpty else { throw r.error(n, "\(path).algorithms", "needs at least one algorithm") }
            i.algorithms = try names.map { name in
                if name.lowercased() == "none" { throw r.error(n, "\(path).algorithms", "\"none\" is never accepted: unsigned tokens prove nothing") }
                if name.uppercased().hasPrefix("HS") { throw r.error(n, "\(path).algorithms", "\"\(name)\" is never accepted: HMAC needs a shared secret, so it cannot prove the provider signed") }
                guard let a = JWSAlgorithm(rawValue: name) else {
                    throw r.error(n, "\(path).algorithms", "unknown algorithm \"\(name)\" (supported: \(JWSAlgorithm.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return a
            }
        }
        if let n = r.node(m, "token_type") {
            let t = try r.string(n, "\(path).token_type")
            guard let type = TokenType(rawValue: t) else { throw r.error(n, "\(path).token_type", "must be id_token, access_token or any") }
            i.tokenType = type
        }
        if let skew = try r.duration(m, "skew", path) {
            guard skew <= 300 else { throw r.error(r.node(m, "skew")!, "\(path).skew", "at most 5m: a larger skew makes expired tokens usable") }
            i.skewSeconds = UInt64(skew)
        }
        i.maxTokenAgeSeconds = try r.duration(m, "max_token_age", path).map(UInt64.init) ?? i.maxTokenAgeSeconds
        i.jtiReplay = try r.bool(m, "jti_replay", path) ?? false
        if let uri = try r.optionalString(m, "jwks_uri", path) {
            try checkURL(uri, r.node(m, "jwks_uri")!, "\(path).jwks_uri", r)
            i.jwksURI = uri
        }
        i.refreshIntervalSeconds = try r.duration(m, "refresh_interval", path).map(UInt64.init) ?? i.refreshIntervalSeconds
        i.keyMaxAgeSeconds = try r.duration(m, "key_max_age", path).map(UInt64.init) ?? i.keyMaxAgeSeconds
        if let n = r.node(m, "mapping") { i.mapping = try parseMapping(n, "\(path).mapping", r, knownScopes: knownScopes) }
        return i
    }

    static func parseMapping(_ node: Node, _ path: String, _ r: YAMLReader, knownScopes: Set<String>?) throws -> ClaimMapping {
        let m = try r.mapping(node, path)
        try r.onlyKeys(m, ["key_id", "principals", "groups_claim", "scopes_claim", "allowed_scopes", "group_scopes"], path)
        var mapping = ClaimMapping()
        func template(_ n: Node, _ key: String) throws -> ClaimTemplate {
            let text = try r.string(n, key)
            do { return try ClaimTemplate.parse(text) } catch { throw r.error(n, key, "\(error)") }
        }
        if let n = r.node(m, "key_id") { mapping.keyID = try template(n, "\(path).key_id") }
        if let n = r.node(m, "principals") {
            let items = try r.sequence(n, "\(path).principals")
            guard !items.isEmpty else { throw r.error(n, "\(path).principals", "needs at least one principal (OpenSSH refuses certificates without)") }
            mapping.principals = try items.enumerated().map { try template($1, "\(path).principals[\($0)]") }
        }
        func claimPath(_ key: String) throws -> ClaimPath? {
            guard let n = r.node(m, key) else { return nil }
            let text = try r.string(n, "\(path).\(key)")
            guard let p = ClaimPath(parsing: text) else { throw r.error(n, "\(path).\(key)", "\"\(text)\" is not a claim path like groups or realm_access.roles") }
            return p
        }
        mapping.groupsClaim = try claimPath("groups_claim") ?? mapping.groupsClaim
        mapping.scopesClaim = try claimPath("scopes_claim")
        func checkScope(_ s: String, _ n: Node, _ key: String) throws {
            guard ScopeName.isValid(s) else { throw r.error(n, key, "\"\(s)\" is not a valid scope name") }
            if let knownScopes, !knownScopes.contains(s) { throw r.error(n, key, "scope \"\(s)\" is not defined under scopes:") }
        }
        if let n = r.node(m, "allowed_scopes") {
            let list = try r.strings(m, "allowed_scopes", path)
            for s in list { try checkScope(s, n, "\(path).allowed_scopes") }
            mapping.allowedScopes = Set(list)
        }
        if let n = r.node(m, "group_scopes") {
            for (k, v) in try r.mapping(n, "\(path).group_scopes") {
                let group = try r.string(k, "\(path).group_scopes")
                let key = "\(path).group_scopes.\(group)"
                let scopes: [String]
                if v.sequence != nil { scopes = try r.sequence(v, key).enumerated().map { try r.string($1, "\(key)[\($0)]") } } else { scopes = [try r.string(v, key)] }
                for s in scopes { try checkScope(s, v, key) }
                mapping.groupScopes[group] = scopes
            }
        }
        if mapping.groupScopes.isEmpty && mapping.scopesClaim == nil {
            throw r.error(node, path, "maps nothing to scopes: set group_scopes or scopes_claim")
        }
        return mapping
    }

    /// Issuer and key URLs must be https, except on loopback (test providers).
    static func checkURL(_ text: String, _ node: Node, _ key: String, _ r: YAMLReader) throws {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw r.error(node, key, "\"\(text)\" is not an absolute URL")
        }
        guard scheme == "https" || (scheme == "http" && isLoopback(host)) else {
            throw r.error(node, key, "\"\(text)\" must be https (plain http only on loopback): keys fetched in the clear could be replaced")
        }
    }
}
