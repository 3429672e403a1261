import ConfigurationSupport
import Foundation
import Yams

extension PolicySet {
    /// Parses the `scopes:` section of a Gatehouse configuration file.
    public static func parse(yaml: String, file: String) throws -> PolicySet {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch { throw ConfigurationError(file: file, line: 1, column: 1, key: "(document)", message: "not valid YAML: \(error)") }
        guard let root, let mapping = root.mapping else { throw ConfigurationError(file: file, line: 1, column: 1, key: "(document)", message: "expected a mapping at the top level") }
        guard let scopes = mapping.first(where: { $0.key.string == "scopes" })?.value else { return PolicySet([]) }
        return try parse(node: scopes, file: file)
    }

    /// Parses a `scopes:` mapping node; line numbers come from the node's marks.
    public static func parse(node: Node, file: String) throws -> PolicySet {
        let reader = YAMLReader(file: file)
        let scopes = try reader.mapping(node, "scopes")
        var result: [Scope] = []
        for (keyNode, value) in scopes {
            let name = try reader.string(keyNode, "scopes")
            let path = "scopes.\(name)"
            guard ScopeNameRule.isValid(name) else { throw reader.error(keyNode, path, "is not a valid scope name (letters, digits, -_.:, at most 64)") }
            let fields = try reader.mapping(value, path)
            try reader.onlyKeys(fields, ["targets", "login", "rights", "commands", "env", "forwards", "remote_forwards", "record_input", "disclose_patterns", "limits",
                                        "review", "approvers", "approval_ttl", "approval_webhook", "masking"], path)
            let targets = try reader.strings(fields, "targets", path, required: true).map { TargetSelector($0) }
            let rights = try reader.strings(fields, "rights", path, required: true).map { (text: String) -> Right in
                guard let right = Right(rawValue: text) else {
                    throw reader.error(reader.node(fields, "rights") ?? value, "\(path).rights", "unknown right \"\(text)\" (known: \(Right.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return right
            }
            var patterns: [CommandPattern] = []
            if let commands = reader.node(fields, "commands") {
                for (i, item) in try reader.sequence(commands, "\(path).commands").enumerated() {
                    let text = try reader.string(item, "\(path).commands[\(i)]")
                    do { patterns.append(try CommandPattern(text)) } catch { throw reader.error(item, "\(path).commands[\(i)]", "\(error)") }
                }
            }
            var review: [CommandPattern] = []
            if let list = reader.node(fields, "review") {
                for (i, item) in try reader.sequence(list, "\(path).review").enumerated() {
                    let text = try reader.string(item, "\(path).review[\(i)]")
                    do { review.append(try CommandPattern(text)) } catch { throw reader.error(item, "\(path).review[\(i)]", "\(error)") }
                }
                if !rights.contains(.exec) { throw reader.error(list, "\(path).review", "lists commands for review but does not grant exec, so they can never match") }
            }
            let approvers = try reader.strings(fields, "approvers", path)
            if !approvers.isEmpty && review.isEmpty { throw reader.error(reader.node(fields, "approvers")!, "\(path).approvers", "is set but the scope has no review patterns") }
            let approvalTTL = try reader.duration(fields, "approval_ttl", path) ?? Scope.defaultApprovalTTL
            if !(1...86400).contains(approvalTTL) { throw reader.error(reader.node(fields, "approval_ttl") ?? keyNode, "\(path).approval_ttl", "must be from 1s to 24h") }
            var webhook: Scope.Webhook?
            if let node = reader.node(fields, "approval_webhook") {
                let m = try reader.mapping(node, "\(path).approval_webhook")
                try reader.onlyKeys(m, ["url", "secret_file"], "\(path).approval_webhook")
                guard let url = try reader.optionalString(m, "url", "\(path).approval_webhook"),
                      let secret = try reader.optionalString(m, "secret_file", "\(path).approval_webhook") else {
                    throw reader.error(node, "\(path).approval_webhook", "needs url and secret_file: every notification is signed")
                }
                guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                    throw reader.error(node, "\(path).approval_webhook.url", "\"\(url)\" is not an http(s) URL")
                }
                guard (FileManager.default.contents(atPath: secret)?.count ?? 0) >= 16 else {
                    throw reader.error(node, "\(path).approval_webhook.secret_file", "\(secret) cannot be read or holds fewer than 16 bytes")
                }
                if review.isEmpty { throw reader.error(node, "\(path).approval_webhook", "is set but the scope has no review patterns") }
                webhook = Scope.Webhook(url: url, secretFile: secret)
            }
            if rights.contains(.exec) && patterns.isEmpty && review.isEmpty { throw reader.error(keyNode, path, "grants exec but lists no commands") }
            if !rights.contains(.exec) && !patterns.isEmpty, !rights.contains(.scp) {
                throw reader.error(reader.node(fields, "commands") ?? keyNode, "\(path).commands", "lists commands but does not grant exec, so they can never match")
            }
            let forwards = try forwardPatterns(reader, fields, "forwards", path: path, right: .forwardLocal, rights: Set(rights), keyNode: keyNode)
            let remoteForwards = try forwardPatterns(reader, fields, "remote_forwards", path: path, right: .forwardRemote, rights: Set(rights), keyNode: keyNode)
            var maxDuration: Int?, idleTimeout: Int?
            if let limits = reader.node(fields, "limits") {
                let l = try reader.mapping(limits, "\(path).limits")
                try reader.onlyKeys(l, ["max_duration", "idle_timeout"], "\(path).limits")
                maxDuration = try reader.duration(l, "max_duration", "\(path).limits")
                idleTimeout = try reader.duration(l, "idle_timeout", "\(path).limits")
            }
            result.append(Scope(name: name, targets: targets, login: try reader.optionalString(fields, "login", path), rights: Set(rights), commands: patterns,
                                environment: Set(try reader.strings(fields, "env", path)), forwards: forwards, remoteForwards: remoteForwards,
                                recordInput: try reader.bool(fields, "record_input", path) ?? true,
                                disclosePatterns: try reader.bool(fields, "disclose_patterns", path) ?? true,
                                maxDuration: maxDuration, idleTimeout: idleTimeout, review: review, approvers: approvers, approvalTTL: approvalTTL,
                                approvalWebhook: webhook,
                                masking: try reader.node(fields, "masking").map { try MaskingSelection.parse($0, reader: reader, path: "\(path).masking") }))
        }
        return PolicySet(result)
    }
}

extension PolicySet {
    /// A forwarding list and its right go together: a right without a list could grant nothing,
    /// and a list without its right can never match. Both are mistakes worth a line number.
    static func forwardPatterns(_ reader: YAMLReader, _ fields: Node.Mapping, _ key: String, path: String, right: Right,
                                rights: Set<Right>, keyNode: Node) throws -> [ForwardPattern] {
        var patterns: [ForwardPattern] = []
        if let list = reader.node(fields, key) {
            for (i, item) in try reader.sequence(list, "\(path).\(key)").enumerated() {
                let text = try reader.string(item, "\(path).\(key)[\(i)]")
                do { patterns.append(try ForwardPattern(text)) } catch { throw reader.error(item, "\(path).\(key)[\(i)]", error.description) }
            }
            if !rights.contains(right) { throw reader.error(list, "\(path).\(key)", "is set but the scope does not grant \(right.rawValue), so it can never match") }
        }
        if rights.contains(right) && patterns.isEmpty { throw reader.error(keyNode, path, "grants \(right.rawValue) but lists no \(key) (host:port)") }
        return patterns
    }
}

enum ScopeNameRule {
    static func isValid(_ name: String) -> Bool {
        guard (1...64).contains(name.count), name.first!.isLetter || name.first!.isNumber else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.:".contains($0)) }
    }
}
