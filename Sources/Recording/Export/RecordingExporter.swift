/// The formats `gatehouse export` writes.
public enum ExportFormat: String, Sendable, CaseIterable {
    /// One stream's bytes, exactly (lossless).
    case raw
    /// stdout and stderr as ttyrec frames (lossless for output; ttyrec has no input or resize).
    case ttyrec
    /// asciinema's v2 and v3 NDJSON: lossy only for invalid UTF-8 (replaced with U+FFFD, counted).
    case asciicastV2 = "asciicast-v2"
    case asciicastV3 = "asciicast-v3"
    /// The output as a person reads it, escape sequences applied or stripped, for grep.
    case text
}

public struct ExportReport: Sendable, Equatable {
    public var format: ExportFormat
    public var bytesWritten: Int
    /// Invalid UTF-8 bytes replaced by U+FFFD (asciicast and text only; 0 means lossless).
    public var replacedBytes: Int
    /// The recording had no trailer: it is live or unfinished, and the export stops at its last
    /// complete record.
    public var unfinished: Bool
    public var end: RecordingEnd?

    /// What the CLI says after exporting.
    public var note: String {
        var parts: [String] = ["\(bytesWritten) bytes of \(format.rawValue)"]
        if replacedBytes > 0 { parts.append("\(replacedBytes) invalid UTF-8 bytes replaced by U+FFFD") }
        if unfinished { parts.append("recording is unfinished: exported up to its last complete record") }
        return parts.joined(separator: "; ")
    }
}

public enum ExportError: Error, Equatable, CustomStringConvertible {
    case read(RecordingReadError)
    case view(RecordingViewError)
    case output(String)

    public var description: String {
        switch self {
        case .read(let error): "\(error)"
        case .view(let error): "\(error)"
        case .output(let reason): "writing the export failed: \(reason)"
        }
    }
}

/// Streams a recording into another format. Framing is checked while reading (a damaged record
/// stops the export with its location); signatures are `RecordingVerifier`'s job.
public enum RecordingExporter {
    /// `write` receives the export in pieces of about 64 KiB. With `until` (µs of recording time)
    /// the export stops before the first record after that time: the text export then ends with
    /// what the player's screen shows at that time (`gatehouse replay --at`). A masked recording
    /// exports as the agent saw it unless `view` is `.original`.
    public static func export(path: String, format: ExportFormat, stream: RecordStream = .stdout, until: UInt64? = nil, view: RecordingView = .agent,
                              write: (borrowing [UInt8]) throws -> Void) throws(ExportError) -> ExportReport {
        let reader: RecordingReader
        do { reader = try RecordingReader(path: path, allowTornTail: true) } catch { throw .read(error) }
        var filter: AgentViewFilter?
        do { filter = try AgentViewFilter.make(header: reader.header, view: view) } catch { throw .view(error) }
        var encoder: any ExportEncoder = switch format {
        case .raw: RawEncoder(stream: stream)
        case .ttyrec: TTYRecEncoder(startMicros: reader.header.startTimeMicros)
        case .asciicastV2: AsciicastEncoder(version: 2)
        case .asciicastV3: AsciicastEncoder(version: 3)
        case .text: TextEncoder()
        }
        var total = 0
        do {
            try withoutActuallyEscaping(write) { write in
                var sink = ExportSink(write: write)
                try sink.emit(encoder.begin(reader.header))
                while var record = try reader.next() {
                    if let until, record.timeMicros > until { break }
                    if filter != nil { record = filter!.apply(record) }
                    try sink.emit(encoder.encode(record))
                }
                try sink.emit(encoder.finish())
                try sink.flush()
                total = sink.total
            }
        } catch let error as RecordingReadError {
            throw .read(error)
        } catch let error as ExportError {
            throw error
        } catch {
            throw .output("\(error)")
        }
        return ExportReport(format: format, bytesWritten: total, replacedBytes: encoder.replacedBytes,
                            unfinished: reader.ended == nil, end: reader.ended)
    }

    /// Convenience for tests and small recordings: the whole export in memory.
    public static func export(path: String, format: ExportFormat, stream: RecordStream = .stdout, until: UInt64? = nil,
                              view: RecordingView = .agent) throws(ExportError) -> (bytes: [UInt8], report: ExportReport) {
        var bytes: [UInt8] = []
        let report = try export(path: path, format: format, stream: stream, until: until, view: view) { bytes += $0 }
        return (bytes, report)
    }
}

struct ExportSink {
    let write: (borrowing [UInt8]) throws -> Void
    var pending: [UInt8] = []
    var total = 0

    mutating func emit(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        pending += bytes
        total += bytes.count
        if pending.count >= 64 * 1024 { try flush() }
    }

    mutating func flush() throws {
        guard !pending.isEmpty else { return }
        try write(pending)
        pending.removeAll(keepingCapacity: true)
    }
}

protocol ExportEncoder {
    var replacedBytes: Int { get }
    mutating func begin(_ header: SessionHeader) -> [UInt8]
    mutating func encode(_ record: Record) -> [UInt8]
    mutating func finish() -> [UInt8]
}

struct RawEncoder: ExportEncoder {
    let stream: RecordStream
    var replacedBytes: Int { 0 }
    func begin(_ header: SessionHeader) -> [UInt8] { [] }
    func encode(_ record: Record) -> [UInt8] {
        if case .data(let s, let bytes) = record.content, s == stream { return bytes }
        return []
    }
    func finish() -> [UInt8] { [] }
}

/// ttyrec: per frame u32 LE seconds, u32 LE microseconds (absolute wall clock), u32 LE length, bytes.
struct TTYRecEncoder: ExportEncoder {
    let startMicros: UInt64
    var replacedBytes: Int { 0 }
    func begin(_ header: SessionHeader) -> [UInt8] { [] }
    func encode(_ record: Record) -> [UInt8] {
        guard case .data(let stream, let bytes) = record.content, stream != .stdin, !bytes.isEmpty else { return [] }
        let time = startMicros + record.timeMicros
        var w = ByteWriter()
        w.u32(UInt32(truncatingIfNeeded: time / 1_000_000)); w.u32(UInt32(time % 1_000_000)); w.u32(UInt32(bytes.count))
        w.raw(bytes)
        return w.bytes
    }
    func finish() -> [UInt8] { [] }
}

struct TextEncoder: ExportEncoder {
    var decoders: [RecordStream: UTF8StreamDecoder] = [.stdout: UTF8StreamDecoder(), .stderr: UTF8StreamDecoder()]
    var renderer = TextRenderer()
    var replacedBytes: Int { decoders.values.reduce(0) { $0 + $1.replacedBytes } }
    func begin(_ header: SessionHeader) -> [UInt8] { [] }
    mutating func encode(_ record: Record) -> [UInt8] {
        guard case .data(let stream, let bytes) = record.content, stream != .stdin else { return [] }
        return renderer.feed(decoders[stream]!.decode(bytes))
    }
    mutating func finish() -> [UInt8] {
        var out = renderer.feed(decoders[.stdout]!.finish())
        out += renderer.feed(decoders[.stderr]!.finish())
        return out + renderer.finish()
    }
}
