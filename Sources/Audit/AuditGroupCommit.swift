import Dispatch
import Foundation
import Synchronization

extension AuditLog {
    /// Appends an event, sharing one write(2) and one fsync with every event other threads
    /// append at the same moment (group commit): the first caller to find no write in progress
    /// writes everything queued so far, and keeps writing while more arrives; the others wait
    /// for the write that carries theirs. Each caller still returns only once its own event is
    /// durable, and lines stay chained in the order they were queued. A server with hundreds of
    /// connections audits at the disk's fsync rate times the batch size, not at the fsync rate.
    @discardableResult
    public func appendSharingSync(_ event: AuditEvent) throws -> AuditRecord {
        let ticket = GroupCommit.Ticket(event)
        let leads = group.state.withLock { s -> Bool in
            s.queue.append(ticket)
            guard !s.writing else { return false }
            s.writing = true
            return true
        }
        if leads {
            while true {
                let batch = group.state.withLock { s -> [GroupCommit.Ticket] in
                    defer { s.queue.removeAll(keepingCapacity: true) }
                    if s.queue.isEmpty { s.writing = false }
                    return s.queue
                }
                guard !batch.isEmpty else { break }
                let result = Result { try append(contentsOf: batch.map(\.event)) }
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

/// The queue of events waiting for the next shared write.
final class GroupCommit: Sendable {
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
}
