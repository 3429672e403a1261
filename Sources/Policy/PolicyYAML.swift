import Foundation
import Yams

/// A mistake in the configuration file, named by file, line, column and key.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible, Equatable {
    public let file: String
    public let line: Int
    public let column: Int
    public let key: String
    public let message: String

    public init(file: String, line: Int, column: Int, key: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.key = key
        self.message = message
    }

    public var description: String { "\(file):\(line):\(column): \(key): \(message)" }
}

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
            try reader.onlyKeys(fields, ["targets", "login", "rights", "commands", "env", "forwards", "remote_forwards", "record_input", "disclose_patterns", "limits"], path)
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
            if rights.contains(.exec) && patterns.isEmpty { throw reader.error(keyNode, path, "grants exec but lists no commands") }
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
                                maxDuration: maxDuration, idleTimeout: idleTimeout))
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

/// Typed access to YAML nodes, every failure naming the key and the node's position. Shared by
/// every section of the configuration file so all of them report mistakes the same way.
public struct YAMLReader: Sendable {
    public let file: String

    public init(file: String) { self.file = file }

    public func error(_ node: Node, _ key: String, _ message: String) -> ConfigurationError {
        ConfigurationError(file: file, line: (node.mark?.line ?? 0), column: (node.mark?.column ?? 0), key: key, message: message)
    }

    public func mapping(_ node: Node, _ key: String) throws -> Node.Mapping {
        guard let m = node.mapping else { throw error(node, key, "expected a mapping") }
        return m
    }

    public func sequence(_ node: Node, _ key: String) throws -> Node.Sequence {
        guard let s = node.sequence else { throw error(node, key, "expected a list") }
        return s
    }

    public func string(_ node: Node, _ key: String) throws -> String {
        guard case .scalar = node, let s = node.string else { throw error(node, key, "expected a string") }
        return s
    }

    public func node(_ m: Node.Mapping, _ key: String) -> Node? { m.first { $0.key.string == key }?.value }

    public func onlyKeys(_ m: Node.Mapping, _ allowed: Set<String>, _ path: String) throws {
        var seen = Set<String>()
        for (k, _) in m {
            let name = k.string ?? "?"
            guard allowed.contains(name) else { throw error(k, "\(path).\(name)", "unknown key (allowed: \(allowed.sorted().joined(separator: ", ")))") }
            guard seen.insert(name).inserted else { throw error(k, "\(path).\(name)", "duplicate key") }
        }
    }

    public func strings(_ m: Node.Mapping, _ key: String, _ path: String, required: Bool = false) throws -> [String] {
        guard let n = node(m, key) else {
            if required { throw ConfigurationError(file: file, line: m.mark?.line ?? 0, column: m.mark?.column ?? 0, key: "\(path).\(key)", message: "is required") }
            return []
        }
        return try sequence(n, "\(path).\(key)").enumerated().map { try string($1, "\(path).\(key)[\($0)]") }
    }

    public func optionalString(_ m: Node.Mapping, _ key: String, _ path: String) throws -> String? {
        try node(m, key).map { try string($0, "\(path).\(key)") }
    }

    public func bool(_ m: Node.Mapping, _ key: String, _ path: String) throws -> Bool? {
        guard let n = node(m, key) else { return nil }
        guard let b = n.bool else { throw error(n, "\(path).\(key)", "expected true or false") }
        return b
    }

    public func int(_ m: Node.Mapping, _ key: String, _ path: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let n = node(m, key) else { return nil }
        guard case .scalar = n, let value = n.int else { throw error(n, "\(path).\(key)", "expected a whole number") }
        guard range.contains(value) else { throw error(n, "\(path).\(key)", "must be between \(range.lowerBound) and \(range.upperBound)") }
        return value
    }

    /// `90s`, `10m`, `1h`, `2d` in seconds.
    public func duration(_ m: Node.Mapping, _ key: String, _ path: String) throws -> Int? {
        guard let n = node(m, key) else { return nil }
        let text = try string(n, "\(path).\(key)")
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        guard let unit = text.last.flatMap({ units[$0] }), let value = Int(text.dropLast()), value > 0 else {
            throw error(n, "\(path).\(key)", "\"\(text)\" is not a duration like 90s, 10m, 1h or 2d")
        }
        return value * unit
    }
}
