import Audit
import Foundation
import JSONWriting
import Synchronization

/// Audit events a replica could not append to the database chain, kept durably on its own disk
/// until they can be (`STATE/audit-spool.jsonl`). While the database is unreachable, new logins
/// are refused, but sessions already open go on, and what they do (ends, refusals on a live
/// channel, approvals) is still audited: here first, then in the chain.
///
/// Exactly once: the file's first line names the spool (a random id); each entry carries its
/// number. A drain appends the entries to the chain and records the spool's last number in
/// `audit_spools` in the same transaction, then deletes the file. A crash between the commit
/// and the delete leaves entries the next drain skips.
///
/// Entries enter the chain in order, after whatever other replicas appended meanwhile; each
/// keeps the time it happened (`queued_at`) beside the time it was chained.
public final class AuditSpool: Sendable {
    public let path: String
    /// Entries over this bound are refused (the caller's audit fails, as a full disk would).
    public let maximumEntries: Int
    /// How many entries the file holds and the last one's number, once read: a replica's spool
    /// has one writer (its `SharedAuditLog`), so appends during a long outage do not re-read a
    /// growing file. nil until first needed.
    private let tail = Mutex<(count: Int, last: Int64)?>(nil)

    public init(path: String, maximumEntries: Int = 1_000_000) {
        self.path = path
        self.maximumEntries = maximumEntries
    }

    struct Entry: Decodable {
        let n: Int64
        let time: String
        let actor: String
        let action: String
        let object: String
        let outcome: String
        let details: [String: String]

        var event: AuditEvent? {
            guard let outcome = AuditEvent.Outcome(rawValue: outcome) else { return nil }
            var d = details
            d["queued_at"] = time
            return AuditEvent(actor: actor, action: action, object: object, outcome: outcome, details: d)
        }
    }

    struct Header: Decodable {
        let spool: String
    }

    /// What the file holds now: its id and entries (none when there is no file).
    func read() throws -> (id: String, entries: [Entry])? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var lines = data.split(separator: UInt8(ascii: "\n"))
        guard !lines.isEmpty else { return nil }
        let decoder = JSONDecoder()
        guard let header = try? decoder.decode(Header.self, from: Data(lines.removeFirst())) else {
            throw AuditLogError(description: "\(path): the first line is not a spool header; the spool is damaged and is left for an operator")
        }
        // A torn last line (a crash mid-write) was never reported as audited: it is skipped.
        let entries = lines.compactMap { try? decoder.decode(Entry.self, from: Data($0)) }
        return (header.spool, entries)
    }

    /// Appends `events` durably (write, then fsync). The caller reports them as audited.
    /// Entries waiting in the file.
    func count() throws -> Int { try currentTail().count }

    private func currentTail() throws -> (count: Int, last: Int64) {
        if let known = tail.withLock({ $0 }) { return known }
        let entries = try read()?.entries ?? []
        let known = (count: entries.count, last: entries.last?.n ?? 0)
        tail.withLock { $0 = known }
        return known
    }

    func keep(_ events: [AuditEvent], now: Date) throws {
        let (count, last) = try currentTail()
        let exists = FileManager.default.fileExists(atPath: path)
        guard count + events.count <= maximumEntries else {
            throw AuditLogError(description: "the audit spool \(path) holds \(count) events, its bound; nothing more can be audited until the state store is back")
        }
        var out: [UInt8] = []
        if !exists {
            var w = JSONWriter()
            w.beginObject(); w.member("spool", UUID().uuidString.lowercased()); w.endObject()
            out += w.bytes + [UInt8(ascii: "\n")]
        }
        var n = last
        let time = AuditLog.timeText(now)
        for event in events {
            n += 1
            var w = JSONWriter(capacity: 256)
            w.beginObject()
            w.member("n", n); w.member("time", time); w.member("actor", event.actor); w.member("action", event.action)
            w.member("object", event.object); w.member("outcome", event.outcome.rawValue)
            w.key("details"); w.beginObject()
            for key in event.details.keys.sorted() { w.member(key, event.details[key]!) }
            w.endObject()
            w.endObject()
            out += w.bytes + [UInt8(ascii: "\n")]
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditLogError(description: "cannot open the audit spool \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = out.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == out.count, fsync(fd) == 0 else {
            throw AuditLogError(description: "cannot write the audit spool \(path): \(String(cString: strerror(errno)))")
        }
        tail.withLock { $0 = (count + events.count, n) }
        if !exists { Self.syncDirectory(of: path) }
    }

    /// Deletes the drained file, durably.
    func remove() {
        unlink(path)
        tail.withLock { $0 = (0, 0) }
        Self.syncDirectory(of: path)
    }

    static func syncDirectory(of path: String) {
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 { fsync(dir); close(dir) }
    }
}
