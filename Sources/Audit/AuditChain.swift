import Foundation

/// The chain's rules, for other stores of the same chain (the PostgreSQL audit log shared by
/// replicas): the canonical line of a record, the hash of a line and the time format. A store
/// that writes records through these three produces lines byte for byte identical to the file's,
/// so a chain kept in a table exported as JSON lines verifies with `AuditLog.verify(path:)`.
extension AuditLog {
    /// The canonical JSON line of `record` (no newline): what the file holds and what is hashed.
    public static func canonicalLine(_ record: AuditRecord) -> String { encode(record) }

    /// The lowercase hex SHA-256 of a canonical line: the next record's `prev`.
    public static func lineHash(_ line: String) -> String { hash(Array(line.utf8)) }

    /// The record's `time` field for `date` (ISO 8601, UTC, milliseconds).
    public static func timeText(_ date: Date) -> String { timestamp(date) }

}
