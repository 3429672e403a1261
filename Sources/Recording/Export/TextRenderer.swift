/// Renders terminal output as the lines a person would read, for grep: carriage returns and
/// backspaces overwrite, erase-in-line and cursor moves within a line are applied, every other
/// escape sequence (colours, OSC titles, charset switches, full-screen cursor addressing) is dropped.
struct TextRenderer {
    private enum State { case ground, escape, escapeIntermediate, csi, osc, oscEscape, string, stringEscape }
    private var state = State.ground
    private var parameters: [UInt8] = []
    private var line: [Unicode.Scalar] = []
    private var column = 0
    private var output: [UInt8] = []

    /// Feeds decoded text; returns the lines completed so far (UTF-8, newline-terminated).
    mutating func feed(_ utf8: [UInt8]) -> [UInt8] {
        for scalar in String(decoding: utf8, as: UTF8.self).unicodeScalars { step(scalar) }
        defer { output.removeAll(keepingCapacity: true) }
        return output
    }

    /// The last, unterminated line.
    mutating func finish() -> [UInt8] {
        if !line.isEmpty { emitLine() }
        defer { output.removeAll() }
        return output
    }

    private mutating func step(_ scalar: Unicode.Scalar) {
        let value = scalar.value
        switch state {
        case .ground:
            switch value {
            case 0x1B: state = .escape
            case 0x0A: emitLine()
            case 0x0D: column = 0
            case 0x08: column = max(0, column - 1)
            case 0x09: column = (column / 8 + 1) * 8
            case 0x00..<0x20, 0x7F: break
            case 0x80..<0xA0: break  // C1 controls
            default: put(scalar)
            }
        case .escape:
            switch value {
            case 0x5B: state = .csi; parameters = []
            case 0x5D: state = .osc
            case 0x50, 0x58, 0x5E, 0x5F: state = .string  // DCS, SOS, PM, APC
            case 0x20...0x2F: state = .escapeIntermediate
            default: state = .ground
            }
        case .escapeIntermediate:
            if !(0x20...0x2F).contains(value) { state = .ground }
        case .csi:
            if (0x40...0x7E).contains(value) { applyCSI(UInt8(value)); state = .ground }
            else if value < 0x80 { parameters.append(UInt8(value)) }
            else { state = .ground }
        case .osc:
            if value == 0x07 { state = .ground } else if value == 0x1B { state = .oscEscape }
        case .oscEscape:
            state = value == 0x5C ? .ground : .osc
        case .string:
            if value == 0x1B { state = .stringEscape }
        case .stringEscape:
            state = value == 0x5C ? .ground : .string
        }
    }

    private mutating func applyCSI(_ final: UInt8) {
        let text = String(decoding: parameters, as: UTF8.self)
        let numbers = text.split(separator: ";", omittingEmptySubsequences: false).map { Int($0) ?? 0 }
        let first = numbers.first ?? 0
        switch final {
        case UInt8(ascii: "K"):
            switch first {
            case 0: if column < line.count { line.removeSubrange(column...) }
            case 1: for i in 0..<min(column + 1, line.count) { line[i] = " " }
            default: line.removeAll()
            }
        case UInt8(ascii: "G"): column = max(0, first - 1)
        case UInt8(ascii: "C"): column += max(1, first)
        case UInt8(ascii: "D"): column = max(0, column - max(1, first))
        default: break
        }
    }

    private mutating func put(_ scalar: Unicode.Scalar) {
        while line.count < column { line.append(" ") }
        if column < line.count { line[column] = scalar } else { line.append(scalar) }
        column += 1
    }

    private mutating func emitLine() {
        while let last = line.last, last == " " { line.removeLast() }
        var text = String.UnicodeScalarView()
        text.append(contentsOf: line)
        output.append(contentsOf: Array(String(text).utf8))
        output.append(0x0A)
        line.removeAll(keepingCapacity: true)
        column = 0
    }
}
