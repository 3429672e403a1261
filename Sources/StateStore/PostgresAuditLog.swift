import Audit
import Foundation
import JSONWriting
import Logging
import PostgresNIO

/// The audit log in PostgreSQL: **one** hash chain for every replica, with the file's rules.
///
/// An append is one transaction: `pg_advisory_xact_lock(appendLockKey)`, read the head (seq,
/// hash), build each record and hash its canonical line with `AuditLog`'s own functions,
/// insert the rows, commit (the lock is released at commit). Appends from every process that
/// shares the database are therefore serialised in the database; the primary key on `seq`
/// is a second guard (two appenders that somehow skipped the lock collide and one rolls back).
/// The head is read in a statement *after* the lock statement, under READ COMMITTED, so it
/// sees the previous holder's committed rows (PostgreSQL releases a transaction's locks only
/// after its commit is visible).
///
/// Rows rebuild the file's lines byte for byte (`AuditLog.canonicalLine`): the chain exported
/// as JSON lines verifies with `AuditLog.verify(path:)`, and `verify()` here reports the first
/// broken position the same way.
public final class PostgresAuditLog: Sendable {
    /// The advisory lock key for appends ("GATEAUDT"). Advisory locks are per database; nothing
    /// else should use this key there.
    public static let appendLockKey: Int64 = 0x4741_5445_4155_4454

    public let store: PostgresStore

    public init(store: PostgresStore) {
        self.store = store
    }

    @discardableResult
    public func append(_ event: AuditEvent, now: Date = Date()) async throws(StateStoreError) -> AuditRecord {
        try await append(contentsOf: [event], now: now)[0]
    }

    /// Appends `events` as consecutive records of the chain in one transaction (one lock, one
    /// insert, one commit: the database's group commit). Durable when it returns (the commit's
    /// WAL flush, with PostgreSQL's default `synchronous_commit`).
    @discardableResult
    public func append(contentsOf events: [AuditEvent], now: Date = Date()) async throws(StateStoreError) -> [AuditRecord] {
        guard !events.isEmpty else { return [] }
        let operation = "audit append"
        for event in events {
            try requireNoNUL(["actor": event.actor, "action": event.action, "object": event.object], operation: operation, endpoint: store.endpoint)
        }
        let time = AuditLog.timeText(now)
        let details = events.map { Self.detailsText($0.details) }
        return try await store.transaction(operation) { connection, logger in
            try await connection.query(Self.lockStatement, logger: logger)
            let head = try await connection.rows(Self.headStatement, logger).first.map { try $0.decode((Int64, String).self) }
            let (records, columns) = Self.chain(events, after: head, time: time, details: details)
            try await connection.query(columns.insertStatement, logger: logger)
            return records
        }
    }

    static let lockStatement: PostgresQuery = "SELECT pg_advisory_xact_lock(\(appendLockKey))"
    static let headStatement: PostgresQuery = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"

    /// The records `events` become after `head` (the last row's seq and hash; nil for an empty
    /// chain), and their columns for one insert.
    static func chain(_ events: [AuditEvent], after head: (Int64, String)?, time: String, details: [String]) -> ([AuditRecord], Columns) {
        var seq: UInt64 = head.map { UInt64($0.0) + 1 } ?? 1
        var prev = head?.1 ?? AuditLog.genesisHash
        var records: [AuditRecord] = []
        var columns = Columns()
        for (index, event) in events.enumerated() {
            let record = AuditRecord(seq: seq, time: time, event: event, previousHash: prev)
            let hash = AuditLog.lineHash(AuditLog.canonicalLine(record))
            columns.add(record, details: details[index], hash: hash)
            records.append(record)
            prev = hash
            seq += 1
        }
        return (records, columns)
    }

    /// Replays the chain from seq 1, as `AuditLog.verify` does for the file: every seq present
    /// in order, each `prev_hash` the hash of the row before, each row's stored hash the hash
    /// of its canonical line. Names the first broken position ("line" is the seq expected there).
    public func verify(pageSize: Int = 5000) async throws(StateStoreError) -> AuditVerification {
        var expected: UInt64 = 1
        var prev = AuditLog.genesisHash
        while true {
            let page = try await rows(after: expected - 1, limit: pageSize)
            for row in page {
                let position = Int(expected)
                guard row.seq == expected else {
                    return .broken(line: position, reason: row.seq > expected
                        ? "sequence number \(row.seq) where \(expected) was expected (rows are missing)"
                        : "sequence number \(row.seq) where \(expected) was expected")
                }
                guard let record = row.record else { return .broken(line: position, reason: "not a valid audit record (outcome or details unreadable)") }
                guard record.previousHash == prev else {
                    return .broken(line: position, reason: "prev hash does not match line \(position - 1) (a row before it was edited, dropped, inserted or reordered)")
                }
                let hash = AuditLog.lineHash(AuditLog.canonicalLine(record))
                guard hash == row.hash else { return .broken(line: position, reason: "the row's content does not match its hash (edited)") }
                prev = hash
                expected += 1
            }
            if page.count < pageSize { break }
        }
        return .intact(lines: Int(expected - 1), lastHash: prev)
    }

    /// Records with seq > `after`, in order, at most `limit` (for `gatehouse audit`, export).
    /// Rows that cannot be read as records are skipped, as `AuditLog.records` skips lines.
    public func records(after: UInt64 = 0, limit: Int = 1000) async throws(StateStoreError) -> [AuditRecord] {
        try await rows(after: after, limit: limit).compactMap(\.record)
    }

    /// The head: the last seq and its hash (0 and the genesis hash for an empty chain).
    public func head() async throws(StateStoreError) -> (seq: UInt64, hash: String) {
        let rows = try await store.query("audit head", "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        guard let row = rows.first else { return (0, AuditLog.genesisHash) }
        do {
            let (seq, hash) = try row.decode((Int64, String).self)
            return (UInt64(seq), hash)
        } catch {
            throw StateStoreError.from(error, operation: "audit head", endpoint: store.endpoint)
        }
    }

    // MARK: Rows

    struct Row: Sendable {
        let seq: UInt64
        let hash: String
        let record: AuditRecord?
    }

    func rows(after: UInt64, limit: Int) async throws(StateStoreError) -> [Row] {
        let operation = "audit read"
        let rows = try await store.query(operation, """
            SELECT seq, time, actor, action, object, outcome, details, prev_hash, hash FROM audit_events
            WHERE seq > \(Int64(after)) ORDER BY seq LIMIT \(limit)
            """)
        do {
            return try rows.map { row in
                let (seq, time, actor, action, object, outcome, details, prev, hash) =
                    try row.decode((Int64, String, String, String, String, String, String, String, String).self)
                var record: AuditRecord?
                if let outcome = AuditEvent.Outcome(rawValue: outcome), let details = Self.details(details) {
                    record = AuditRecord(seq: UInt64(seq), time: time,
                                         event: AuditEvent(actor: actor, action: action, object: object, outcome: outcome, details: details),
                                         previousHash: prev)
                }
                return Row(seq: UInt64(seq), hash: hash, record: record)
            }
        } catch {
            throw StateStoreError.from(error, operation: operation, endpoint: store.endpoint)
        }
    }

    /// The details object as stored: JSON, keys in UTF-8 byte order, strings escaped as the
    /// audit file escapes them (U+0000 becomes \u0000, so the text column can hold it).
    static func detailsText(_ details: [String: String]) -> String {
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        for key in details.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) { w.member(key, details[key]!) }
        w.endObject()
        return w.text
    }

    static func details(_ text: String) -> [String: String]? {
        try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))
    }

    /// The nine columns of a batch, bound as arrays and inserted with one `unnest`.
    struct Columns {
        var seq: [Int64] = [], time: [String] = [], actor: [String] = [], action: [String] = [], object: [String] = []
        var outcome: [String] = [], details: [String] = [], prev: [String] = [], hash: [String] = []

        mutating func add(_ r: AuditRecord, details text: String, hash h: String) {
            seq.append(Int64(r.seq)); time.append(r.time); actor.append(r.event.actor); action.append(r.event.action)
            object.append(r.event.object); outcome.append(r.event.outcome.rawValue); details.append(text)
            prev.append(r.previousHash); hash.append(h)
        }

        /// The rows, bound as arrays and inserted with one `unnest`.
        var insertStatement: PostgresQuery {
            """
            INSERT INTO audit_events (seq, time, actor, action, object, outcome, details, prev_hash, hash)
            SELECT * FROM unnest(\(seq)::bigint[], \(time)::text[], \(actor)::text[], \(action)::text[],
                                 \(object)::text[], \(outcome)::text[], \(details)::text[],
                                 \(prev)::text[], \(hash)::text[])
            """
        }
    }
}
