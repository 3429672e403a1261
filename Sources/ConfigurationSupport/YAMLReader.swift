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
