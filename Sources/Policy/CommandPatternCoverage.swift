/// Whether every command line one pattern matches is matched by another: how issuance proves
/// that a task's pattern stays inside a scope's before it signs it. The check is conservative —
/// it answers "covered" only when it can show it word by word, so an unusual but harmless
/// pattern may be refused at issuance; the bastion enforces both patterns anyway.
extension CommandPattern {
    public func covers(_ narrower: CommandPattern) -> Bool {
        var mine = tokens[...]
        var theirs = narrower.tokens[...]
        while let token = theirs.first {
            guard let own = mine.first else { return false }
            switch own {
            case .placeholder(_, let type, .many):
                // The scope's trailing repetition takes every remaining word of the task's pattern.
                return theirs.allSatisfy { Self.word($0, fitsIn: type, repeating: true) }
            case .placeholder(_, let type, let repetition):
                guard Self.word(token, fitsIn: type, repeating: false) else {
                    // An optional word the task never uses: skip it.
                    if repetition == .optional { mine = mine.dropFirst(); continue }
                    return false
                }
                if case .placeholder(_, _, let theirRepetition) = token, theirRepetition != .one, repetition == .one { return false }
            case .literal(let word):
                guard case .literal(word) = token else { return false }
            }
            mine = mine.dropFirst()
            theirs = theirs.dropFirst()
        }
        // What is left of the scope's pattern must be able to match nothing.
        return mine.allSatisfy { if case .placeholder(_, _, let r) = $0 { return r != .one } else { return false } }
    }

    /// Whether a task token's words all fit a scope placeholder's type. A repeated task
    /// placeholder fits only a repeated scope placeholder.
    private static func word(_ token: Token, fitsIn type: WordType, repeating: Bool) -> Bool {
        switch token {
        case .literal(let word): return accepts(type, word)
        case .placeholder(_, let theirs, let repetition):
            if repetition == .many && !repeating { return false }
            return type.contains(theirs)
        }
    }
}

extension CommandPattern.WordType {
    /// Whether every word `other` accepts, this type accepts too.
    func contains(_ other: CommandPattern.WordType) -> Bool {
        switch (self, other) {
        case (.any, _): return true
        case (_, .any): return false
        case (.regex(let a), .regex(let b)): return a == b
        case (.integer(let a), .integer(let b)): return a.lowerBound <= b.lowerBound && b.upperBound <= a.upperBound
        case (.pathUnder(let a), .pathUnder(let b)): return a == b || b.hasPrefix(a == "/" ? "/" : a + "/")
        case (_, .oneOf(let words)): return words.allSatisfy { CommandPattern.accepts(self, $0) }
        case (.oneOf(let words), .integer(let range)): return range.count <= 1000 && range.allSatisfy { words.contains(String($0)) }
        default: return false
        }
    }
}
