import ConfigurationSupport
import Yams

/// A scope's `masking:` choice, by rule name. The Policy module does not know the rules: the
/// bastion checks the names against its own rule set when it loads the file, and reports a
/// mistake at the line kept here.
///
/// ```yaml
/// masking: {rules: [private-key, aws-secret-access-key]}   # only these
/// masking: {exclude: [jwt]}                                # the global set but these
/// masking: {enabled: false}                                # this scope's sessions are not masked
/// ```
public struct MaskingSelection: Sendable, Equatable {
    public var enabled: Bool
    /// Only these rules of the global set (nil: all of it).
    public var rules: [String]?
    public var exclude: [String]
    /// Where the selection is written, for errors about its names.
    public var line: Int
    public var column: Int

    public init(enabled: Bool = true, rules: [String]? = nil, exclude: [String] = [], line: Int = 0, column: Int = 0) {
        self.enabled = enabled
        self.rules = rules
        self.exclude = exclude
        self.line = line
        self.column = column
    }

    static func parse(_ node: Node, reader: YAMLReader, path: String) throws -> MaskingSelection {
        let fields = try reader.mapping(node, path)
        try reader.onlyKeys(fields, ["enabled", "rules", "exclude"], path)
        let enabled = try reader.bool(fields, "enabled", path) ?? true
        let rules = reader.node(fields, "rules") == nil ? nil : try reader.strings(fields, "rules", path)
        let exclude = try reader.strings(fields, "exclude", path)
        if !enabled, rules != nil || !exclude.isEmpty { throw reader.error(node, path, "turns masking off and also selects rules") }
        return MaskingSelection(enabled: enabled, rules: rules, exclude: exclude, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0)
    }
}
