import ConfigurationSupport
import Yams

/// The `masking:` section of a configuration file (or a rules file of its own for
/// `gatehouse mask --rules`):
///
/// ```yaml
/// masking:
///   enabled: true                        # optional (default true): mask every agent-bound stream
///   record: raw                          # optional: raw (keep the target's bytes and mask records)
///                                        #   or masked (keep only what the agent saw)
///   rules: [private-key, github-token]   # optional: only these (default: every rule)
///   exclude: [jwt]                       # optional: all but these
///   custom:
///     - name: acme-api-key
///       keywords: ["acme_live_"]
///       value: {charset: alphanumeric, min_length: 32, max_length: 48, min_entropy: 3.5}
///     - name: ticket-secret
///       keywords: ["TKT-"]
///       regex: 'TKT-[0-9]{4}-(?<secret>[A-Z0-9]{12})'
/// ```
public struct MaskingConfiguration: Sendable {
    public let rules: MaskingRules
    public let enabled: Bool
    public let record: RecordedView

    /// What a recording keeps of a masked stream.
    public enum RecordedView: String, Sendable, CaseIterable {
        /// The bytes the target sent, and a mask record per masked range: replay shows what the
        /// agent saw, `--unmasked` the original.
        case raw
        /// Only what the agent saw: for sites that must not store secrets at all.
        case masked
    }

    public init(rules: MaskingRules = .builtin, enabled: Bool = true, record: RecordedView = .raw) {
        self.rules = rules
        self.enabled = enabled
        self.record = record
    }

    /// Parses a whole YAML document: either one with a `masking:` key at the top, or the
    /// section's mapping itself.
    public static func parse(yaml: String, file: String) throws -> MaskingConfiguration {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch { throw ConfigurationError(file: file, line: 1, column: 1, key: "(document)", message: "not valid YAML: \(error)") }
        guard let root else { return MaskingConfiguration() }
        guard let mapping = root.mapping else { throw ConfigurationError(file: file, line: 1, column: 1, key: "(document)", message: "expected a mapping at the top level") }
        if let section = mapping.first(where: { $0.key.string == "masking" })?.value { return try parse(node: section, file: file) }
        return try parse(node: root, file: file)
    }

    /// Parses the `masking:` mapping node; errors name file:line:column and the key.
    public static func parse(node: Node, file: String, path: String = "masking") throws -> MaskingConfiguration {
        let reader = YAMLReader(file: file)
        let fields = try reader.mapping(node, path)
        try reader.onlyKeys(fields, ["enabled", "record", "rules", "exclude", "custom"], path)
        let enabled = try reader.bool(fields, "enabled", path) ?? true
        var record = RecordedView.raw
        if let text = try reader.optionalString(fields, "record", path) {
            guard let value = RecordedView(rawValue: text) else { throw reader.error(reader.node(fields, "record")!, "\(path).record", "expected raw or masked") }
            record = value
        }
        var custom: [CustomRule] = []
        if let list = reader.node(fields, "custom") {
            for (i, item) in try reader.sequence(list, "\(path).custom").enumerated() {
                let rule = try parseCustomRule(item, reader: reader, path: "\(path).custom[\(i)]")
                if BuiltinRules.names.contains(rule.name) || custom.contains(where: { $0.name == rule.name }) {
                    throw reader.error(item, "\(path).custom[\(i)].name", "\"\(rule.name)\" is already a rule's name")
                }
                custom.append(rule)
            }
        }
        let known = BuiltinRules.names + custom.map(\.name)
        func names(_ key: String) throws -> [String]? {
            guard let list = reader.node(fields, key) else { return nil }
            return try reader.sequence(list, "\(path).\(key)").enumerated().map { i, item in
                let name = try reader.string(item, "\(path).\(key)[\(i)]")
                guard known.contains(name) else { throw reader.error(item, "\(path).\(key)[\(i)]", "unknown rule \"\(name)\" (known: \(known.joined(separator: ", ")))") }
                return name
            }
        }
        let rules = try MaskingRules(rules: try names("rules"), exclude: try names("exclude") ?? [], custom: custom)
        return MaskingConfiguration(rules: rules, enabled: enabled, record: record)
    }

    static func parseCustomRule(_ node: Node, reader: YAMLReader, path: String) throws -> CustomRule {
        let fields = try reader.mapping(node, path)
        try reader.onlyKeys(fields, ["name", "keywords", "case_insensitive", "regex", "value", "mask"], path)
        guard let nameNode = reader.node(fields, "name") else { throw reader.error(node, "\(path).name", "is required") }
        let name = try reader.string(nameNode, "\(path).name")
        guard (2...64).contains(name.count), name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }) else {
            throw reader.error(nameNode, "\(path).name", "\"\(name)\" is not a rule name (lowercase letters, digits and -, 2 to 64)")
        }
        let keywords = try reader.strings(fields, "keywords", path, required: true)
        guard !keywords.isEmpty else { throw reader.error(reader.node(fields, "keywords")!, "\(path).keywords", "needs at least one keyword (the prefilter that keeps masking fast)") }
        for (i, keyword) in keywords.enumerated() where !(3...MaskingLimits.maxKeywordLength).contains(keyword.utf8.count) || !keyword.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            let item = reader.node(fields, "keywords")!.sequence!.map { $0 }[i]
            throw reader.error(item, "\(path).keywords[\(i)]", "\"\(keyword)\" must be 3 to \(MaskingLimits.maxKeywordLength) printable ASCII characters")
        }
        let caseInsensitive = try reader.bool(fields, "case_insensitive", path) ?? false
        let regexNode = reader.node(fields, "regex"), valueNode = reader.node(fields, "value")
        switch (regexNode, valueNode) {
        case (nil, nil): throw reader.error(node, path, "needs either regex or value")
        case (.some, .some): throw reader.error(valueNode!, "\(path).value", "give regex or value, not both")
        case (.some(let regexNode), nil):
            if reader.node(fields, "mask") != nil { throw reader.error(reader.node(fields, "mask")!, "\(path).mask", "applies to value rules; a regex masks its `secret` group or its whole match") }
            let pattern = try reader.string(regexNode, "\(path).regex")
            do {
                return CustomRule(name: name, keywords: keywords, caseInsensitive: caseInsensitive, matcher: .regex(try RegexBox(pattern)))
            } catch {
                throw reader.error(regexNode, "\(path).regex", "not a valid regular expression: \(pattern)")
            }
        case (nil, .some(let valueNode)):
            let shape = try reader.mapping(valueNode, "\(path).value")
            try reader.onlyKeys(shape, ["charset", "min_length", "max_length", "min_entropy"], "\(path).value")
            let charsetName = try reader.optionalString(shape, "charset", "\(path).value") ?? "alphanumeric"
            guard let charset = CustomRule.Charset(rawValue: charsetName) else {
                throw reader.error(reader.node(shape, "charset")!, "\(path).value.charset",
                                   "unknown charset \"\(charsetName)\" (known: \(CustomRule.Charset.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let minLength = try reader.int(shape, "min_length", "\(path).value", in: 1...4000) ?? 16
            let maxLength = try reader.int(shape, "max_length", "\(path).value", in: 1...4000) ?? max(minLength, 256)
            guard minLength <= maxLength else { throw reader.error(reader.node(shape, "max_length") ?? valueNode, "\(path).value.max_length", "is less than min_length") }
            var minEntropy: Double? = nil
            if let entropyNode = reader.node(shape, "min_entropy") {
                guard let value = entropyNode.float, (0...8).contains(value) else { throw reader.error(entropyNode, "\(path).value.min_entropy", "expected bits per character between 0 and 8") }
                minEntropy = value
            }
            let mask = try reader.optionalString(fields, "mask", path) ?? "whole"
            guard mask == "whole" || mask == "value" else { throw reader.error(reader.node(fields, "mask")!, "\(path).mask", "expected whole or value") }
            return CustomRule(name: name, keywords: keywords, caseInsensitive: caseInsensitive,
                              matcher: .shape(.init(charset: charset, length: minLength...maxLength, minEntropy: minEntropy, maskKeyword: mask == "whole")))
        }
    }
}
