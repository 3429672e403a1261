import ConfigurationSupport
import Masking
import Policy

/// `masking:` and each scope's `masking:`: which rules mask the output of a session, compiled
/// once when the file is read (and again on reload), shared by every session's maskers.
public struct MaskingSettings: Sendable {
    /// The global section: the rule set (built-in and custom), whether scopes without their own
    /// choice are masked, and what recordings keep.
    public var global = MaskingConfiguration()
    /// The rule sets of scopes with their own `masking:` (nil: that scope is not masked).
    public var scopeRules: [String: MaskingRules?] = [:]

    public init() {}

    /// The rules that mask a session allowed by `scope`, nil when it is not masked.
    public func rules(forScope scope: String) -> MaskingRules? {
        if let own = scopeRules[scope] { return own }
        return global.enabled ? global.rules : nil
    }

    /// Compiles each scope's selection against the global rule set; an unknown name is a
    /// mistake at the scope's line.
    static func compile(global: MaskingConfiguration, policy: PolicySet, file: String) throws -> MaskingSettings {
        var settings = MaskingSettings()
        settings.global = global
        for (name, scope) in policy.scopes {
            guard let selection = scope.masking else { continue }
            guard selection.enabled else { settings.scopeRules[name] = .some(nil); continue }
            do {
                settings.scopeRules[name] = try global.rules.selecting(rules: selection.rules, exclude: selection.exclude)
            } catch {
                throw ConfigurationError(file: file, line: selection.line, column: selection.column, key: "scopes.\(name).masking", message: "\(error)")
            }
        }
        return settings
    }
}
