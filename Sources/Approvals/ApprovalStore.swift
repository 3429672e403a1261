import Audit
import Foundation

/// Where audit records of approval transitions go. The store never opens the audit log itself:
/// `gatehouse serve` passes its `AuditLog`, the CLI the state directory's, tests a collector.
/// A thrown error fails the operation that produced the events (after the state was written):
/// the caller must then not act on it, e.g. not release a consumed command. It is called
/// inside the store's atomic section (so audit order is transition order) and must not call
/// back into the store.
public typealias ApprovalAuditSink = @Sendable ([AuditEvent]) throws -> Void

/// What `request` found or made for a key.
public struct ApprovalLookup: Sendable, Equatable {
    public let record: ApprovalRecord
    /// True when this call created the request (notify a person); false when a request for the
    /// same key was already in force (a resend while pending, approved or recently finished).
    public let created: Bool

    public init(record: ApprovalRecord, created: Bool) {
        self.record = record
        self.created = created
    }
}

/// The state of approval requests, behind an interface small enough for a shared database to
/// implement later (PostgreSQL: one row per request, `SELECT … FOR UPDATE` for the transitions,
/// LISTEN/NOTIFY for `waitForChange`). The rules every implementation applies live in
/// `ApprovalTransitions`; an implementation adds storage, atomicity and audit emission.
///
/// Every transition is atomic: of two concurrent `consume` calls for one approval, exactly one
/// returns and the other throws `ApprovalRefusal.consumed`.
public protocol ApprovalStore: Sendable {
    /// The request in force for `key` (see `ApprovalTransitions.inForce`), or a new pending one.
    func request(_ key: ApprovalRequestKey, requester: ApprovalRequester, rule: ApprovalRule) throws -> ApprovalLookup
    func get(_ id: String) throws -> ApprovalRecord?
    /// Every request the store still holds (finished ones until they are pruned), oldest first.
    func list() throws -> [ApprovalRecord]
    /// Approves or denies a pending request; throws `ApprovalRefusal` for self-approval, an
    /// approver outside the rule's `approvers`, a request no longer pending, a denial without reason.
    func decide(_ id: String, approve: Bool, by approver: ApproverIdentity, reason: String) throws -> ApprovalRecord
    /// Releases an approved request once, for a resend whose key matches byte for byte.
    func consume(_ id: String, presenting key: ApprovalRequestKey, session: String?) throws -> ApprovalRecord
    /// Records (and audits) every request whose deadline has passed; returns them.
    @discardableResult func expireDue() throws -> [ApprovalRecord]
    /// The store's clock (injected in tests).
    func now() -> Date
    /// A value that changes whenever the store may have changed; pass it to `waitForChange`.
    func changeToken() -> UInt64
    /// Returns when the store may have changed since `token`, or after `seconds`, whichever
    /// is first. May return early; callers re-read.
    func waitForChange(since token: UInt64, upTo seconds: TimeInterval) async
}

extension ApprovalStore {
    /// Writes down (and audits) expiries every `interval` until the task is cancelled, so an
    /// approval nobody resends still gets its `approval.expired` record on time. Expiry is
    /// also recorded by every other transition; reads already report it.
    public func sweepExpired(every interval: Duration = .seconds(30)) async {
        while !Task.isCancelled {
            _ = try? expireDue()
            try? await Task.sleep(for: interval)
        }
    }
}
