/// The allowlist of one scope, with patterns indexed by their literal program name so a
/// decision looks at the few patterns that can match, not the whole list.
public struct CommandAllowlist: Sendable {
    public let patterns: [CommandPattern]
    private let byProgram: [String: [Int]]
    private let wildcard: [Int]

    public init(_ patterns: [CommandPattern]) {
        self.patterns = patterns
        var byProgram: [String: [Int]] = [:]
        var wildcard: [Int] = []
        for (i, p) in patterns.enumerated() {
            if let name = p.programName { byProgram[name, default: []].append(i) } else { wildcard.append(i) }
        }
        self.byProgram = byProgram
        self.wildcard = wildcard
    }

    public enum Decision: Sendable, Equatable {
        /// `command` is what is sent to the target: rebuilt from the checked words.
        case allow(argv: [String], command: String, pattern: String)
        case deny(CommandRefusal)
    }

    /// Splits, checks and matches an exec string; on allow, rebuilds the command from the words
    /// that were checked, quoted so the remote shell runs exactly that argv.
    public func decide(_ command: String) -> Decision {
        let argv: [String]
        switch ShellWords.split(command) {
        case .failure(let refusal): return .deny(refusal)
        case .success(let words): argv = words
        }
        for i in (byProgram[argv[0]] ?? []) + wildcard where patterns[i].matches(argv) {
            return .allow(argv: argv, command: ShellWords.join(argv), pattern: patterns[i].source)
        }
        return .deny(CommandRefusal(.noMatchingPattern, "no allowed pattern matches \"\(argv.joined(separator: " ").prefix(200))\""))
    }
}
