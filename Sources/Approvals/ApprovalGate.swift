import Foundation

/// Something told when a request is created (a webhook, a chat bot). Must not block.
public protocol ApprovalNotifier: Sendable {
    func requested(_ record: ApprovalRecord)
}

/// Notifiers chosen by the request's scope (a scope's own `webhook:`), else the global one.
public struct ScopedNotifiers: ApprovalNotifier {
    public let byScope: [String: any ApprovalNotifier]
    public let global: (any ApprovalNotifier)?

    public init(byScope: [String: any ApprovalNotifier] = [:], global: (any ApprovalNotifier)? = nil) {
        self.byScope = byScope
        self.global = global
    }

    public func requested(_ record: ApprovalRecord) { (byScope[record.rule.scope] ?? global)?.requested(record) }
}

/// The one call the bastion makes when an exec matched a scope's `review:` pattern (after the
/// command passed the splitter and was rebuilt into the exact line that would be sent):
///
/// - no request in force for this exact key → a pending request is created, the notifier told,
///   and the agent answered `pending` at once (exit 75 and `ApprovalAnswer.message`);
/// - pending → the same answer again, same id (a resend while waiting asks nobody twice);
/// - approved → consumed atomically and released: run the command, once;
/// - denied, expired, already consumed, or lost a race to a concurrent resend → refused with
///   the refusal's own code (and `ApprovalAnswer` says `next: stop`).
///
/// A resend that differs in one byte of the command, in target, login or identity is another
/// key: it never releases the approved request; it is a request of its own.
///
/// The store audits every transition and every refused transition (a lost consume race); the
/// bastion audits its answer to the exec as it audits every decision.
public struct ApprovalGate: Sendable {
    public enum Admission: Sendable, Equatable {
        case release(ApprovalRecord)
        /// `created`: this call made the request (a person was notified).
        case pending(ApprovalRecord, created: Bool)
        case refused(ApprovalRefusal, ApprovalRecord)
    }

    public let store: any ApprovalStore
    public let notifier: (any ApprovalNotifier)?

    public init(store: any ApprovalStore, notifier: (any ApprovalNotifier)? = nil) {
        self.store = store
        self.notifier = notifier
    }

    public func admit(_ key: ApprovalRequestKey, requester: ApprovalRequester, rule: ApprovalRule, session: String?) throws -> Admission {
        let lookup = try store.request(key, requester: requester, rule: rule)
        let record = lookup.record
        if lookup.created { notifier?.requested(record) }
        let now = store.now()
        switch record.status(at: now) {
        case .pending:
            return .pending(record, created: lookup.created)
        case .approved:
            do { return .release(try store.consume(record.id, presenting: key, session: session)) } catch let refusal as ApprovalRefusal {
                return .refused(refusal, try store.get(record.id) ?? record)
            }
        case .denied, .expired, .consumed:
            return .refused(ApprovalTransitions.resendRefusal(record, now: now) ?? .stillPending(id: record.id), record)
        }
    }
}
