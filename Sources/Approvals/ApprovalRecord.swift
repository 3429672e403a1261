import Foundation

/// pending → approved | denied | expired; approved → consumed | expired.
/// `denied`, `expired` and `consumed` are final.
public enum ApprovalStatus: String, Sendable, CaseIterable {
    case pending, approved, denied, expired, consumed

    public var isFinal: Bool { self == .denied || self == .expired || self == .consumed }
}

/// What the scope said about approvals when the request was made. Stored with the request, so
/// a decision made from the CLI (which reads no configuration) is checked against the rule in
/// force when the agent asked, and a later configuration change cannot widen a pending request.
public struct ApprovalRule: Sendable, Equatable {
    public static let defaultApprovalTTL: TimeInterval = 15 * 60
    public static let defaultRequestTTL: TimeInterval = 60 * 60

    /// The scope whose `review:` pattern matched.
    public var scope: String
    /// The `review:` pattern that matched, as written in the configuration.
    public var pattern: String
    /// Who may decide: group names, or key-id glob patterns (`oidc:*:alice`, `local:*`).
    /// Empty: anyone but the requester.
    public var approvers: [String]
    /// How long an approval stays usable after the decision (`approval_ttl`).
    public var approvalTTL: TimeInterval
    /// How long a request waits for a decision before it expires.
    public var requestTTL: TimeInterval

    public init(scope: String, pattern: String, approvers: [String] = [], approvalTTL: TimeInterval = Self.defaultApprovalTTL,
                requestTTL: TimeInterval = Self.defaultRequestTTL) {
        self.scope = scope
        self.pattern = pattern
        self.approvers = approvers
        self.approvalTTL = approvalTTL
        self.requestTTL = requestTTL
    }
}

/// Who decided, and what.
public struct ApprovalDecision: Sendable, Equatable {
    public var approved: Bool
    public var approver: String
    /// The groups the approver was known by when deciding (from its token, or asserted locally).
    public var approverGroups: [String]
    public var reason: String
    public var at: Date

    public init(approved: Bool, approver: String, approverGroups: [String], reason: String, at: Date) {
        (self.approved, self.approver, self.approverGroups, self.reason, self.at) = (approved, approver, approverGroups, reason, at)
    }
}

/// One approval request and everything that happened to it.
public struct ApprovalRecord: Sendable, Equatable {
    public let id: String
    public let key: ApprovalRequestKey
    public let requester: ApprovalRequester
    public let rule: ApprovalRule
    /// The status as last written; `status(at:)` also accounts for the clock.
    public internal(set) var storedStatus: ApprovalStatus
    public let requestedAt: Date
    public internal(set) var decision: ApprovalDecision?
    /// When it was released (or nil), and to which session.
    public internal(set) var consumedAt: Date?
    public internal(set) var consumedBy: String?
    /// When the request stopped being in force: pending → `requestedAt + requestTTL`,
    /// approved → `decision.at + approvalTTL`; final states keep the deadline they had.
    public internal(set) var expiresAt: Date

    /// Every field, for a store in another module (a database row read back). New requests
    /// come from `ApprovalTransitions.newRequest`, changes from the other transitions.
    public init(id: String, key: ApprovalRequestKey, requester: ApprovalRequester, rule: ApprovalRule, storedStatus: ApprovalStatus,
                requestedAt: Date, decision: ApprovalDecision?, consumedAt: Date?, consumedBy: String?, expiresAt: Date) {
        (self.id, self.key, self.requester, self.rule, self.storedStatus) = (id, key, requester, rule, storedStatus)
        (self.requestedAt, self.decision, self.consumedAt, self.consumedBy, self.expiresAt) = (requestedAt, decision, consumedAt, consumedBy, expiresAt)
    }

    /// The status at `now`: a pending or approved request past `expiresAt` is expired even
    /// before a writer has recorded it.
    public func status(at now: Date) -> ApprovalStatus {
        if !storedStatus.isFinal, now >= expiresAt { return .expired }
        return storedStatus
    }

    /// When the request reached its final state (nil while it is in force).
    public func finishedAt(now: Date) -> Date? {
        switch status(at: now) {
        case .pending, .approved: return nil
        case .consumed: return consumedAt
        case .denied: return decision?.at
        case .expired: return expiresAt
        }
    }
}
