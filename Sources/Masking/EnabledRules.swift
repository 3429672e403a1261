/// The rule names a detector may report in one rule set (a detector that finds several kinds
/// asks before naming one, so an excluded rule is never reported).
struct EnabledRules: Sendable {
    let names: Set<String>
    @inline(__always) func contains(_ name: String) -> Bool { names.contains(name) }
}
