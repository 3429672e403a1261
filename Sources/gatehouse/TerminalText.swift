/// Text an agent or a requester chose (a prompt, a command, a task id, a reason), made safe to
/// print on an operator's terminal: control characters (C0 but newline and tab, DEL, C1) and
/// bidirectional overrides are shown as `\u{…}`, so no escape sequence can redraw what the
/// operator reads above it and no bidi override can reorder a command being approved.
enum TerminalText {
    static func safe(_ text: String, keepNewlines: Bool = true) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            let v = scalar.value
            let control = (v < 0x20 && !(keepNewlines && (v == 0x0a || v == 0x09))) || (0x7f...0x9f).contains(v)
            let bidi = (0x202a...0x202e).contains(v) || (0x2066...0x2069).contains(v) || v == 0x200e || v == 0x200f || v == 0x061c
            if control || bidi { out += "\\u{\(String(v, radix: 16))}" } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }
}
