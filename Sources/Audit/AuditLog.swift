import Crypto
import Foundation
import JSONWriting
import Synchronization

public struct AuditLogError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(description: String) { self.description = description }
}

/// An append-only JSON-lines audit log in which every line carries the SHA-256 of the line
/// before it (`prev`) and a sequence number (`seq`), so an edited, dropped, inserted or
/// reordered line breaks the chain at a line `verify` names.
///
/// Appends are serialized within the process (a mutex) and across processes (`flock`), so the
/// CLI and a running server can both write. Each append reads the current last line under the
/// lock, writes one complete line with a single write(2) and fsyncs before returning: an event
/// that was reported as audited survives a crash.
public final class AuditLog: Sendable {
    public let path: String
    private let lock = Mutex(())
    /// Events waiting to share the next write and fsync (`appendSharingSync`).
    let group = AuditGroupCommit()

    public static let genesisHash = String(repeating: "0", count: 64)

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditLogError(description: "cannot open audit log \(path): \(String(cString: strerror(errno)))") }
        close(fd)
    }

    @discardableResult
    public func append(_ event: AuditEvent, now: Date = Date()) throws -> AuditRecord {
        try append(contentsOf: [event], now: now)[0]
    }

    /// Appends several events as consecutive, chained lines with one write(2) and one fsync
    /// (group commit): a busy issuer can audit thousands of decisions a second on one disk, and
    /// each event is still durable before the caller reports it.
    @discardableResult
    public func append(contentsOf events: [AuditEvent], now: Date = Date()) throws -> [AuditRecord] {
        guard !events.isEmpty else { return [] }
        return try lock.withLock { _ in
            let fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC)
            guard fd >= 0 else { throw AuditLogError(description: "cannot open audit log \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            guard flock(fd, LOCK_EX) == 0 else { throw AuditLogError(description: "cannot lock audit log \(path)") }
            defer { flock(fd, LOCK_UN) }
            let (lastLine, endsWithNewline) = try Self.lastLine(fd)
            var seq: UInt64 = 1
            var prev = Self.genesisHash
            var prefix = ""
            if let lastLine {
                prev = Self.hash(lastLine)
                if let record = try? Self.decode(lastLine) { seq = record.seq + 1 } else { seq = 0 }
                // A torn last line (crash mid-write) is kept, terminated, and chained over, so the
                // damage stays visible to verify instead of being silently dropped.
                if !endsWithNewline { prefix = "\n" }
                if seq == 0 { seq = UInt64(Self.countLines(fd) + (endsWithNewline ? 1 : 2)) }
            }
            let time = Self.timestamp(now)
            var records: [AuditRecord] = []
            var text = prefix
            for event in events {
                let record = AuditRecord(seq: seq, time: time, event: event, previousHash: prev)
                let line = Self.encode(record)
                text += line + "\n"
                records.append(record)
                prev = Self.hash(Array(line.utf8))
                seq += 1
            }
            let bytes = Array(text.utf8)
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == bytes.count else { throw AuditLogError(description: "cannot write audit log \(path): \(String(cString: strerror(errno)))") }
            guard fsync(fd) == 0 else { throw AuditLogError(description: "cannot sync audit log \(path): \(String(cString: strerror(errno)))") }
            return records
        }
    }

    // MARK: Encoding

    /// The canonical line for a record: exactly the bytes `JSONSerialization` writes with
    /// `[.sortedKeys, .withoutEscapingSlashes]` (verify compares lines against this, so logs
    /// written by either encoder stay valid), built directly: the Foundation writer bridged
    /// every value to an `NSDictionary` and sorted keys with a locale-aware ICU comparison per
    /// pair, which made the audit writer the issuer's hottest code. Keys are ordered with the
    /// very comparison Foundation uses, computed once per set of detail keys and cached.
    static func encode(_ r: AuditRecord) -> String {
        // Top-level keys in Foundation's order (all lowercase ASCII letters: the order is
        // alphabetical; the test suite checks this against JSONSerialization).
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        w.member("action", r.event.action)
        w.member("actor", r.event.actor)
        w.key("details")
        w.beginObject()
        for key in sortedDetailKeys(r.event.details) { w.member(key, r.event.details[key]!) }
        w.endObject()
        w.member("object", r.event.object)
        w.member("outcome", r.event.outcome.rawValue)
        w.member("prev", r.previousHash)
        w.member("seq", r.seq)
        w.member("time", r.time)
        w.endObject()
        return w.text
    }

    /// The original Foundation encoder, kept as the reference the tests compare against.
    static func foundationEncode(_ r: AuditRecord) -> String {
        let object: [String: Any] = [
            "seq": r.seq, "time": r.time, "actor": r.event.actor, "action": r.event.action, "object": r.event.object,
            "outcome": r.event.outcome.rawValue, "details": r.event.details, "prev": r.previousHash,
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// Foundation's `.sortedKeys` comparison (swift-corelibs-foundation JSONWriter): numeric,
    /// case-insensitive, forced ordering, in the system locale.
    static func foundationKeyOrder(_ a: String, _ b: String) -> Bool {
        a.compare(b, options: [.numeric, .caseInsensitive, .forcedOrdering], range: a.startIndex..<a.endIndex, locale: NSLocale.system) == .orderedAscending
    }

    private static let keyOrderCache = Mutex<[[String]: [String]]>([:])

    static func sortedDetailKeys(_ details: [String: String]) -> [String] {
        if details.count < 2 { return Array(details.keys) }
        let byteOrder = details.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        if let cached = keyOrderCache.withLock({ $0[byteOrder] }) { return cached }
        let order = byteOrder.sorted(by: foundationKeyOrder)
        keyOrderCache.withLock { cache in
            if cache.count >= 256 { cache.removeAll() }
            cache[byteOrder] = order
        }
        return order
    }

    static func decode(_ line: [UInt8]) throws -> AuditRecord {
        guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
              let seq = (object["seq"] as? NSNumber)?.uint64Value, let time = object["time"] as? String,
              let actor = object["actor"] as? String, let action = object["action"] as? String, let target = object["object"] as? String,
              let outcomeText = object["outcome"] as? String, let outcome = AuditEvent.Outcome(rawValue: outcomeText),
              let details = object["details"] as? [String: String], let prev = object["prev"] as? String
        else { throw AuditLogError(description: "not an audit record") }
        return AuditRecord(seq: seq, time: time, event: AuditEvent(actor: actor, action: action, object: target, outcome: outcome, details: details), previousHash: prev)
    }

    static func hash(_ line: [UInt8]) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in SHA256.hash(data: line) { out.append(hex[Int(byte >> 4)]); out.append(hex[Int(byte & 0x0f)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func timestamp(_ date: Date) -> String {
        timestampFormatter.withLock { $0.string(from: date) }
    }

    /// Built once: creating an ISO8601DateFormatter (an ICU formatter underneath) per append
    /// cost more than encoding the records. ISO8601DateFormatter is not thread-safe, hence the
    /// mutex (held only for the formatting).
    private static let timestampFormatter: Mutex<ISO8601DateFormatter> = {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        return Mutex(f)
    }()

    /// The last line (without its newline) by reading backwards from the end: appends stay
    /// O(line length) however long the log grows.
    static func lastLine(_ fd: Int32) throws -> ([UInt8]?, Bool) {
        let size = lseek(fd, 0, SEEK_END)
        guard size > 0 else { return (nil, true) }
        var end = Int(size)
        var tail: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        var endsWithNewline = false
        var first = true
        while end > 0 {
            let start = max(0, end - chunk.count)
            let n = pread(fd, &chunk, end - start, off_t(start))
            guard n == end - start else { throw AuditLogError(description: "cannot read audit log") }
            tail = Array(chunk[0..<n]) + tail
            if first { endsWithNewline = tail.last == 0x0a; if endsWithNewline { tail.removeLast() }; first = false }
            if let nl = tail.lastIndex(of: 0x0a) { return (Array(tail[(nl + 1)...]), endsWithNewline) }
            end = start
        }
        return (tail, endsWithNewline)
    }

    static func countLines(_ fd: Int32) -> Int {
        var count = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        var offset: off_t = 0
        while true {
            let n = pread(fd, &buffer, buffer.count, offset)
            if n <= 0 { break }
            count += buffer[0..<n].reduce(0) { $1 == 0x0a ? $0 + 1 : $0 }
            offset += off_t(n)
        }
        return count
    }
}
