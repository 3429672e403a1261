import SSHCertificates

/// What the player shows, in recording time (µs since the session started).
public enum PlaybackEvent: Sendable, Equatable {
    case output(UInt64, [UInt8])
    case resize(UInt64, TerminalSize)
    case marker(UInt64, String)
    case exit(UInt64, ExitOutcome)

    public var time: UInt64 {
        switch self {
        case .output(let t, _), .resize(let t, _), .marker(let t, _), .exit(let t, _): t
        }
    }
}

/// Where the player gets its events: a recording on disk, or a list in tests.
public protocol PlaybackSource {
    /// The next event, or nil when there is none (yet, if `mayGrow`).
    mutating func next() throws -> PlaybackEvent?
    /// Positions the source after `time` and returns the output that rebuilds the screen as it
    /// is at `time` (written at once after clearing the screen).
    mutating func seek(to time: UInt64) throws -> [UInt8]
    /// Marker times and labels, in order.
    var markers: [(time: UInt64, label: String)] { get }
    var durationMicros: UInt64 { get }
    /// True for a live recording followed with `--follow`: nil from `next()` means "not yet".
    var mayGrow: Bool { get }
}

/// Events from a recording file, seeking through its `SeekIndex`.
public final class RecordingPlayback: PlaybackSource {
    public let path: String
    public let header: SessionHeader
    public private(set) var index: SeekIndex
    private let follow: Bool
    private let recordingKey: SSHPublicKey
    private var reader: RecordingReader
    private var lastIndex: UInt64 = 0
    private let view: RecordingView
    /// Rebuilds what the agent saw of a masked recording (nil: the records are shown as they are).
    private var filter: AgentViewFilter?

    public init(path: String, follow: Bool = false, view: RecordingView = .agent) throws {
        self.path = path
        reader = try RecordingReader(path: path, allowTornTail: true)
        header = reader.header
        recordingKey = reader.recordingKey
        index = try SeekIndex.load(recordingPath: path)
        self.follow = follow
        self.view = view
        filter = try AgentViewFilter.make(header: header, view: view)
    }

    /// Following a recording that has not ended yet.
    public var mayGrow: Bool { follow && reader.ended == nil }

    public var markers: [(time: UInt64, label: String)] { index.markers.map { ($0.entry.timeMicros, $0.label) } }
    public var durationMicros: UInt64 { index.durationMicros }

    public func next() throws -> PlaybackEvent? {
        while true {
            guard let record = try reader.next() else {
                if mayGrow {
                    // Re-open at the last good boundary so bytes written since become visible.
                    reader = try RecordingReader(path: path, header: header, recordingKey: recordingKey, resumeAt: reader.offset,
                                                 index: lastIndex + 1, time: reader.lastTime, allowTornTail: true)
                }
                return nil
            }
            lastIndex = record.index
            if let event = Self.event(filter == nil ? record : filter!.apply(record)) { return event }
        }
    }

    public func seek(to time: UInt64) throws -> [UInt8] {
        if mayGrow { index = try SeekIndex.build(path: path) }
        let start = index.redrawStart(for: time)
        let offset = start?.offset ?? UInt64(FrameLayout.preambleSize)
        let first = start?.record ?? 0
        if start == nil {
            reader = try RecordingReader(path: path, allowTornTail: true)
        } else {
            reader = try RecordingReader(path: path, header: header, recordingKey: recordingKey, resumeAt: offset,
                                         index: first, time: start!.timeMicros, allowTornTail: true)
        }
        if filter != nil { filter = try AgentViewFilter.make(header: header, view: view, start: try Self.streamOffsets(path: path, before: first)) }
        // Replay output up to `time`; stop just before the first record after it.
        var redraw: [UInt8] = []
        while true {
            let boundary = (reader.offset, lastIndex, reader.lastTime)
            guard let record = try reader.next() else { break }
            if record.timeMicros > time {
                reader = try RecordingReader(path: path, header: header, recordingKey: recordingKey, resumeAt: boundary.0,
                                             index: record.index, time: boundary.2, allowTornTail: true)
                break
            }
            lastIndex = record.index
            let shown = filter == nil ? record : filter!.apply(record)
            if case .data(let stream, let bytes) = shown.content, stream != .stdin { redraw += bytes }
        }
        return redraw
    }

    /// Each stream's byte count before record `index`: where a masked view resumes. (The seek
    /// index does not keep stream offsets, so this reads the records before; only masked
    /// recordings need it.)
    static func streamOffsets(path: String, before index: UInt64) throws -> StreamTotals {
        var totals = StreamTotals()
        let reader = try RecordingReader(path: path, allowTornTail: true)
        while let record = try reader.next(), record.index < index {
            if case .data(let stream, let bytes) = record.content { totals[stream] += UInt64(bytes.count) }
        }
        return totals
    }

    static func event(_ record: Record) -> PlaybackEvent? {
        switch record.content {
        case .data(let stream, let bytes): stream == .stdin ? nil : .output(record.timeMicros, bytes)
        case .resize(let size): .resize(record.timeMicros, size)
        case .marker(let label): .marker(record.timeMicros, label)
        case .exit(let outcome): .exit(record.timeMicros, outcome)
        case .header, .checkpoint, .end, .mask: nil
        }
    }
}

/// A fixed list of events (tests, and short recordings read whole).
public struct EventListSource: PlaybackSource {
    public let events: [PlaybackEvent]
    private var cursor = 0
    public init(_ events: [PlaybackEvent]) { self.events = events }

    public mutating func next() -> PlaybackEvent? {
        guard cursor < events.count else { return nil }
        defer { cursor += 1 }
        return events[cursor]
    }

    public mutating func seek(to time: UInt64) -> [UInt8] {
        cursor = events.firstIndex { $0.time > time } ?? events.count
        return events[..<cursor].reduce(into: []) { out, event in if case .output(_, let bytes) = event { out += bytes } }
    }

    public var markers: [(time: UInt64, label: String)] {
        events.compactMap { if case .marker(let t, let label) = $0 { (t, label) } else { nil } }
    }
    public var durationMicros: UInt64 { events.last?.time ?? 0 }
    public var mayGrow: Bool { false }
}
