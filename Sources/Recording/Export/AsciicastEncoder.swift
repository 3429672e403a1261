import JSONWriting

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

    /// The terminal size a player should open: the pty's, or for a session without a pty (an
    /// exec, which has no terminal size) 80x24, the classic default; players render nothing for
    /// a declared 0x0 terminal.
    static let defaultSize = (columns: 80, rows: 24)

    static func terminalSize(_ header: SessionHeader) -> (columns: Int, rows: Int) {
        header.columns > 0 && header.rows > 0 ? (header.columns, header.rows) : defaultSize
    }

    func begin(_ header: SessionHeader) -> [UInt8] {
        let term = header.terminalType ?? "xterm-256color"
        let size = Self.terminalSize(header)
        var w = JSONWriter(layout: .spaced)
        w.beginObject()
        w.member("version", version)
        if version == 2 {
            w.member("width", size.columns)
            w.member("height", size.rows)
        } else {
            w.key("term")
            w.beginObject()
            w.member("cols", size.columns)
            w.member("rows", size.rows)
            w.member("type", term)
            w.endObject()
        }
        w.member("timestamp", header.startTimeMicros / 1_000_000)
        if let command = header.command { w.member("command", command) }
        w.member("title", "\(header.subject) → \(header.login)@\(header.target): \(header.commandDescription)")
        if version == 2 {
            w.key("env")
            w.beginObject()
            w.member("TERM", term)
            w.endObject()
        }
        w.endObject()
        return w.bytes + [0x0A]
    }

    mutating func encode(_ record: Record) -> [UInt8] {
        switch record.content {
        case .data(let stream, let bytes):
            let text = decoders[stream]!.decode(bytes)
            guard !text.isEmpty else { return [] }
            return event(record.timeMicros, stream == .stdin ? "i" : "o", .utf8(text))
        case .resize(let size):
            return event(record.timeMicros, "r", .text("\(size.columns)x\(size.rows)"))
        case .marker(let label):
            return event(record.timeMicros, "m", .text(label))
        case .exit(let outcome):
            guard version == 3 else { return [] }
            return event(record.timeMicros, "x", .text(Self.exitCode(outcome)))
        case .header, .checkpoint, .end, .mask:
            // Masks do not change the raw streams this encoder writes (the masked view is not
            // rendered by export yet: docs/masking.md, "Integration").
            lastTime = max(lastTime, record.timeMicros)
            return []
        }
    }

    mutating func finish() -> [UInt8] {
        var out: [UInt8] = []
        for stream in RecordStream.allCases {
            let rest = decoders[stream]!.finish()
            if !rest.isEmpty { out += event(lastTime, stream == .stdin ? "i" : "o", .utf8(rest)) }
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

    /// An event's data: bytes from a stream decoder (valid UTF-8) or text.
    private enum EventData { case utf8([UInt8]), text(String) }

    private mutating func event(_ time: UInt64, _ code: String, _ data: EventData) -> [UInt8] {
        let stamp: UInt64
        if version == 2 { stamp = time } else { stamp = time >= previousTime ? time - previousTime : 0; previousTime = time }
        lastTime = max(lastTime, time)
        var w = JSONWriter(layout: .spaced)
        w.beginArray()
        w.number(literal: Self.seconds(stamp))
        w.string(code)
        switch data {
        case .utf8(let bytes): w.string(utf8: bytes)
        case .text(let text): w.string(text)
        }
        w.endArray()
        return w.bytes + [0x0A]
    }

    static func seconds(_ micros: UInt64) -> String {
        let fraction = String(micros % 1_000_000)
        return "\(micros / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
    }
}
