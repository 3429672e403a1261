import Audit
import Foundation
import PostgresNIO
import Synchronization

/// The database's audit chain (`audit_events`, see `PostgresAuditLog`) for a running replica:
/// synchronous appends over a `BlockingConnection` of its own, with group commit (events other
/// threads append at the same moment share one insert), and a local spool for the time the
/// database is unreachable.
///
/// An append is one statement, one round trip: it inserts after the head this log last wrote
/// or read, without a lock. The primary key on `seq` is what keeps the chain linear: if another
/// replica appended meanwhile, the insert is refused (23505 unique_violation), the head is read
/// again and the append retried. Rows are immutable, so the hash of a head this log knows is
/// the hash in the table, and a row's `prev_hash` is always its predecessor's.
///
/// Order within the replica is kept: while the spool holds anything, new events go behind it,
/// and `drainSpool` appends them all, in order, once the store answers.
public final class SharedAuditLog: AuditSink {
    public let connection: BlockingConnection
    public let spool: AuditSpool?
    private let group = AuditGroupCommit()
    /// One writer at a time, for the chain and the spool together.
    private let writer = Mutex(())
    /// The last row this log wrote or read (seq, hash); nil: not known, read it first.
    private let knownHead = Mutex<Head?>(nil)

    enum Head: Sendable {
        case empty
        case row(seq: Int64, hash: String)

        var tuple: (Int64, String)? {
            if case .row(let seq, let hash) = self { return (seq, hash) }
            return nil
        }
    }

    /// Attempts before an append gives up under contention (each lost race costs one re-read).
    static let maximumAttempts = 100

    public init(connection: BlockingConnection, spool: AuditSpool?) {
        self.connection = connection
        self.spool = spool
    }

    public var location: String { "PostgreSQL \(connection.endpoint) (audit_events)" }

    @discardableResult
    public func append(contentsOf events: [AuditEvent], now: Date) throws -> [AuditRecord] {
        guard !events.isEmpty else { return [] }
        for event in events {
            try requireNoNUL(["actor": event.actor, "action": event.action, "object": event.object], operation: "audit append", endpoint: connection.endpoint)
        }
        return try writer.withLock { _ in
            do {
                // While the spool holds anything, new events go behind it (order), without a
                // database attempt each: a database that hangs would stall every session's
                // audit for the deadline. `drainSpool` (the health check, once a second when
                // the store answers) empties it.
                if let spool, try spool.count() > 0 {
                    try spool.keep(events, now: now)
                    return Self.spooledRecords(events, now: now)
                }
                return try appendToDatabase(events, now: now)
            } catch let error as StateStoreError {
                guard let spool else { throw error }
                try spool.keep(events, now: now)
                return Self.spooledRecords(events, now: now)
            }
        }
    }

    /// Spooled records have no place in the chain yet: seq 0 says so.
    static func spooledRecords(_ events: [AuditEvent], now: Date) -> [AuditRecord] {
        events.map { AuditRecord(seq: 0, time: AuditLog.timeText(now), event: $0, previousHash: "") }
    }

    @discardableResult
    public func appendSharingSync(_ event: AuditEvent) throws -> AuditRecord {
        try group.submit(event) { try append(contentsOf: $0, now: Date()) }
    }

    /// Appends what the spool holds to the chain (the replica's health check calls it once a
    /// second while the store answers). Throws when the database is still unreachable.
    public func drainSpool() throws {
        try writer.withLock { _ in try drainLocked() }
    }

    /// How many events wait in the spool.
    public var spooledEvents: Int { (try? spool?.count()) ?? 0 }

    private func drainLocked() throws {
        guard let spool, let (id, entries) = try spool.read() else { return }
        let events = entries.compactMap { entry in entry.event.map { (entry.n, $0) } }
        let appended = try withRetries("audit spool drain") {
            try connection.transaction("audit spool drain") { session -> [AuditRecord] in
                let done = try session.query("SELECT last_entry FROM audit_spools WHERE spool = \(id)").first.map { try $0.decode(Int64.self) } ?? 0
                let pending = events.filter { $0.0 > done }
                guard !pending.isEmpty else { return [] }
                let head = try Self.readHead(session)
                let records = try insert(pending.map(\.1), after: head, now: Date(), session: session)
                try session.query("""
                    INSERT INTO audit_spools (spool, last_entry) VALUES (\(id), \(pending.last!.0))
                    ON CONFLICT (spool) DO UPDATE SET last_entry = EXCLUDED.last_entry, drained_at = now()
                    """)
                return records
            }
        }
        // Only what committed is a head to follow.
        remember(appended)
        spool.remove()
    }

    private func appendToDatabase(_ events: [AuditEvent], now: Date) throws -> [AuditRecord] {
        try withRetries("audit append") {
            try connection.run("audit append") { session in
                let head: Head
                if let known = knownHead.withLock({ $0 }) { head = known } else { head = try Self.readHead(session) }
                let records = try insert(events, after: head, now: now, session: session)
                remember(records)
                return records
            }
        }
    }

    /// Runs `body` again after each unique violation on `seq` (another replica appended first),
    /// with the head forgotten so the next attempt reads it.
    private func withRetries<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        for _ in 1..<Self.maximumAttempts {
            do {
                return try body()
            } catch let error as StateStoreError where error.sqlState == "23505" {
                knownHead.withLock { $0 = nil }
            }
        }
        knownHead.withLock { $0 = nil }
        return try body()
    }

    private func remember(_ records: [AuditRecord]) {
        guard let last = records.last else { return }
        let hash = AuditLog.lineHash(AuditLog.canonicalLine(last))
        knownHead.withLock { $0 = .row(seq: Int64(last.seq), hash: hash) }
    }

    static func readHead(_ session: BlockingConnection.Session) throws -> Head {
        guard let row = try session.query(PostgresAuditLog.headStatement).first else { return .empty }
        let (seq, hash) = try row.decode((Int64, String).self)
        return .row(seq: seq, hash: hash)
    }

    /// Inserts `events` after `head` in one statement.
    private func insert(_ events: [AuditEvent], after head: Head, now: Date, session: BlockingConnection.Session) throws -> [AuditRecord] {
        let (records, columns) = PostgresAuditLog.chain(events, after: head.tuple, time: AuditLog.timeText(now),
                                                        details: events.map { PostgresAuditLog.detailsText($0.details) })
        try session.query(columns.insertStatement)
        return records
    }
}
