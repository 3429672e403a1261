import Dispatch
import Foundation
import Synchronization

extension AuditLog {
    /// Appends an event, sharing one write(2) and one fsync with every event other threads
    /// append at the same moment (group commit): a server with hundreds of connections audits
    /// at the disk's fsync rate times the batch size, not at the fsync rate.
    @discardableResult
    public func appendSharingSync(_ event: AuditEvent) throws -> AuditRecord {
        try group.submit(event) { try append(contentsOf: $0) }
    }
}

/// Group commit for any store of the chain: the first caller to find no write in progress
/// writes everything queued so far, and keeps writing while more arrives; the others wait for
/// the write that carries theirs. Each caller still returns only once its own event is
/// durable, and events stay chained in the order they were queued.
public final class AuditGroupCommit: Sendable {
    struct State {
        var queue: [Ticket] = []
        var writing = false
    }

    /// One waiting event; its result is set before `done` is signalled, and read after.
    final class Ticket: @unchecked Sendable {
        let event: AuditEvent
        let done = DispatchSemaphore(value: 0)
        var result: Result<AuditRecord, any Error>?
        init(_ event: AuditEvent) { self.event = event }
    }

    let state = Mutex(State())

    public init() {}

    /// Queues `event` and returns its record once `write` has made it durable (in a batch this
    /// thread or another wrote).
    public func submit(_ event: AuditEvent, write: ([AuditEvent]) throws -> [AuditRecord]) throws -> AuditRecord {
        let ticket = Ticket(event)
        let leads = state.withLock { s -> Bool in
            s.queue.append(ticket)
            guard !s.writing else { return false }
            s.writing = true
            return true
        }
        if leads {
            while true {
                let batch = state.withLock { s -> [Ticket] in
                    defer { s.queue.removeAll(keepingCapacity: true) }
                    if s.queue.isEmpty { s.writing = false }
                    return s.queue
                }
                guard !batch.isEmpty else { break }
                let result = Result { try write(batch.map(\.event)) }
                for (index, waiting) in batch.enumerated() {
                    waiting.result = result.map { $0[index] }
                    waiting.done.signal()
                }
            }
        }
        ticket.done.wait()
        return try ticket.result!.get()
    }
}
