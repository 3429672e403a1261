import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SSHCertificates

/// Time → byte offset table for one recording, so the player can start anywhere without reading
/// what comes before.
///
/// `entries` holds the first record at or after every 256 KiB of file and every second of time.
/// `keyframes` holds the records where the output resets the screen (`ESC c`, `ESC [ 2 J`):
/// redrawing the screen at time t replays output from the last keyframe before t, or — for
/// scrolling output that never clears — at most the last `redrawWindow` bytes of output, which
/// is more than any terminal shows. Saved as `<id>.ghidx` next to a finished recording.
public struct SeekIndex: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var timeMicros: UInt64
        public var offset: UInt64
        public var record: UInt64
    }

    public static let fileExtension = "ghidx"
    static let magic: [UInt8] = Array("GHIDX".utf8) + [0x00, 0x01, 0x00]
    static let byteStride: UInt64 = 256 * 1024
    static let timeStride: UInt64 = 1_000_000
    /// Output replayed at most to rebuild the screen when there is no keyframe close by.
    public static let redrawWindow: UInt64 = 1 << 20

    /// Size of the recording the index was built from (a different size means rebuild).
    public var recordingSize: UInt64
    public var entries: [Entry]
    public var keyframes: [Entry]
    /// Marker records, in time order: the player's `]` jumps to the next one.
    public var markers: [Marker]
    public var durationMicros: UInt64

    public struct Marker: Sendable, Equatable {
        public var entry: Entry
        public var label: String
    }

    /// Reads the recording once (framing and digests checked) and builds the table.
    public static func build(path: String) throws(RecordingReadError) -> SeekIndex {
        try buildReportingEnd(path: path).index
    }

    static func buildReportingEnd(path: String) throws(RecordingReadError) -> (index: SeekIndex, ended: Bool) {
        let reader = try RecordingReader(path: path, allowTornTail: true)
        var builder = SeekIndexBuilder()
        while let record = try reader.next() {
            switch record.content {
            case .data(let stream, let bytes):
                bytes.withUnsafeBytes { builder.add(record: record.index, offset: record.offset, time: record.timeMicros, output: stream == .stdin ? nil : $0) }
            case .marker(let label):
                builder.add(record: record.index, offset: record.offset, time: record.timeMicros, marker: label)
            default:
                builder.add(record: record.index, offset: record.offset, time: record.timeMicros)
            }
        }
        return (builder.finish(recordingSize: reader.offset), reader.ended != nil)
    }

    /// Writes the index next to the recording (atomically, 0600). Derived data: failure is harmless.
    func save(nextTo recordingPath: String) {
        let path = Self.sidecarPath(recordingPath)
        let temporary = path + ".tmp"
        let bytes = encoded()
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        _ = systemClose(fd)
        if written == bytes.count { _ = rename(temporary, path) } else { _ = unlink(temporary) }
    }

    /// The index saved next to the recording, rebuilt (and saved, when the recording is finished)
    /// if missing or stale.
    public static func load(recordingPath path: String) throws(RecordingReadError) -> SeekIndex {
        let sidecar = sidecarPath(path)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? nil
        if let data = FileManager.default.contents(atPath: sidecar), let index = decode(Array(data)), index.recordingSize == size {
            return index
        }
        let (index, ended) = try buildReportingEnd(path: path)
        if ended, index.recordingSize == size { index.save(nextTo: path) }
        return index
    }

    static func sidecarPath(_ recordingPath: String) -> String {
        let stem = recordingPath.hasSuffix("." + RecordingFiles.fileExtension)
            ? String(recordingPath.dropLast(RecordingFiles.fileExtension.count + 1)) : recordingPath
        return stem + "." + fileExtension
    }

    /// The last entry at or before `time` (binary search).
    public func entry(atOrBefore time: UInt64) -> Entry? { Self.last(in: entries, atOrBefore: time) }

    /// Where to start replaying output to show the screen as it is at `time`; nil means from the
    /// first record.
    public func redrawStart(for time: UInt64) -> Entry? {
        let keyframe = Self.last(in: keyframes, atOrBefore: time)
        guard let target = entry(atOrBefore: time) else { return keyframe }
        let windowStart = target.offset > Self.redrawWindow ? target.offset - Self.redrawWindow : 0
        if let keyframe, keyframe.offset >= windowStart { return keyframe }
        // No screen reset close by: start at the last entry at least redrawWindow bytes back, so
        // the replay holds more output than any terminal shows.
        var low = 0, high = entries.count
        while low < high { let mid = (low + high) / 2; if entries[mid].offset <= windowStart { low = mid + 1 } else { high = mid } }
        return low == 0 ? nil : entries[low - 1]
    }

    static func last(in table: [Entry], atOrBefore time: UInt64) -> Entry? {
        var low = 0, high = table.count
        while low < high { let mid = (low + high) / 2; if table[mid].timeMicros <= time { low = mid + 1 } else { high = mid } }
        return low == 0 ? nil : table[low - 1]
    }

    /// True when the output holds `ESC c` (reset) or `ESC [ 2 J` (erase display). memchr finds
    /// the escapes, so bulk output without any costs next to nothing.
    static func resetsScreen(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress, bytes.count >= 2 else { return false }
        var cursor = base
        let end = base + bytes.count
        while cursor < end, let found = memchr(cursor, 0x1B, end - cursor) {
            let at = UnsafeRawPointer(found)
            let left = end - at
            if left >= 2, at.load(fromByteOffset: 1, as: UInt8.self) == 0x63 { return true }
            if left >= 4, at.load(fromByteOffset: 1, as: UInt8.self) == 0x5B, at.load(fromByteOffset: 2, as: UInt8.self) == 0x32,
               at.load(fromByteOffset: 3, as: UInt8.self) == 0x4A { return true }
            cursor = at + 1
        }
        return false
    }

    // MARK: Sidecar encoding: magic, u64 size, u64 duration, three tables (u64 count, entries), marker labels.

    func encoded() -> [UInt8] {
        var w = ByteWriter()
        w.raw(Self.magic); w.u64(recordingSize); w.u64(durationMicros)
        for table in [entries, keyframes, markers.map(\.entry)] {
            w.u64(UInt64(table.count))
            for e in table { w.u64(e.timeMicros); w.u64(e.offset); w.u64(e.record) }
        }
        for marker in markers { w.string(Array(marker.label.utf8)) }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) -> SeekIndex? {
        var r = ByteReader(bytes)
        guard (try? r.raw(8)) == magic, let size = try? r.u64(), let duration = try? r.u64() else { return nil }
        var tables: [[Entry]] = []
        for _ in 0..<3 {
            guard let count = try? r.u64(), count <= UInt64(r.remaining / 24) else { return nil }
            var table: [Entry] = []
            for _ in 0..<count {
                guard let t = try? r.u64(), let o = try? r.u64(), let n = try? r.u64() else { return nil }
                table.append(Entry(timeMicros: t, offset: o, record: n))
            }
            tables.append(table)
        }
        var markers: [Marker] = []
        for entry in tables[2] {
            guard let label = try? r.string() else { return nil }
            markers.append(Marker(entry: entry, label: String(decoding: label, as: UTF8.self)))
        }
        guard r.remaining == 0 else { return nil }
        return SeekIndex(recordingSize: size, entries: tables[0], keyframes: tables[1], markers: markers, durationMicros: duration)
    }
}

/// Accumulates a `SeekIndex` record by record: used by `SeekIndex.build` when reading and by the
/// writer while recording, so both produce the same table.
struct SeekIndexBuilder {
    private var index = SeekIndex(recordingSize: 0, entries: [], keyframes: [], markers: [], durationMicros: 0)
    private var lastEntry: SeekIndex.Entry?

    /// One record after the header. `output`: the payload of a stdout or stderr record.
    mutating func add(record: UInt64, offset: UInt64, time: UInt64, output: UnsafeRawBufferPointer? = nil, marker: String? = nil) {
        let entry = SeekIndex.Entry(timeMicros: time, offset: offset, record: record)
        if let last = lastEntry {
            if offset - last.offset >= SeekIndex.byteStride || time - last.timeMicros >= SeekIndex.timeStride {
                index.entries.append(entry); lastEntry = entry
            }
        } else {
            index.entries.append(entry); lastEntry = entry
        }
        if let output, SeekIndex.resetsScreen(output) { index.keyframes.append(entry) }
        if let marker { index.markers.append(SeekIndex.Marker(entry: entry, label: marker)) }
        index.durationMicros = time
    }

    func finish(recordingSize: UInt64) -> SeekIndex {
        var result = index
        result.recordingSize = recordingSize
        return result
    }
}
