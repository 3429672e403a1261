/// asciicast v2 (absolute times) and v3 (intervals, `term` header, `x` exit event).
/// stdout and stderr both become "o" (both reached the terminal), stdin "i", resize "r",
/// markers "m". Each stream has its own UTF-8 decoder so a character split across records of
/// one stream survives, and only truly invalid bytes become U+FFFD.
struct AsciicastEncoder: ExportEncoder {
    let version: Int
    private var decoders: [RecordStream: UTF8StreamDecoder] = [.stdin: UTF8StreamDecoder(), .stdout: UTF8StreamDecoder(), .stderr: UTF8StreamDecoder()]
    private var previousTime: UInt64 = 0
    private var lastTime: UInt64 = 0

    init(version: Int) { self.version = version }

    var replacedBytes: Int { decoders.values.reduce(0) { $0 + $1.replacedBytes } }

    func begin(_ header: SessionHeader) -> [UInt8] {
        var fields: [String] = ["\"version\": \(version)"]
        let term = header.terminalType ?? "xterm-256color"
        if version == 2 {
            fields.append("\"width\": \(header.columns)")
            fields.append("\"height\": \(header.rows)")
        } else {
            fields.append("\"term\": {\"cols\": \(header.columns), \"rows\": \(header.rows), \"type\": \(string(term))}")
        }
        fields.append("\"timestamp\": \(header.startTimeMicros / 1_000_000)")
        if let command = header.command { fields.append("\"command\": \(string(command))") }
        fields.append("\"title\": \(string("\(header.subject) → \(header.login)@\(header.target): \(header.commandDescription)"))")
        if version == 2 { fields.append("\"env\": {\"TERM\": \(string(term))}") }
        return Array(("{" + fields.joined(separator: ", ") + "}\n").utf8)
    }

    mutating func encode(_ record: Record) -> [UInt8] {
        switch record.content {
        case .data(let stream, let bytes):
            let text = decoders[stream]!.decode(bytes)
            guard !text.isEmpty else { return [] }
            return event(record.timeMicros, stream == .stdin ? "i" : "o", JSONText.quoted(text))
        case .resize(let size):
            return event(record.timeMicros, "r", JSONText.quoted("\(size.columns)x\(size.rows)"))
        case .marker(let label):
            return event(record.timeMicros, "m", JSONText.quoted(label))
        case .exit(let outcome):
            guard version == 3 else { return [] }
            return event(record.timeMicros, "x", JSONText.quoted(Self.exitCode(outcome)))
        case .header, .checkpoint, .end:
            lastTime = max(lastTime, record.timeMicros)
            return []
        }
    }

    mutating func finish() -> [UInt8] {
        var out: [UInt8] = []
        for stream in RecordStream.allCases {
            let rest = decoders[stream]!.finish()
            if !rest.isEmpty { out += event(lastTime, stream == .stdin ? "i" : "o", JSONText.quoted(rest)) }
        }
        return out
    }

    /// v3 wants the exit status as a string; a signal is reported the way a shell does, 128 + number.
    static func exitCode(_ outcome: ExitOutcome) -> String {
        switch outcome {
        case .status(let code): return "\(code)"
        case .signal(let name, _):
            let numbers = ["HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9,
                           "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15]
            return numbers[name].map { "\(128 + $0)" } ?? "255"
        }
    }

    private mutating func event(_ time: UInt64, _ code: String, _ data: [UInt8]) -> [UInt8] {
        let stamp: UInt64
        if version == 2 { stamp = time } else { stamp = time >= previousTime ? time - previousTime : 0; previousTime = time }
        lastTime = max(lastTime, time)
        return Array("[\(Self.seconds(stamp)), \"\(code)\", ".utf8) + data + Array("]\n".utf8)
    }

    static func seconds(_ micros: UInt64) -> String {
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }

    private func string(_ text: String) -> String { String(decoding: JSONText.quoted(text), as: UTF8.self) }
}
