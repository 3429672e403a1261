import Approvals
import Audit
import Foundation
import PostgresNIO

/// The statements on `approvals` rows: the record's JSON is the truth, the other columns are
/// copied from it in the same statement.
enum ApprovalRows {
    static func decode(_ row: PostgresRow) throws -> ApprovalRecord {
        let json = try row.decode(String.self)
        do { return try ApprovalRecord(json: json) } catch {
            throw StateStoreError(operation: "approval read", endpoint: "", kind: .data("an approvals row is damaged: \(error)"))
        }
    }

    /// When the request reached its final state, from its stored status only (a request still
    /// stored as pending is written as expired before it counts as finished).
    static func finishedAt(_ r: ApprovalRecord) -> Date? {
        r.storedStatus.isFinal ? r.finishedAt(now: r.expiresAt) : nil
    }

    static func insert(_ r: ApprovalRecord, _ session: BlockingConnection.Session) throws {
        try session.query("""
            INSERT INTO approvals (approval_id, key_digest, status, deadline, finished_at, record, change)
            VALUES (\(r.id), \(r.key.digest), \(r.storedStatus.rawValue), \(r.expiresAt), \(finishedAt(r)), \(r.json), nextval('approval_changes'))
            """)
    }

    static func update(_ r: ApprovalRecord, _ session: BlockingConnection.Session) throws {
        try session.query("""
            UPDATE approvals SET status = \(r.storedStatus.rawValue), deadline = \(r.expiresAt), finished_at = \(finishedAt(r)),
                record = \(r.json), change = nextval('approval_changes')
            WHERE approval_id = \(r.id)
            """)
    }
}

extension PostgresApprovalStore {
    /// What a transaction's body works with and adds to.
    struct Step {
        let session: BlockingConnection.Session
        let now: Date
        var events: [AuditEvent] = []
        /// Rows were written or deleted: notify the other replicas at commit.
        var changed = false
        /// The requests whose expiry this transaction wrote down, in list order.
        var expired: [ApprovalRecord] = []
        /// The body refused an attempt at a step (counted once committed).
        var refused = false
    }

    /// Runs `body` in one transaction under the store's advisory lock, after writing down every
    /// due expiry; then prunes requests finished more than `retention` ago, notifies if rows
    /// changed, and hands the events to the audit sink, all before the commit. An
    /// `ApprovalRefusal` from `body` is committed (its refused event is audited, as the file
    /// store does) and thrown after the commit; any other error, a failing audit included,
    /// rolls everything back.
    func transaction<T>(_ operation: String, _ body: (inout Step) throws -> T) throws -> T {
        var auditFailure: (any Error)?
        let (result, step): (Result<T, ApprovalRefusal>, Step)
        do {
            (result, step) = try connection.transaction(operation) { session in
                try session.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))")
                var step = Step(session: session, now: now())
                try expireAll(&step)
                let result: Result<T, ApprovalRefusal>
                do { result = .success(try body(&step)) } catch let refusal as ApprovalRefusal { result = .failure(refusal) }
                let cutoff = step.now.addingTimeInterval(-retention)
                if try session.query("DELETE FROM approvals WHERE finished_at < \(cutoff) RETURNING approval_id").count > 0 { step.changed = true }
                // Delivered at commit, and not at all on a rollback.
                if step.changed { try session.query("SELECT pg_notify(\(Self.channel), '')") }
                if !step.events.isEmpty {
                    do { try audit(step.events) } catch { auditFailure = error; throw error }
                }
                return (result, step)
            }
        } catch {
            // The sink's own error, not the connection's wrapping of it.
            if let auditFailure { throw auditFailure }
            throw error
        }
        if let metrics {
            for _ in step.expired { metrics.expired() }
            if step.refused { metrics.refused() }
        }
        if step.changed { changes.signal() }
        return try result.get()
    }

    /// Writes down (and audits) the expiry of every request in force whose deadline passed.
    private func expireAll(_ step: inout Step) throws {
        let due = try step.session.query("""
            SELECT record FROM approvals WHERE status IN ('pending', 'approved') AND deadline <= \(step.now) ORDER BY position
            """).map(ApprovalRows.decode)
        for record in due {
            guard let expired = ApprovalTransitions.expired(record, now: step.now) else { continue }
            try ApprovalRows.update(expired, step.session)
            step.events.append(ApprovalAuditEvents.expired(expired))
            step.expired.append(expired)
            step.changed = true
        }
    }
}
