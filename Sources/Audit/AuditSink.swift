import Foundation

/// Where a process appends its audit events: the state directory's file (`AuditLog`) on a
/// single machine, or the chain in PostgreSQL that replicas share. Both keep one hash chain
/// with the same canonical lines, and both return only once the events are durable.
///
/// Appends are synchronous: the SSH front runs one thread per connection and audits from
/// there, and an event must be durable before the step it records is acted on.
public protocol AuditSink: Sendable {
    /// Appends `events` as consecutive records of the chain, durably.
    @discardableResult
    func append(contentsOf events: [AuditEvent], now: Date) throws -> [AuditRecord]
    /// Appends one event, sharing the write (and fsync or commit) with events other threads
    /// append at the same moment.
    @discardableResult
    func appendSharingSync(_ event: AuditEvent) throws -> AuditRecord
    /// Where the chain is, for messages: a path or a database.
    var location: String { get }
}

extension AuditSink {
    @discardableResult
    public func append(_ event: AuditEvent) throws -> AuditRecord {
        try append(contentsOf: [event], now: Date())[0]
    }

    @discardableResult
    public func append(contentsOf events: [AuditEvent]) throws -> [AuditRecord] {
        try append(contentsOf: events, now: Date())
    }
}

extension AuditLog: AuditSink {
    public var location: String { path }
}
