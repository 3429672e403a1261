import Approvals
import Audit
import CertificateAuthority
import Foundation

/// What the server keeps beyond its own memory, assembled by its caller: the state directory's
/// files on a single machine (`local`), or the store replicas share (the CLI builds that one
/// from the configuration's `store:` section; the bastion does not know PostgreSQL).
public struct ServerState: Sendable {
    /// The audit chain every connection appends to.
    public var audit: any AuditSink
    /// Durable counts of `max-sessions@gatehouse`.
    public var sessionBudgets: any SessionBudgetStore
    /// Serials of the certificates the bastion signs (target certificates).
    public var serials: SerialSource
    /// Why new logins are refused right now, or nil. Replicas refuse logins while the shared
    /// store is unreachable (nothing could be audited or counted there); sessions already
    /// open go on.
    public var loginGate: @Sendable () -> String?
    /// Opens the approval requests' store, auditing through the sink it is given (nil: the state
    /// directory's `approvals/`).
    public var approvals: (@Sendable (@escaping ApprovalAuditSink) throws -> any ApprovalStore)?

    public init(audit: any AuditSink, sessionBudgets: any SessionBudgetStore, serials: SerialSource = .random,
                loginGate: @escaping @Sendable () -> String? = { nil },
                approvals: (@Sendable (@escaping ApprovalAuditSink) throws -> any ApprovalStore)? = nil) {
        self.audit = audit
        self.sessionBudgets = sessionBudgets
        self.serials = serials
        self.loginGate = loginGate
        self.approvals = approvals
    }

    /// The state directory's files: `audit.log`, `session-budgets/`, random serials.
    public static func local(stateDirectory: String) throws -> ServerState {
        ServerState(audit: try AuditLog(path: "\(stateDirectory)/audit.log"),
                    sessionBudgets: SessionBudgetLedger(directory: "\(stateDirectory)/session-budgets"))
    }
}
