import Audit
import Foundation

/// The decisions every store words the same way: the rule (`ApprovalTransitions`), the audit
/// event and the metric. A store supplies `applyStep`, its atomic read-change-write of one
/// request; `decide` and `consume` are written once, here.
public protocol ApprovalSteps: ApprovalStore {
    var stepMetrics: ApprovalMetrics? { get }
    /// One step on request `id` by `actor`, atomically: `apply` makes the new record or refuses;
    /// either way the outcome is audited (a refusal as `approval.<step>`, refused).
    func applyStep(_ step: String, id: String, actor: String, audited: (ApprovalRecord) -> AuditEvent,
                   _ apply: (ApprovalRecord, Date) throws(ApprovalRefusal) -> ApprovalRecord) throws -> ApprovalRecord
}

extension ApprovalSteps {
    public func decide(_ id: String, approve: Bool, by approver: ApproverIdentity, reason: String) throws -> ApprovalRecord {
        let decided = try applyStep("decide", id: id, actor: approver.id, audited: ApprovalAuditEvents.decided) { record, now throws(ApprovalRefusal) in
            try ApprovalTransitions.decide(record, approve: approve, by: approver, reason: reason, now: now)
        }
        if let decision = decided.decision { stepMetrics?.decided(approved: approve, after: decision.at.timeIntervalSince(decided.requestedAt)) }
        return decided
    }

    public func consume(_ id: String, presenting key: ApprovalRequestKey, session: String?) throws -> ApprovalRecord {
        let consumed = try applyStep("consume", id: id, actor: key.identity, audited: ApprovalAuditEvents.consumed) { record, now throws(ApprovalRefusal) in
            try ApprovalTransitions.consume(record, presenting: key, session: session, now: now)
        }
        stepMetrics?.consumed()
        return consumed
    }
}
