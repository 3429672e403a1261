import Audit
import Foundation
import PostgresNIO
import Synchronization

/// The database's audit chain (`audit_events`, see `PostgresAuditLog`) for a running replica:
/// synchronous appends over a `BlockingConnection` of its own, with group commit (events other
/// threads append at the same moment share one transaction), and a local spool for the time
/// the database is unreachable.
///
/// Order within the replica is kept: while the spool holds anything, new events go behind it,
/// and every append first tries to drain it.
public final class SharedAuditLog: AuditSink {
    public let connection: BlockingConnection
    public let spool: AuditSpool?
    private let group = AuditGroupCommit()
    /// One writer at a time, for the chain and the spool together.
    private let writer = Mutex(())

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
                try drainLocked()
                return try appendToDatabase(events, now: now)
            } catch let error as StateStoreError {
                guard let spool else { throw error }
                try spool.keep(events, now: now)
                // Spooled records have no place in the chain yet: seq 0 says so.
                return events.map { AuditRecord(seq: 0, time: AuditLog.timeText(now), event: $0, previousHash: "") }
            }
        }
    }

    @discardableResult
    public func appendSharingSync(_ event: AuditEvent) throws -> AuditRecord {
        try group.submit(event) { try append(contentsOf: $0, now: Date()) }
    }

    /// Appends what the spool holds to the chain (a periodic task calls it; so does every
    /// append). Throws when the database is still unreachable.
    public func drainSpool() throws {
        try writer.withLock { _ in try drainLocked() }
    }

    /// How many events wait in the spool.
    public var spooledEvents: Int { (try? spool?.read())??.entries.count ?? 0 }

    private func drainLocked() throws {
        guard let spool, let (id, entries) = try spool.read() else { return }
        let events = entries.compactMap { entry in entry.event.map { (entry.n, $0) } }
        try connection.transaction("audit spool drain") { session in
            try session.query(PostgresAuditLog.lockStatement)
            let done = try session.query("SELECT last_entry FROM audit_spools WHERE spool = \(id)").first.map { try $0.decode(Int64.self) } ?? 0
            let pending = events.filter { $0.0 > done }
            if !pending.isEmpty {
                try insert(pending.map(\.1), now: Date(), session: session)
                try session.query("""
                    INSERT INTO audit_spools (spool, last_entry) VALUES (\(id), \(pending.last!.0))
                    ON CONFLICT (spool) DO UPDATE SET last_entry = EXCLUDED.last_entry, drained_at = now()
                    """)
            }
        }
        spool.remove()
    }

    private func appendToDatabase(_ events: [AuditEvent], now: Date) throws -> [AuditRecord] {
        try connection.transaction("audit append") { session in
            try session.query(PostgresAuditLog.lockStatement)
            return try insert(events, now: now, session: session)
        }
    }

    /// Under the append lock: reads the head and inserts `events` after it.
    private func insert(_ events: [AuditEvent], now: Date, session: BlockingConnection.Session) throws -> [AuditRecord] {
        let head = try session.query(PostgresAuditLog.headStatement).first.map { try $0.decode((Int64, String).self) }
        let (records, columns) = PostgresAuditLog.chain(events, after: head, time: AuditLog.timeText(now),
                                                        details: events.map { PostgresAuditLog.detailsText($0.details) })
        try session.query(columns.insertStatement)
        return records
    }
}
