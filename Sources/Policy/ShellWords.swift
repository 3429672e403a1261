/// Splits an exec string into words by POSIX shell rules, refusing — never stripping or
/// rewriting — anything the remote shell would interpret instead of passing as a literal word:
/// operators, redirections, substitutions, expansions, globs, braces, tildes, comments,
/// assignments, newlines, NUL and control characters, and non-ASCII outside quotes (look-alike
/// characters such as a fullwidth semicolon must not read as one thing to a human and another
/// to the matcher).
public enum ShellWords {
    public static let maximumLength = 64 * 1024

    public static func split(_ command: String) -> Result<[String], CommandRefusal> {
        split(bytes: Array(command.utf8))
    }

    public static func split(bytes: [UInt8]) -> Result<[String], CommandRefusal> {
        if bytes.count > maximumLength { return .failure(.init(.tooLong, "the command is \(bytes.count) bytes; at most \(maximumLength) are accepted")) }
        if let nul = bytes.firstIndex(of: 0) { return .failure(.init(.nulByte, "NUL byte in the command", offset: nul)) }
        guard String(validating: bytes, as: UTF8.self) != nil else { return .failure(.init(.invalidUTF8, "the command is not valid UTF-8")) }

        enum State { case between, unquoted, single, double }
        // `between` is outside any word; a quote entered from there still makes a word, so
        // '' is an empty argument, as in the shell.
        var state = State.between
        var words: [[UInt8]] = []
        var word: [UInt8] = []
        var quoteStart = 0
        var i = 0
        func refuse(_ code: CommandRefusal.Code, _ what: String, _ at: Int) -> Result<[String], CommandRefusal> {
            .failure(.init(code, what, offset: at))
        }
        while i < bytes.count {
            let c = bytes[i]
            switch state {
            case .single:
                if c == UInt8(ascii: "'") { state = .unquoted } else { word.append(c) }
            case .double:
                switch c {
                case UInt8(ascii: "\""): state = .unquoted
                case UInt8(ascii: "$"): return refuse(.expansion, "\"$\" inside double quotes would be expanded by the shell", i)
                case UInt8(ascii: "`"): return refuse(.commandSubstitution, "backquote inside double quotes is command substitution", i)
                case UInt8(ascii: "\\"):
                    guard i + 1 < bytes.count else { return refuse(.unterminatedQuote, "double quote opened at byte \(quoteStart) is never closed", quoteStart) }
                    let n = bytes[i + 1]
                    if n == 0x0a { return refuse(.newline, "escaped newline (line continuation)", i) }
                    // Inside double quotes a backslash escapes only $ ` " \ (POSIX 2.2.3).
                    if [UInt8(ascii: "$"), UInt8(ascii: "`"), UInt8(ascii: "\""), UInt8(ascii: "\\")].contains(n) { word.append(n); i += 1 } else { word.append(c) }
                default:
                    if c < 0x20 || c == 0x7f { return refuse(c == 0x0a ? .newline : .controlCharacter, "control character 0x\(String(c, radix: 16)) in the command", i) }
                    word.append(c)
                }
            case .between, .unquoted:
                let atWordStart = state == .between
                switch c {
                case UInt8(ascii: " "), UInt8(ascii: "\t"):
                    if state == .unquoted { words.append(word); word = [] }
                    state = .between
                case UInt8(ascii: "'"): state = .single; quoteStart = i
                case UInt8(ascii: "\""): state = .double; quoteStart = i
                case UInt8(ascii: "\\"):
                    guard i + 1 < bytes.count else { return refuse(.trailingBackslash, "the command ends with a backslash", i) }
                    let n = bytes[i + 1]
                    if n == 0x0a { return refuse(.newline, "escaped newline (line continuation)", i) }
                    if n < 0x20 || n == 0x7f { return refuse(.controlCharacter, "escaped control character", i + 1) }
                    if n >= 0x80 { return refuse(.nonASCII, "non-ASCII character outside quotes", i + 1) }
                    word.append(n); i += 1; state = .unquoted
                case UInt8(ascii: ";"), UInt8(ascii: "&"), UInt8(ascii: "|"), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "("), UInt8(ascii: ")"):
                    return refuse(.operatorCharacter, "shell operator \"\(Character(Unicode.Scalar(c)))\"", i)
                case 0x0a, 0x0d: return refuse(.newline, "newline separates commands", i)
                case UInt8(ascii: "`"): return refuse(.commandSubstitution, "backquote is command substitution", i)
                case UInt8(ascii: "$"): return refuse(.expansion, "\"$\" starts a parameter, arithmetic or command expansion", i)
                case UInt8(ascii: "*"), UInt8(ascii: "?"), UInt8(ascii: "["): return refuse(.glob, "\"\(Character(Unicode.Scalar(c)))\" is a glob character", i)
                case UInt8(ascii: "{"), UInt8(ascii: "}"): return refuse(.braceExpansion, "\"\(Character(Unicode.Scalar(c)))\" can start brace expansion", i)
                case UInt8(ascii: "!"): return refuse(.historyExpansion, "\"!\" is history expansion or pipeline negation", i)
                case UInt8(ascii: "~") where atWordStart: return refuse(.tildeExpansion, "\"~\" at the start of a word is tilde expansion", i)
                case UInt8(ascii: "#") where atWordStart: return refuse(.comment, "\"#\" at the start of a word starts a comment", i)
                case UInt8(ascii: "=") where words.isEmpty && !word.isEmpty && isName(word):
                    return refuse(.assignment, "leading \"\(String(decoding: word, as: UTF8.self))=\" is a variable assignment", i)
                default:
                    if c < 0x20 || c == 0x7f { return refuse(.controlCharacter, "control character 0x\(String(c, radix: 16)) in the command", i) }
                    if c >= 0x80 { return refuse(.nonASCII, "non-ASCII character outside quotes", i) }
                    word.append(c)
                    state = .unquoted
                }
            }
            i += 1
        }
        switch state {
        case .single: return refuse(.unterminatedQuote, "single quote opened at byte \(quoteStart) is never closed", quoteStart)
        case .double: return refuse(.unterminatedQuote, "double quote opened at byte \(quoteStart) is never closed", quoteStart)
        case .unquoted: words.append(word)
        case .between: break
        }
        if words.isEmpty { return .failure(.init(.empty, "the command is empty")) }
        return .success(words.map { String(decoding: $0, as: UTF8.self) })
    }

    static func isName(_ word: [UInt8]) -> Bool {
        guard let first = word.first, first == UInt8(ascii: "_") || (first | 0x20) >= UInt8(ascii: "a") && (first | 0x20) <= UInt8(ascii: "z") else { return false }
        return word.allSatisfy { $0 == UInt8(ascii: "_") || ($0 | 0x20) >= UInt8(ascii: "a") && ($0 | 0x20) <= UInt8(ascii: "z") || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) }
    }

    /// Quotes one word so a POSIX shell reads it back as exactly that word.
    public static func quote(_ word: String) -> String {
        let safe = !word.isEmpty && word.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z")) ||
                (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || "_@%+:,./-".utf8.contains(c)
        }
        if safe { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The command line a remote POSIX shell runs as exactly `argv`.
    public static func join(_ argv: [String]) -> String { argv.map(quote).joined(separator: " ") }
}
