import Foundation

/// What the shipper reports for `/healthz` and the session gate.
public struct ShippingHealth: Sendable, Equatable, CustomStringConvertible {
    /// False once the finished, unshipped bytes in this replica's spool exceed the limit: no
    /// recording can be promised a way out, so no new session (no recording, no session).
    public var acceptsNewSessions: Bool
    public var queuedFiles: Int
    public var queuedBytes: Int64
    public var queueLimitBytes: Int64
    /// Failures in a row of the object store or the database; 0 when the last attempt worked.
    public var consecutiveFailures: Int
    /// The last failure's text (an S3 or database error, as precise as they are), until a success.
    public var lastError: String?
    public var lastShippedAt: Date?
    /// Recordings left in a spool because they are damaged (recovery refused them: shipping
    /// them would hide the damage behind "shipped"; `gatehouse verify` reports it) or because
    /// the index has them shipped with other content.
    public var heldBack: [String]
    /// The last heartbeat's failure, when the database could not be told this replica lives.
    public var heartbeatError: String?

    /// nil while new sessions are accepted; otherwise why not, for `/healthz` and the refusal
    /// an agent sees ("recordings cannot be shipped: …").
    public var problem: String? {
        guard !acceptsNewSessions else { return nil }
        return "recordings cannot be shipped: \(queuedBytes) bytes in \(queuedFiles) recordings wait, more than the limit of \(queueLimitBytes)"
            + (lastError.map { "; last error: \($0)" } ?? "")
    }

    public var description: String {
        var text = acceptsNewSessions ? "shipping ok" : "shipping queue full: new sessions refused"
        text += ": \(queuedFiles) recordings (\(queuedBytes) bytes) waiting, limit \(queueLimitBytes) bytes"
        if consecutiveFailures > 0, let lastError { text += "; \(consecutiveFailures) failures in a row, last: \(lastError)" }
        if !heldBack.isEmpty { text += "; held back (damaged): \(heldBack.joined(separator: ", "))" }
        if let heartbeatError { text += "; heartbeat failing: \(heartbeatError)" }
        return text
    }
}

/// What happened, for the server's audit log and logs.
public enum ShippingEvent: Sendable, Equatable {
    /// In the bucket and verified; the local copy is deleted.
    case shipped(recordingID: String, objectKey: String, bytes: Int64, fromReplica: String)
    /// A dead replica's unfinished recording was closed with a signed crash end (as `gatehouse verify` does).
    case recovered(recordingID: String, replica: String, discardedBytes: UInt64)
    /// The recording was already in the bucket (shipped before a crash deleted the local copy): local copy deleted.
    case alreadyShipped(recordingID: String, objectKey: String)
    /// Shipping failed; the file stays in the spool and is retried.
    case failed(recordingID: String, reason: String)
    /// Recovery refused a damaged recording, or the index disagrees with the file; it stays in its spool.
    case heldBack(recordingID: String, reason: String)
}
