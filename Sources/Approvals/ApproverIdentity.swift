import Foundation

/// Who decides. `id` is the name the approver is audited under: the key id its OIDC token maps
/// to through the issuance mapping (`oidc:{iss}:{sub}`) over HTTP, `local:$USER` for an
/// operator at the CLI.
public struct ApproverIdentity: Sendable, Equatable {
    public var id: String
    /// Groups from the approver's token (or asserted by a local operator, who can write the
    /// state directory anyway).
    public var groups: [String]
    /// Other names the same person is known by, checked by four eyes as well as `id`: e.g. the
    /// key id the issuance mapping would give this person's certificates, when it differs from `id`.
    public var aliases: [String]

    public init(id: String, groups: [String] = [], aliases: [String] = []) {
        self.id = id
        self.groups = groups
        self.aliases = aliases
    }

    var names: [String] { [id] + aliases }

    /// Four eyes: the approver is the requester when any of its names is the key id of the
    /// certificate that asked. Compared byte for byte: key ids are case-sensitive (OIDC `sub` is).
    /// A local operator (`local:alice`) and a certificate (`oidc:…:alice`) live in different
    /// namespaces and never compare equal; `aliases` is how the HTTP wiring links them.
    func isRequester(of record: ApprovalRecord) -> Bool {
        names.contains { Array($0.utf8) == Array(record.requester.keyID.utf8) }
    }

    /// Whether one of the rule's `approvers` entries admits this approver. An entry is
    /// `group:NAME`, `key_id:GLOB`, or bare: a bare entry holding `:` or a glob character
    /// (`*?[`) is a key-id glob (`oidc:*:alice`, `local:*`), anything else a group name.
    /// No entries: anyone but the requester may decide.
    func isListed(in approvers: [String]) -> Bool {
        if approvers.isEmpty { return true }
        return approvers.contains { entry in
            switch ApproverEntry(entry) {
            case .group(let name): return groups.contains(name)
            case .keyID(let glob): return names.contains { fnmatch(glob, $0, 0) == 0 }
            }
        }
    }
}

/// One entry of a scope's `approvers` list.
enum ApproverEntry: Equatable {
    case group(String)
    case keyID(glob: String)

    init(_ entry: String) {
        if entry.hasPrefix("group:") { self = .group(String(entry.dropFirst(6))); return }
        if entry.hasPrefix("key_id:") { self = .keyID(glob: String(entry.dropFirst(7))); return }
        self = entry.contains(where: { ":*?[".contains($0) }) ? .keyID(glob: entry) : .group(entry)
    }
}
