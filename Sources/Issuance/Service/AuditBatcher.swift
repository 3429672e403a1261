import Audit
import Dispatch
import Foundation
import Synchronization

/// Audits issuance decisions with group commit. Every request still waits until its own record
/// is written and fsynced (an answered request is an audited one), but records arriving while a
/// write is in progress go out together in the next write: one fsync serves many requests.
/// Writes run on a dispatch queue, not on Swift's cooperative pool (2 threads on 2 cores) where
/// a blocking fsync would stall every other request.
public final class AuditBatcher: Sendable {
    public let log: any AuditSink
    private let pending = Mutex<(items: [(AuditEvent, CheckedContinuation<Bool, Never>)], draining: Bool)>(([], false))
    private let queue = DispatchQueue(label: "gatehouse.issuance.audit")

    public init(log: any AuditSink) { self.log = log }

    /// Appends `event`; true once it is durable, false if the log could not be written.
    public func record(_ event: AuditEvent) async -> Bool {
        await withCheckedContinuation { continuation in
            let start = pending.withLock { p -> Bool in
                p.items.append((event, continuation))
                if p.draining { return false }
                p.draining = true
                return true
            }
            if start { queue.async { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let batch = pending.withLock { p -> [(AuditEvent, CheckedContinuation<Bool, Never>)] in
                let items = p.items
                p.items = []
                if items.isEmpty { p.draining = false }
                return items
            }
            if batch.isEmpty { return }
            let ok = (try? log.append(contentsOf: batch.map(\.0), now: Date())) != nil
            for (_, c) in batch { c.resume(returning: ok) }
        }
    }
}
