import Refusals

/// Why an approval step was refused. Each case has its own stable code (kebab-case, as the SSH
/// side's codes are) so an agent, an alert or a test can tell them apart without reading prose.
public enum ApprovalRefusal: RefusalConvertible, Equatable, CustomStringConvertible {
    /// Which part of a resend did not match the approved request.
    public enum Mismatch: String, Sendable { case command, target, login, identity }

    case notFound(id: String)
    /// The approver is the requester (four eyes).
    case selfApproval(approver: String)
    /// The approver matches none of the scope's `approvers`.
    case approverNotListed(approver: String, approvers: [String])
    /// A decision on a request that is no longer pending.
    case alreadyDecided(id: String, status: ApprovalStatus)
    case reasonRequired
    /// A resend (or a consume) of a request nobody has decided yet.
    case stillPending(id: String)
    case denied(id: String, by: String, reason: String)
    case expired(id: String, at: String)
    /// Released once already.
    case consumed(id: String, at: String)
    case mismatch(id: String, part: Mismatch)

    public var code: String {
        switch self {
        case .notFound: return "approval-not-found"
        case .selfApproval: return "approval-self-approval"
        case .approverNotListed: return "approval-approver-not-listed"
        case .alreadyDecided: return "approval-already-decided"
        case .reasonRequired: return "approval-reason-required"
        case .stillPending: return "approval-pending"
        case .denied: return "approval-denied"
        case .expired: return "approval-expired"
        case .consumed: return "approval-consumed"
        case .mismatch(_, let part): return "approval-\(part.rawValue)-mismatch"
        }
    }

    /// The rule that decided, named after the scope setting or invariant behind it.
    public var rule: String {
        switch self {
        case .notFound: return "approval_id"
        case .selfApproval: return "four_eyes"
        case .approverNotListed: return "approvers"
        case .alreadyDecided, .stillPending: return "state"
        case .reasonRequired: return "reason"
        case .denied: return "decision"
        case .expired: return "approval_ttl"
        case .consumed: return "release_once"
        case .mismatch: return "request_key"
        }
    }

    public var description: String {
        switch self {
        case .notFound(let id): return "no approval request \(id)"
        case .selfApproval(let approver): return "\(approver) asked for this approval and cannot approve it too: someone else must decide"
        case .approverNotListed(let approver, let approvers):
            return "\(approver) may not decide for this scope (approvers: \(approvers.joined(separator: ", ")))"
        case .alreadyDecided(let id, let status): return "approval request \(id) is already \(status.rawValue)"
        case .reasonRequired: return "a denial needs a reason the agent can act on"
        case .stillPending(let id): return "approval request \(id) is still waiting for a decision"
        case .denied(let id, let by, let reason): return "approval request \(id) was denied by \(by): \(reason)"
        case .expired(let id, let at): return "approval request \(id) expired at \(at)"
        case .consumed(let id, let at): return "approval request \(id) was already used at \(at); it releases its command once"
        case .mismatch(let id, let part): return "this request's \(part.rawValue) differs from the one approved as \(id)"
        }
    }

    public var refusal: Refusal { Refusal(code: code, rule: rule, reason: description) }
}
