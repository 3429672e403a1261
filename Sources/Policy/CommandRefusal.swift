/// Why an exec string was refused. `code` is stable and machine-readable; `description` names
/// the offending character and its byte offset so an agent can correct the request.
public struct CommandRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case tooLong = "too-long"
        case empty = "empty-command"
        case invalidUTF8 = "invalid-utf8"
        case nulByte = "nul-byte"
        case controlCharacter = "control-character"
        case operatorCharacter = "shell-operator"
        case newline = "newline"
        case commandSubstitution = "command-substitution"
        case expansion = "parameter-expansion"
        case glob = "glob"
        case braceExpansion = "brace-expansion"
        case tildeExpansion = "tilde-expansion"
        case comment = "comment"
        case assignment = "variable-assignment"
        case historyExpansion = "history-expansion"
        case unterminatedQuote = "unterminated-quote"
        case trailingBackslash = "trailing-backslash"
        case nonASCII = "non-ascii"
        case noMatchingPattern = "no-matching-pattern"
    }

    public let code: Code
    public let reason: String
    /// Byte offset in the exec string, where one character is to blame.
    public let offset: Int?

    public init(_ code: Code, _ reason: String, offset: Int? = nil) {
        self.code = code
        self.reason = reason
        self.offset = offset
    }

    public var description: String {
        offset.map { "\(reason) (at byte \($0))" } ?? reason
    }
}
