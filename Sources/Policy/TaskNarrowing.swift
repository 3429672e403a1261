import Foundation

/// What a task certificate narrows its scopes to, read from its own extensions
/// (`targets@gatehouse`, `commands@gatehouse`, `max-sessions@gatehouse`). Narrowing only ever
/// removes: the bastion allows the intersection of the scopes' rules and the narrowing, and a
/// narrowing that does not parse makes the certificate unusable, never wider.
public struct TaskNarrowing: Sendable, Equatable {
    /// Target names or globs the certificate may reach (nil: every target its scopes reach).
    public let targets: [String]?
    /// The commands the task may run (nil: whatever its scopes allow). When set, only exec of
    /// a listed command is allowed: no shell, no subsystem, no forwarding.
    public let commands: [TaskCommand]?
    /// How many sessions the certificate may open in its whole life (nil: no budget).
    public let maxSessions: Int?

    public static let unrestricted = TaskNarrowing()

    public static let maximumEntries = 64
    public static let maximumSessions = 10_000

    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        /// The extension that did not parse.
        public let field: String
        public let description: String
    }

    private init() {
        targets = nil
        commands = nil
        maxSessions = nil
    }

    /// Checks each part strictly; `field` in the error names the extension (or request field).
    public init(targets: [String]?, commands: [String]?, maxSessions: Int?) throws(SyntaxError) {
        if let targets {
            guard (1...Self.maximumEntries).contains(targets.count) else {
                throw SyntaxError(field: "targets", description: "lists \(targets.count) targets; 1 to \(Self.maximumEntries) are accepted")
            }
            for target in targets where !TargetGlob.isValid(target) {
                throw SyntaxError(field: "targets", description: "\"\(target.prefix(80))\" is not a target name or glob (letters, digits, -_. and * ? [ ])")
            }
        }
        if let commands {
            guard (1...Self.maximumEntries).contains(commands.count) else {
                throw SyntaxError(field: "commands", description: "lists \(commands.count) commands; 1 to \(Self.maximumEntries) are accepted")
            }
        }
        if let maxSessions, !(1...Self.maximumSessions).contains(maxSessions) {
            throw SyntaxError(field: "max_sessions", description: "\(maxSessions) is not from 1 to \(Self.maximumSessions)")
        }
        self.targets = targets
        if let commands {
            var compiled: [TaskCommand] = []
            for command in commands {
                do { compiled.append(try TaskCommand(command)) } catch { throw SyntaxError(field: "commands", description: error.description) }
            }
            self.commands = compiled
        } else {
            self.commands = nil
        }
        self.maxSessions = maxSessions
    }

    public var isUnrestricted: Bool { targets == nil && commands == nil && maxSessions == nil }

    public func covers(_ target: TargetDescriptor) -> Bool {
        targets?.contains { fnmatch($0, target.name, 0) == 0 } ?? true
    }

    /// The task entry that allows `argv`, if any (always nil-free when commands are not narrowed).
    public func command(matching argv: [String]) -> TaskCommand? {
        commands?.first { $0.matches(argv) }
    }
}

/// One command of a task: an exact command line (`grep -r 'server name' /etc/nginx`) or a
/// pattern in the policy language (`journalctl -u nginx -n {lines: 1..500}`). A line that
/// parses as a pattern is one; a line of plain words is both, and means the same either way.
public struct TaskCommand: Sendable, Equatable, CustomStringConvertible {
    public enum Form: Sendable {
        case pattern(CommandPattern)
        case exact([String])
    }

    public let source: String
    public let form: Form

    public static let maximumLength = 1024

    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    public init(_ source: String) throws(SyntaxError) {
        guard !source.isEmpty, source.utf8.count <= Self.maximumLength else {
            throw SyntaxError(description: "a command must be 1 to \(Self.maximumLength) bytes")
        }
        self.source = source
        if let pattern = try? CommandPattern(source) {
            // Plain words are an exact command: decided like one, by the bastion's own code.
            form = pattern.literalWords.map(Form.exact) ?? .pattern(pattern)
            return
        }
        switch ShellWords.split(source) {
        case .success(let words): form = .exact(words)
        case .failure(let refusal):
            throw SyntaxError(description: "\"\(source.prefix(120))\" is neither a pattern nor a plain command line: \(refusal.description)")
        }
    }

    public func matches(_ argv: [String]) -> Bool {
        switch form {
        case .pattern(let pattern): return pattern.matches(argv)
        case .exact(let words): return words == argv
        }
    }

    public var description: String { source }

    public static func == (a: TaskCommand, b: TaskCommand) -> Bool { a.source == b.source }
}

/// Target names as a task may list them: a target name, or a glob over names.
public enum TargetGlob {
    public static func isValid(_ text: String) -> Bool {
        // At most four `*`: fnmatch backtracks, and a requester chooses the glob.
        guard (1...64).contains(text.utf8.count), text.filter({ $0 == "*" }).count <= 4 else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.*?[]".contains($0)) }
    }
}

/// Everything one certificate is entitled to: its scopes, narrowed by its task. Every policy
/// question takes one, so no caller can ask about the scopes and forget the narrowing.
public struct Entitlement: Sendable, Equatable {
    public let scopes: [String]
    public let task: TaskNarrowing

    public init(scopes: [String], task: TaskNarrowing = .unrestricted) {
        self.scopes = scopes
        self.task = task
    }
}
