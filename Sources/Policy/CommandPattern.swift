import Foundation

/// One allowlist entry, e.g. `journalctl -u {unit: nginx|postgres} -n {lines: 1..1000}`.
///
/// Tokens are separated by spaces. A literal token matches exactly that word. A placeholder
/// `{name: type}` matches one word of that type:
/// - `{name}`: any word
/// - `{name: /regex/}`: a word the regex matches entirely
/// - `{name: 1..1000}`: a decimal integer in the range
/// - `{name: a|b|c}`: one of the listed words
/// - `{name: path under /var/log}`: an absolute path that stays under the directory after
///   `.` and `..` are resolved lexically
/// A trailing `{name...: type}` matches zero or more remaining words of that type, and a
/// trailing `{name?: type}` zero or one. Placeholders never match a word starting with `-`, so
/// an allowed program cannot be handed an option the pattern did not spell out.
public struct CommandPattern: Sendable, CustomStringConvertible {
    enum WordType: Sendable {
        case any
        case regex(String)
        case integer(ClosedRange<Int>)
        case oneOf(Set<String>)
        case pathUnder(String)
    }

    enum Token: Sendable {
        case literal(String)
        case placeholder(name: String, type: WordType, repeat: Repetition)
    }

    enum Repetition: Sendable { case one, optional, many }

    public let source: String
    let tokens: [Token]

    public var description: String { source }

    /// The words of a pattern without placeholders (nil when it has any).
    public var literalWords: [String]? {
        var words: [String] = []
        for token in tokens {
            guard case .literal(let word) = token else { return nil }
            words.append(word)
        }
        return words
    }

    /// The first word when it is literal: the index key for fast lookup.
    public var programName: String? {
        if case .literal(let w)? = tokens.first { return w }
        return nil
    }

    public struct SyntaxError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    public init(_ source: String) throws {
        self.source = source
        var tokens: [Token] = []
        var rest = Substring(source.trimmingCharacters(in: .whitespaces))
        while !rest.isEmpty {
            if rest.first == "{" {
                guard let close = rest.firstIndex(of: "}") else { throw SyntaxError(description: "placeholder \"\(rest)\" has no closing }") }
                tokens.append(try Self.placeholder(String(rest[rest.index(after: rest.startIndex)..<close])))
                rest = rest[rest.index(after: close)...]
            } else {
                let end = rest.firstIndex(of: " ") ?? rest.endIndex
                let word = String(rest[..<end])
                guard case .success(let split) = ShellWords.split(word), split == [word] else {
                    throw SyntaxError(description: "literal \"\(word)\" is not a plain word (quote-free, no shell characters)")
                }
                tokens.append(.literal(word))
                rest = rest[end...]
            }
            rest = rest.drop(while: { $0 == " " })
        }
        guard !tokens.isEmpty else { throw SyntaxError(description: "empty pattern") }
        for (i, t) in tokens.enumerated() {
            if case .placeholder(_, _, let r) = t, r != .one, i != tokens.count - 1 {
                throw SyntaxError(description: "only the last placeholder may be optional (?) or repeated (...)")
            }
        }
        self.tokens = tokens
    }

    static func placeholder(_ body: String) throws -> Token {
        // Empty subsequences are kept so `{}` and `{:x}` reach the name check instead of
        // indexing an empty list (found by the fuzzer).
        let parts = body.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var name = parts[0]
        var repetition = Repetition.one
        if name.hasSuffix("...") { repetition = .many; name.removeLast(3) } else if name.hasSuffix("?") { repetition = .optional; name.removeLast() }
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw SyntaxError(description: "placeholder name \"\(name)\" must be letters, digits, _ or -")
        }
        guard parts.count == 2 else { return .placeholder(name: name, type: .any, repeat: repetition) }
        let spec = parts[1]
        if spec.hasPrefix("/") && spec.hasSuffix("/") && spec.count >= 2 {
            let re = String(spec.dropFirst().dropLast())
            guard (try? NSRegularExpression(pattern: "^(?:\(re))$")) != nil else { throw SyntaxError(description: "\"\(re)\" is not a valid regular expression") }
            return .placeholder(name: name, type: .regex(re), repeat: repetition)
        }
        if let dots = spec.range(of: ".."), let lo = Int(spec[..<dots.lowerBound]), let hi = Int(spec[dots.upperBound...]) {
            guard lo <= hi else { throw SyntaxError(description: "range \(spec) can never match") }
            return .placeholder(name: name, type: .integer(lo...hi), repeat: repetition)
        }
        if spec.hasPrefix("path under ") {
            let dir = String(spec.dropFirst("path under ".count))
            guard dir.hasPrefix("/") else { throw SyntaxError(description: "\"path under\" needs an absolute directory") }
            return .placeholder(name: name, type: .pathUnder(PathCheck.normalize(dir) ?? dir), repeat: repetition)
        }
        let options = spec.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !options.isEmpty, options.allSatisfy({ !$0.isEmpty && !$0.hasPrefix("-") }) else { throw SyntaxError(description: "\"\(spec)\" is not a placeholder type") }
        return .placeholder(name: name, type: .oneOf(Set(options)), repeat: repetition)
    }

    /// Whether `argv` matches the pattern entirely.
    public func matches(_ argv: [String]) -> Bool {
        var i = 0
        for token in tokens {
            switch token {
            case .literal(let w):
                guard i < argv.count, argv[i] == w else { return false }
                i += 1
            case .placeholder(_, let type, let repetition):
                switch repetition {
                case .one:
                    guard i < argv.count, Self.accepts(type, argv[i]) else { return false }
                    i += 1
                case .optional:
                    if i < argv.count { guard Self.accepts(type, argv[i]) else { return false }; i += 1 }
                case .many:
                    while i < argv.count { guard Self.accepts(type, argv[i]) else { return false }; i += 1 }
                }
            }
        }
        return i == argv.count
    }

    static func accepts(_ type: WordType, _ word: String) -> Bool {
        if word.hasPrefix("-") { return false }
        switch type {
        case .any: return true
        case .regex(let re): return word.range(of: "^(?:\(re))$", options: .regularExpression) != nil
        case .integer(let range):
            guard !word.isEmpty, word.allSatisfy(\.isASCII), word.allSatisfy(\.isNumber), word.count <= 18, let v = Int(word) else { return false }
            return range.contains(v)
        case .oneOf(let set): return set.contains(word)
        case .pathUnder(let dir):
            guard let normalized = PathCheck.normalize(word) else { return false }
            return normalized == dir || normalized.hasPrefix(dir == "/" ? "/" : dir + "/")
        }
    }
}

enum PathCheck {
    /// Resolves `.` and `..` lexically; nil for relative paths and paths that climb above `/`.
    static func normalize(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return nil }
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { guard !parts.isEmpty else { return nil }; parts.removeLast() } else { parts.append(part) }
        }
        return "/" + parts.joined(separator: "/")
    }
}
