import ConfigurationSupport
import Policy
import Yams

extension BastionConfiguration {
    /// A scope's `targets` entry that is a plain name (no glob, no `key=value` label) must name a
    /// configured target. A glob or label may match nothing yet (targets added later); a plain
    /// name that matches nothing is a typo that silently grants nothing, or grants a target
    /// added later under that name without anyone reviewing the scope again. Refused with the
    /// entry's file, line and column, as unknown keys are.
    static func checkScopeTargets(_ scopes: Node, targets: Set<String>, reader r: YAMLReader) throws {
        guard let mapping = scopes.mapping else { return }
        for (keyNode, value) in mapping {
            guard let scope = keyNode.string, let fields = value.mapping, let list = r.node(fields, "targets")?.sequence else { continue }
            for (i, item) in list.enumerated() {
                guard let name = item.string, isPlainName(name), !targets.contains(name) else { continue }
                let known = targets.isEmpty ? "the targets section is empty" : "configured: \(targets.sorted().joined(separator: ", "))"
                throw r.error(item, "scopes.\(scope).targets[\(i)]",
                              "\"\(name)\" is not a configured target (\(known)); use a glob (\(name)*) or a label (key=value) to match targets that do not exist yet")
            }
        }
    }

    /// No glob metacharacter and no label selector: `TargetSelector` would match it literally.
    static func isPlainName(_ text: String) -> Bool {
        !text.contains { "*?[=\\".contains($0) }
    }
}
