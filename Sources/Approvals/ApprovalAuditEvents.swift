import Audit
import Foundation
import Refusals

/// The audit records of approval transitions: `approval.requested`, `approval.notified`,
/// `approval.approved`, `approval.denied`, `approval.expired`, `approval.consumed`, and a
/// refused attempt at any step as `approval.<step>` with outcome `refused` and the refusal's
/// `code`, `rule`, `reason`. The object is always the approval id; the details carry the
/// request (command, its SHA-256, target, login, requester, scope and pattern) and, from the
/// decision on, the approver and reason.
public enum ApprovalAuditEvents {
    public static func requested(_ r: ApprovalRecord) -> AuditEvent {
        AuditEvent(actor: r.requester.keyID, action: "approval.requested", object: r.id, outcome: .success,
                   details: details(r).merging(["expires_at": ApprovalTime.iso(r.expiresAt)]) { $1 })
    }

    public static func decided(_ r: ApprovalRecord) -> AuditEvent {
        let approved = r.storedStatus == .approved
        var extra = ["status": r.storedStatus.rawValue]
        if approved { extra["expires_at"] = ApprovalTime.iso(r.expiresAt) }
        return AuditEvent(actor: r.decision?.approver ?? "?", action: approved ? "approval.approved" : "approval.denied", object: r.id,
                          outcome: .success, details: details(r).merging(extra) { $1 })
    }

    public static func consumed(_ r: ApprovalRecord) -> AuditEvent {
        var extra: [String: String] = [:]
        if let session = r.consumedBy { extra["session"] = session }
        return AuditEvent(actor: r.requester.keyID, action: "approval.consumed", object: r.id, outcome: .success,
                          details: details(r).merging(extra) { $1 })
    }

    public static func expired(_ r: ApprovalRecord) -> AuditEvent {
        AuditEvent(actor: "gatehouse", action: "approval.expired", object: r.id, outcome: .success,
                   details: details(r).merging(["expires_at": ApprovalTime.iso(r.expiresAt)]) { $1 })
    }

    /// A webhook delivery: success once the receiver answered 2xx, failure when every attempt failed.
    public static func notified(_ r: ApprovalRecord, url: String, attempts: Int, error: String?) -> AuditEvent {
        var extra = ["webhook": url, "attempts": String(attempts)]
        if let error { extra["error"] = error }
        return AuditEvent(actor: "gatehouse", action: "approval.notified", object: r.id, outcome: error == nil ? .success : .failure,
                          details: details(r).merging(extra) { $1 })
    }

    /// A refused step (`decide`, `consume`…) by `actor`, with the refusal's shared fields.
    public static func refused(_ step: String, id: String, actor: String, _ refusal: ApprovalRefusal, record: ApprovalRecord?) -> AuditEvent {
        AuditEvent(actor: actor, action: "approval.\(step)", object: id, outcome: .refused,
                   details: refusal.refusal.auditFields(record.map(details) ?? [:]))
    }

    static func details(_ r: ApprovalRecord) -> [String: String] {
        var d = [
            "command": r.key.command, "command_sha256": r.key.commandSHA256, "target": r.key.target, "login": r.key.login,
            "key_id": r.requester.keyID, "serial": String(r.requester.serial), "identity": r.key.identity,
            "scope": r.rule.scope, "pattern": r.rule.pattern,
        ]
        if let task = r.requester.taskID { d["task_id"] = task }
        if let prompt = r.requester.promptSHA256 { d["prompt_sha256"] = prompt }
        if let decision = r.decision {
            d["approver"] = decision.approver
            d["reason"] = decision.reason
            if !decision.approverGroups.isEmpty { d["approver_groups"] = decision.approverGroups.joined(separator: ",") }
        }
        return d
    }
}
