import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The session index of a recordings directory: `index.jsonl`, one `RecordingSummary` per line,
/// appended when a recording finishes or is recovered. Listing reads that one file (10,000
/// sessions in well under a second) plus the headers of recordings it does not know yet (live or
/// unfinished ones). The index is derived data: `rebuild` recreates it from the recordings.
public struct SessionIndex: Sendable {
    public static let fileName = "index.jsonl"
    public let directory: String
    /// By recording id; the last line for an id wins (recovery can follow a live entry).
    public private(set) var summaries: [String: RecordingSummary]
    /// Lines of the index that did not decode, with their line numbers (reported, not fatal).
    public private(set) var skippedLines: [Int]

    /// Appends `summary` to the index (O_APPEND, one write, under flock, fdatasync).
    public static func record(_ summary: RecordingSummary, directory: String) throws(SessionIndexError) {
        let encoder = RecordingSummary.encoder()
        guard var line = try? encoder.encode(summary) else { throw .io(path: directory, reason: "summary does not encode") }
        line.append(0x0A)
        let path = directory + "/" + fileName
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: path, reason: ErrnoName.describe(errno)) }
        defer { _ = systemClose(fd) }
        _ = flock(fd, LOCK_EX)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        guard written == line.count else { throw .io(path: path, reason: written < 0 ? ErrnoName.describe(errno) : "short write") }
        guard fdatasync(fd) == 0 else { throw .io(path: path, reason: ErrnoName.describe(errno)) }
    }

    /// Loads the index and adds quick summaries (from the header) of recordings not in it.
    public static func load(directory: String) throws(SessionIndexError) -> SessionIndex {
        var index = SessionIndex(directory: directory, summaries: [:], skippedLines: [])
        let path = directory + "/" + fileName
        if let data = FileManager.default.contents(atPath: path) {
            index.read(lines: data)
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw .io(path: directory, reason: "cannot list the recordings directory")
        }
        for name in names {
            guard let id = RecordingFiles.recordingID(ofPath: name), index.summaries[id] == nil else { continue }
            // Live: the header is all there is to say. Otherwise the index line is missing (the
            // writer died, or the append failed): read the file for the exact state.
            let path = directory + "/" + name
            let summary = RecordingFile.isLive(path) ? try? quickSummary(path: path) : (try? fullSummary(path: path)) ?? (try? quickSummary(path: path))
            if let summary { index.summaries[id] = summary }
        }
        return index
    }

    /// Decodes the index lines. Fast path: all lines as one JSON array (one decoder pass, several
    /// times faster than a decoder call per line); if that fails, line by line, skipping damage.
    private mutating func read(lines data: Data) {
        let decoder = RecordingSummary.decoder()
        var ranges: [Range<Int>] = []
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var lineStart = 0
            for position in 0...raw.count where position == raw.count || raw[position] == 0x0A {
                ranges.append(lineStart..<position)
                lineStart = position + 1
            }
        }
        var array = Data([0x5B])
        array.reserveCapacity(data.count + 2)
        var first = true
        for range in ranges where !range.isEmpty {
            if !first { array.append(0x2C) }
            array.append(data[data.startIndex + range.lowerBound..<data.startIndex + range.upperBound])
            first = false
        }
        array.append(0x5D)
        if let all = try? decoder.decode([RecordingSummary].self, from: array) {
            for summary in all { summaries[summary.recordingID] = summary }
            return
        }
        for (number, range) in ranges.enumerated() where !range.isEmpty {
            let line = data[data.startIndex + range.lowerBound..<data.startIndex + range.upperBound]
            if let summary = try? decoder.decode(RecordingSummary.self, from: line) {
                summaries[summary.recordingID] = summary
            } else {
                skippedLines.append(number + 1)
            }
        }
    }

    /// Summaries matching `filter`, oldest first.
    public func list(_ filter: SessionFilter = SessionFilter()) -> [RecordingSummary] {
        summaries.values.filter(filter.matches).sorted {
            ($0.startTimeMicros, $0.recordingID) < ($1.startTimeMicros, $1.recordingID)
        }
    }

    /// One recording by id, or by session id when that session has exactly one channel recorded.
    public func find(_ id: String) -> RecordingSummary? {
        if let exact = summaries[id] { return exact }
        let bySession = summaries.values.filter { $0.sessionID == id }
        return bySession.count == 1 ? bySession[0] : nil
    }

    /// Rewrites the index from the recordings themselves (full read of each), atomically.
    @discardableResult
    public static func rebuild(directory: String) throws(SessionIndexError) -> SessionIndex {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw .io(path: directory, reason: "cannot list the recordings directory")
        }
        var lines = Data()
        var index = SessionIndex(directory: directory, summaries: [:], skippedLines: [])
        let encoder = RecordingSummary.encoder()
        for name in names.sorted() {
            guard RecordingFiles.recordingID(ofPath: name) != nil,
                  let summary = try? fullSummary(path: directory + "/" + name) else { continue }
            index.summaries[summary.recordingID] = summary
            if summary.state != "live", summary.state != "unfinished", let line = try? encoder.encode(summary) {
                lines.append(line); lines.append(0x0A)
            }
        }
        let path = directory + "/" + fileName
        do { try lines.write(to: URL(fileURLWithPath: path), options: [.atomic]) } catch {
            throw .io(path: path, reason: "\(error)")
        }
        _ = chmod(path, 0o600)
        return index
    }

    /// Header-only summary for a recording that has no index line yet (live or unfinished).
    static func quickSummary(path: String) throws -> RecordingSummary {
        let reader = try RecordingReader(path: path, allowTornTail: true)
        let id = RecordingFiles.recordingID(ofPath: path) ?? reader.header.recordingID
        let state = RecordingFile.isLive(path) ? "live" : "unfinished"
        return RecordingSummary(header: reader.header, recordingID: id, end: nil, state: state, durationMicros: 0, exit: nil,
                                totals: StreamTotals(), recordCount: 0, finalHash: "", fileSize: reader.fileSize)
    }

    /// Reads the whole recording (framing checks, no signatures) for an exact summary.
    static func fullSummary(path: String) throws -> RecordingSummary {
        let scan = try RecordingScan.run(path: path)
        let id = RecordingFiles.recordingID(ofPath: path) ?? scan.header.recordingID
        let state = scan.end == nil ? (RecordingFile.isLive(path) ? "live" : "unfinished") : nil
        return RecordingSummary(header: scan.header, recordingID: id, end: scan.end, state: state, durationMicros: scan.lastTime,
                                exit: scan.exit, totals: scan.totals, recordCount: scan.recordCount,
                                finalHash: hexString(scan.chainHash), fileSize: scan.goodEnd)
    }
}

/// What `sessions list` filters on. Every set field must match.
public struct SessionFilter: Sendable {
    public var subject: String?
    public var target: String?
    public var scope: String?
    public var since: UInt64?
    public var until: UInt64?
    public var exitStatus: UInt32?
    /// Substring of the command ("shell" matches interactive sessions).
    public var commandContains: String?
    public var state: String?
    /// The `task_id` of the certificate's context.
    public var task: String?
    public var serial: UInt64?

    public init(subject: String? = nil, target: String? = nil, scope: String? = nil, sinceMicros: UInt64? = nil,
                untilMicros: UInt64? = nil, exitStatus: UInt32? = nil, commandContains: String? = nil, state: String? = nil,
                task: String? = nil, serial: UInt64? = nil) {
        self.subject = subject; self.target = target; self.scope = scope; self.since = sinceMicros; self.until = untilMicros
        self.exitStatus = exitStatus; self.commandContains = commandContains; self.state = state
        self.task = task; self.serial = serial
    }

    public func matches(_ s: RecordingSummary) -> Bool {
        if let subject, s.subject != subject { return false }
        if let target, s.target != target { return false }
        if let scope, !s.scopes.contains(scope) { return false }
        if let since, s.startTimeMicros < since { return false }
        if let until, s.startTimeMicros > until { return false }
        if let exitStatus, s.exitStatus != exitStatus { return false }
        if let commandContains, !s.commandDescription.contains(commandContains) { return false }
        if let state, s.state != state { return false }
        if let task, s.taskID != task { return false }
        if let serial, s.certificateSerial != serial { return false }
        return true
    }
}

public enum SessionIndexError: Error, Equatable, CustomStringConvertible {
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let reason): "session index \(path): \(reason)"
        }
    }
}
