import Foundation
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

    /// Reads the recording once (framing and CRCs checked) and builds the table.
    public static func build(path: String) throws(RecordingReadError) -> SeekIndex {
        let reader = try RecordingReader(path: path, allowTornTail: true)
        var index = SeekIndex(recordingSize: 0, entries: [], keyframes: [], markers: [], durationMicros: 0)
        var lastEntry: Entry?
        while let record = try reader.next() {
            let entry = Entry(timeMicros: record.timeMicros, offset: record.offset, record: record.index)
            if lastEntry == nil || record.offset - lastEntry!.offset >= byteStride || record.timeMicros - lastEntry!.timeMicros >= timeStride {
                index.entries.append(entry)
                lastEntry = entry
            }
            switch record.content {
            case .data(let stream, let bytes) where stream != .stdin:
                if resetsScreen(bytes) { index.keyframes.append(entry) }
            case .marker(let label):
                index.markers.append(Marker(entry: entry, label: label))
            default: break
            }
            index.durationMicros = record.timeMicros
        }
        index.recordingSize = reader.offset
        return index
    }

    /// The index saved next to the recording, rebuilt (and saved, when the recording is finished)
    /// if missing or stale.
    public static func load(recordingPath path: String) throws(RecordingReadError) -> SeekIndex {
        let sidecar = sidecarPath(path)
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? nil
        if let data = FileManager.default.contents(atPath: sidecar), let index = decode(Array(data)), index.recordingSize == size {
            return index
        }
        let index = try build(path: path)
        if index.recordingSize == size, (try? RecordingReader(path: path).header) != nil {
            try? Data(index.encoded()).write(to: URL(fileURLWithPath: sidecar), options: .atomic)
        }
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

    static func resetsScreen(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 2 else { return false }
        for i in 0..<(bytes.count - 1) where bytes[i] == 0x1B {
            if bytes[i + 1] == 0x63 { return true }                                               // ESC c
            if i + 3 < bytes.count, bytes[i + 1] == 0x5B, bytes[i + 2] == 0x32, bytes[i + 3] == 0x4A { return true }  // ESC [ 2 J
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
