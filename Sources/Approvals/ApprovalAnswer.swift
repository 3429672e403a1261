import Foundation
import JSONWriting

/// What an agent is told about a request: on the exit-75 answer to a review command, and as
/// the answer of every wait. JSON with snake_case keys in sorted order, through the one writer:
///
/// `{"approval_id":"apr-…","command":"systemctl restart nginx","expires":"2026-12-02T10:15:00.000Z",
///   "next":"wait","retry_after":5,"status":"pending","target":"web-01"}`
///
/// plus `decided_by` once decided and, for a denial, its `reason` (what the agent acts on).
public struct ApprovalAnswer: Sendable, Equatable {
    /// What the agent should do next.
    public enum Next: String, Sendable {
        /// Nobody decided yet: wait (again).
        case wait
        /// Approved: resend the byte-identical command on the same target, once.
        case resend
        /// Denied, expired or already used: do not retry this command.
        case stop
    }

    /// `EX_TEMPFAIL` (sysexits.h): "try again later", distinct from the policy denial's 77.
    public static let exitStatus: Int32 = 75
    /// Seconds an agent should let pass before asking again while a request is pending.
    public static let pendingRetryAfter = 5

    public let approvalID: String
    public let status: ApprovalStatus
    public let next: Next
    public let retryAfter: Int
    public let target: String
    public let command: String
    public let expires: Date
    public let decidedBy: String?
    public let reason: String?

    public init(_ record: ApprovalRecord, now: Date) {
        approvalID = record.id
        status = record.status(at: now)
        switch status {
        case .pending: next = .wait
        case .approved: next = .resend
        case .denied, .expired, .consumed: next = .stop
        }
        retryAfter = status == .pending ? Self.pendingRetryAfter : 0
        target = record.key.target
        command = record.key.command
        expires = record.expiresAt
        decidedBy = record.decision?.approver
        // Only a denial's reason is for the agent; an approver's note stays in the audit log.
        reason = status == .denied ? record.decision.map(\.reason) : nil
    }

    public var json: String {
        var w = JSONWriter()
        w.beginObject()
        w.member("approval_id", approvalID)
        w.member("command", command)
        if let decidedBy { w.member("decided_by", decidedBy) }
        w.member("expires", ApprovalTime.iso(expires))
        w.member("next", next.rawValue)
        if let reason { w.member("reason", reason) }
        w.member("retry_after", retryAfter)
        w.member("status", status.rawValue)
        w.member("target", target)
        w.endObject()
        return w.text
    }

    /// The exit-75 answer to a command that needs a person's approval: one sentence for a
    /// person, then `gatehouse-approval: {json}` for programs (as the denial line is
    /// `gatehouse-denial: {json}`). `waitCommand` is how this deployment waits, e.g.
    /// `ssh gatehouse@bastion -- approval wait`.
    public func message(waitCommand: String) -> String {
        let sentence: String
        switch next {
        case .wait:
            sentence = "gatehouse: approval required: this command needs a person's approval (request \(approvalID)); "
                + "wait with `\(waitCommand) \(approvalID)`, then resend the identical command."
        case .resend:
            sentence = "gatehouse: request \(approvalID) is approved: resend the identical command once before \(ApprovalTime.iso(expires))."
        case .stop:
            sentence = "gatehouse: request \(approvalID) is \(status.rawValue)\(reason.map { ": \($0)" } ?? ""); do not retry this command."
        }
        return sentence + "\ngatehouse-approval: " + json + "\n"
    }
}
