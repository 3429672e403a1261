import Crypto
import Foundation
import Yams

/// What a reload changed, for the `server.reload` audit record: the SHA-256 of the file before
/// and after, and which targets and scopes were added, removed or changed. "Changed" compares
/// each entry's YAML re-serialized, so comments, key order and layout do not count and every
/// value does.
public struct ConfigurationDiff: Sendable, Equatable {
    public var oldSHA256: String
    public var newSHA256: String
    public var targets: Changes
    public var scopes: Changes
    /// The global `masking:` section differs (scopes' own `masking:` count as scope changes).
    public var maskingChanged: Bool

    public struct Changes: Sendable, Equatable {
        public var added: [String] = []
        public var removed: [String] = []
        public var changed: [String] = []
        public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }
    }

    public init(old: [UInt8], new: [UInt8]) {
        oldSHA256 = Self.hex(SHA256.hash(data: old))
        newSHA256 = Self.hex(SHA256.hash(data: new))
        let before = Self.sections(old), after = Self.sections(new)
        targets = Self.compare(before["targets"] ?? [:], after["targets"] ?? [:])
        scopes = Self.compare(before["scopes"] ?? [:], after["scopes"] ?? [:])
        maskingChanged = Self.section("masking", old) != Self.section("masking", new)
    }

    /// The canonical YAML of one top-level section ("" when absent).
    static func section(_ name: String, _ bytes: [UInt8]) -> String {
        guard let text = String(validating: bytes, as: UTF8.self), let root = try? Yams.compose(yaml: text), let top = root.mapping,
              let node = top.first(where: { $0.key.string == name })?.value else { return "" }
        return (try? Yams.serialize(node: node)) ?? ""
    }

    /// Audit details: names comma-separated, empty lists left out.
    public var auditDetails: [String: String] {
        var details = ["old_sha256": oldSHA256, "new_sha256": newSHA256]
        for (section, changes) in [("targets", targets), ("scopes", scopes)] {
            for (what, names) in [("added", changes.added), ("removed", changes.removed), ("changed", changes.changed)] where !names.isEmpty {
                details["\(section)_\(what)"] = names.joined(separator: ",")
            }
        }
        if maskingChanged { details["masking_changed"] = "true" }
        if oldSHA256 == newSHA256 { details["unchanged"] = "true" }
        return details
    }

    /// name → canonical YAML of its entry, for the `targets` and `scopes` sections.
    static func sections(_ bytes: [UInt8]) -> [String: [String: String]] {
        guard let text = String(validating: bytes, as: UTF8.self), let root = try? Yams.compose(yaml: text), let top = root.mapping else { return [:] }
        var result: [String: [String: String]] = [:]
        for section in ["targets", "scopes"] {
            guard let entries = top.first(where: { $0.key.string == section })?.value.mapping else { continue }
            var byName: [String: String] = [:]
            for (key, value) in entries {
                guard let name = key.string else { continue }
                byName[name] = (try? Yams.serialize(node: value)) ?? ""
            }
            result[section] = byName
        }
        return result
    }

    static func compare(_ before: [String: String], _ after: [String: String]) -> Changes {
        var changes = Changes()
        changes.added = after.keys.filter { before[$0] == nil }.sorted()
        changes.removed = before.keys.filter { after[$0] == nil }.sorted()
        changes.changed = after.keys.filter { before[$0] != nil && before[$0] != after[$0] }.sorted()
        return changes
    }

    static func hex(_ digest: SHA256.Digest) -> String { digest.map { String(format: "%02x", $0) }.joined() }
}
