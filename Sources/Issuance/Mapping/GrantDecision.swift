import SSHCertificates

/// What a verified token is granted: the certificate's identity fields, and the claim values
/// that decided them (for the audit log).
public struct Grant: Sendable, Equatable {
    public var keyID: String
    public var principals: [String]
    public var scopes: [String]
    /// Claim path → the values read from it, e.g. `groups` → `ops,dev`.
    public var decidingClaims: [String: String]
}

extension ClaimMapping {
    /// Applies the mapping. Refusals name the rule: `key_id` / `principals` when a template's
    /// claim is missing or yields an unusable value, `scopes` when nothing maps to a scope.
    public func grant(for claims: [String: JSONValue]) -> Result<Grant, Refusal> {
        var deciding: [String: String] = [:]
        let keyID: String
        switch renderKeyID(claims) {
        case .failure(let r): return .failure(r)
        case .success(let k): keyID = k
        }
        var principals: [String] = []
        for template in self.principals {
            switch template.render(claims) {
            case .failure(let missing):
                return .failure(Refusal(.missingClaim, check: "principals", "principal template \"\(template)\" needs claim \"\(missing.path)\", which the token lacks or is not a string"))
            case .success(let p):
                guard Self.isUsablePrincipal(p) else {
                    return .failure(Refusal(.missingClaim, check: "principals", "principal \"\(p)\" from template \"\(template)\" is empty or holds commas, spaces or control characters"))
                }
                if !principals.contains(p) { principals.append(p) }
            }
        }
        var scopes: [String] = []
        func add(_ s: String) { if !scopes.contains(s) { scopes.append(s) } }
        let groups = groupsClaim.strings(claims) ?? []
        if groupsClaim.lookup(claims) != nil { deciding[groupsClaim.description] = groups.joined(separator: ",") }
        for group in groups { for s in groupScopes[group] ?? [] { add(s) } }
        if let scopesClaim {
            let named = scopesClaim.strings(claims) ?? []
            if scopesClaim.lookup(claims) != nil { deciding[scopesClaim.description] = named.joined(separator: ",") }
            for s in named where ScopeName.isValid(s) && (allowedScopes?.contains(s) ?? true) { add(s) }
        }
        guard !scopes.isEmpty else {
            let source = groupsClaim.lookup(claims) == nil ? "the token has no \"\(groupsClaim)\" claim"
                : "groups [\(groups.joined(separator: ", "))] map to no scope"
            return .failure(Refusal(.noScopes, check: "scopes", "the token is valid but grants no scope: \(source)"))
        }
        return .success(Grant(keyID: keyID, principals: principals, scopes: scopes.sorted(), decidingClaims: deciding))
    }

    /// The key id the mapping gives these claims: what the certificates of this person carry,
    /// so also what four eyes compares an approver with.
    func renderKeyID(_ claims: [String: JSONValue]) -> Result<String, Refusal> {
        switch keyID.render(claims) {
        case .failure(let missing):
            return .failure(Refusal(.missingClaim, check: "key_id", "key id template \"\(keyID)\" needs claim \"\(missing.path)\", which the token lacks or is not a string"))
        case .success(let k):
            guard !k.isEmpty, k.utf8.count <= 512, !k.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
                return .failure(Refusal(.missingClaim, check: "key_id", "the key id from template \"\(keyID)\" is empty, longer than 512 bytes or holds control characters"))
            }
            return .success(k)
        }
    }

    /// Principals end up in sshd's comma-separated AuthorizedPrincipals matching and in logs.
    static func isUsablePrincipal(_ p: String) -> Bool {
        !p.isEmpty && p.utf8.count <= 255 && !p.unicodeScalars.contains { $0.value <= 0x20 || $0.value == 0x7f || $0 == "," }
    }
}
