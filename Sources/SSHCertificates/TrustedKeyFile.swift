import Foundation

/// The text form of a list of `TrustedKey`s: what `gatehouse ca export recording --history`
/// writes and `gatehouse verify --trusted-keys FILE` reads, so recordings can be verified on a
/// machine without the CA store.
///
/// One key per line, in the authorized_keys style: optional comma-separated options, the key
/// type, the base64 blob and a free comment. Options bound the interval:
///
///     active-from="2025-01-02T03:04:05.000000Z",active-until="2025-02-01T00:00:00.000000Z" ssh-ed25519 AAAA… gatehouse-recording-ca retired
///     ssh-ed25519 AAAA… gatehouse-recording-ca
///
/// A line without options trusts the key at any time (a plain `ca export recording` file, or
/// a TrustedUserCAKeys-style list, is accepted as is). Blank lines and `#` comments are skipped.
public enum TrustedKeyFile {
    public struct ParseError: Error, CustomStringConvertible, Sendable, Equatable {
        public let line: Int
        public let message: String
        public let source: String
        public var description: String { "\(source):\(line): \(message)" }
    }

    public static func serialize(_ keys: [TrustedKey], comment: String) -> String {
        keys.map { key in
            var options: [String] = []
            if let from = key.activeFromMicros { options.append("active-from=\"\(TrustedKey.format(from))\"") }
            if let until = key.activeUntilMicros { options.append("active-until=\"\(TrustedKey.format(until))\"") }
            let prefix = options.isEmpty ? "" : options.joined(separator: ",") + " "
            return prefix + key.key.openSSHLine + " " + comment + (key.isRetired ? " verify-only" : "")
        }.joined(separator: "\n") + (keys.isEmpty ? "" : "\n")
    }

    public static func parse(_ text: String, source: String) throws(ParseError) -> [TrustedKey] {
        var keys: [TrustedKey] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            func fail(_ message: String) -> ParseError { ParseError(line: number, message: message, source: source) }
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var options: [String: String] = [:]
            var rest = Substring(line)
            if !startsWithKeyType(rest) {
                let (parsed, remainder) = try splitOptions(rest, fail: fail)
                options = parsed
                rest = remainder.drop(while: { $0 == " " || $0 == "\t" })
            }
            let fields = rest.split(maxSplits: 2, whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2 else { throw fail("expected `[options] key-type base64 [comment]`") }
            let key: SSHPublicKey
            do { key = try SSHPublicKey(openSSHLine: "\(fields[0]) \(fields[1])") } catch { throw fail("\(error)") }
            var trusted = TrustedKey(key: key)
            for (name, value) in options {
                guard let micros = TrustedKey.parseTime(value) else {
                    throw fail("\(name)=\"\(value)\" is not a UTC time like 2025-01-02T03:04:05.000000Z")
                }
                switch name {
                case "active-from": trusted.activeFromMicros = micros
                case "active-until": trusted.activeUntilMicros = micros
                default: throw fail("unknown option \"\(name)\" (known: active-from, active-until)")
                }
            }
            if let from = trusted.activeFromMicros, let until = trusted.activeUntilMicros, until < from {
                throw fail("active-until is before active-from")
            }
            keys.append(trusted)
        }
        return keys
    }

    private static func startsWithKeyType(_ text: Substring) -> Bool {
        let first = text.prefix(while: { $0 != " " && $0 != "\t" })
        return SSHKeyAlgorithm(keyTypeName: String(first)) != nil
    }

    /// `name="value",name="value"` up to the first space outside quotes.
    private static func splitOptions(_ text: Substring, fail: (String) -> ParseError) throws(ParseError) -> ([String: String], Substring) {
        var options: [String: String] = [:]
        var i = text.startIndex
        while i < text.endIndex {
            let nameEnd = text[i...].firstIndex(of: "=") ?? text.endIndex
            let name = String(text[i..<nameEnd])
            guard nameEnd < text.endIndex, !name.isEmpty, !name.contains(" "),
                  text.index(after: nameEnd) < text.endIndex, text[text.index(after: nameEnd)] == "\"" else {
                throw fail("expected options like active-from=\"…\" before the key, or a key type such as ssh-ed25519")
            }
            let valueStart = text.index(nameEnd, offsetBy: 2)
            guard let close = text[valueStart...].firstIndex(of: "\"") else { throw fail("unterminated quote in option \"\(name)\"") }
            guard options[name] == nil else { throw fail("option \"\(name)\" given twice") }
            options[name] = String(text[valueStart..<close])
            i = text.index(after: close)
            if i == text.endIndex { break }
            if text[i] == "," { i = text.index(after: i); continue }
            if text[i] == " " || text[i] == "\t" { return (options, text[i...]) }
            throw fail("unexpected \"\(text[i])\" after option \"\(name)\"")
        }
        throw fail("options but no key")
    }
}
