import Foundation

/// One audited decision or action. `details` carries the fields that decided it (reason,
/// serial, fingerprint, context…) as strings so every line has the same simple shape.
public struct AuditEvent: Sendable, Equatable {
    public enum Outcome: String, Sendable { case success, refused, failure }

    public var actor: String
    public var action: String
    public var object: String
    public var outcome: Outcome
    public var details: [String: String]

    public init(actor: String, action: String, object: String, outcome: Outcome, details: [String: String] = [:]) {
        self.actor = actor
        self.action = action
        self.object = object
        self.outcome = outcome
        self.details = details
    }
}

/// A line read back from the log.
public struct AuditRecord: Sendable, Equatable {
    public let seq: UInt64
    public let time: String
    public let event: AuditEvent
    public let previousHash: String

    /// Public so another store of the same chain (the PostgreSQL audit log) can rebuild a record
    /// from its columns and hash it exactly as this module does.
    public init(seq: UInt64, time: String, event: AuditEvent, previousHash: String) {
        self.seq = seq
        self.time = time
        self.event = event
        self.previousHash = previousHash
    }
}
