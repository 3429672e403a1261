import Approvals
import Audit
import CertificateAuthority
import Foundation
import Logging
import Policy
import SSHCertificates
import Synchronization

/// What every connection shares: the live configuration (replaced whole on SIGHUP), the CA
/// store, the audit log, the signature cache and the bound on unauthenticated connections.
public final class ServerContext: Sendable {
    private let current: Mutex<BastionConfiguration>
    public let authorities: LiveAuthorities
    public let audit: any AuditSink
    /// Why new logins are refused right now (the shared store is down), or nil.
    public let loginGate: @Sendable () -> String?
    public let logger: Logger
    public let signatureCache = VerifiedSignatureCache()
    public let admission: AdmissionControl
    public let connections = ConnectionCounter()
    /// Sessions go to `metrics` first, then to the observer the server was given.
    public let observer: (any SessionObserver)?
    public let metrics: BastionMetrics
    /// Durable session counts of certificates with `max-sessions@gatehouse`.
    public let sessionBudgets: any SessionBudgetStore
    /// Requests for a person's approval (`STATE/approvals`), and the gate a review command passes.
    public let approvalStore: any ApprovalStore
    private let gate: Mutex<ApprovalGate>
    private let approvalAudit: ApprovalAuditSink

    public init(configuration: BastionConfiguration, logger: Logger, observer: (any SessionObserver)? = nil,
                metrics: BastionMetrics = BastionMetrics(), state: ServerState? = nil) throws {
        let state = try state ?? ServerState.local(stateDirectory: configuration.stateDirectory)
        current = Mutex(configuration)
        audit = state.audit
        loginGate = state.loginGate
        authorities = try LiveAuthorities(root: configuration.stateDirectory, audit: state.audit, serials: state.serials)
        self.logger = logger
        admission = AdmissionControl(limits: configuration.limits, metrics: metrics)
        self.observer = MetricsSessionObserver(metrics: metrics, next: observer)
        self.metrics = metrics
        sessionBudgets = state.sessionBudgets
        // Every transition is in the audit chain before the store acts on it: a failed write
        // fails the transition (nothing is released that the log does not show).
        let auditLog = audit
        let sink: ApprovalAuditSink = { events in
            for event in events { _ = try auditLog.appendSharingSync(event) }
        }
        let store: any ApprovalStore = try state.approvals?(sink)
            ?? FileApprovalStore(stateDirectory: configuration.stateDirectory, audit: sink, metrics: ApprovalMetrics())
        approvalStore = store
        approvalAudit = sink
        gate = Mutex(ApprovalGate(store: store, notifier: Self.notifiers(configuration, audit: sink)))
    }

    /// Requests go to the scope's own webhook, else the global one. Rebuilt on reload.
    static func notifiers(_ configuration: BastionConfiguration, audit: @escaping ApprovalAuditSink) -> ScopedNotifiers {
        // Never an empty key: a secret file that vanished since the configuration was checked
        // means no notifications (the requests still wait in the store), not unsigned ones.
        func notifier(_ url: String, _ secretFile: String) -> (any ApprovalNotifier)? {
            guard let secret = FileManager.default.contents(atPath: secretFile), secret.count >= 16 else { return nil }
            return WebhookNotifier(url: url, secret: Array(secret), audit: audit)
        }
        var byScope: [String: any ApprovalNotifier] = [:]
        for scope in configuration.policy.scopes.values {
            if let hook = scope.approvalWebhook, let n = notifier(hook.url, hook.secretFile) { byScope[scope.name] = n }
        }
        let global = configuration.approvals.webhookURL.flatMap { url in configuration.approvals.webhookSecretFile.flatMap { notifier(url, $0) } }
        return ScopedNotifiers(byScope: byScope, global: global)
    }

    /// The gate a review command passes, with the notifiers of the live configuration.
    public var approvals: ApprovalGate { gate.withLock { $0 } }

    public var configuration: BastionConfiguration { current.withLock { $0 } }

    /// Swaps in a new configuration. Live sessions keep the snapshot they started with; the
    /// listen addresses and host keys are fixed for the life of the process.
    public func replace(_ configuration: BastionConfiguration) {
        current.withLock { $0 = configuration }
        admission.setLimits(configuration.limits)
        gate.withLock { $0 = ApprovalGate(store: approvalStore, notifier: Self.notifiers(configuration, audit: approvalAudit)) }
    }

    /// Appends to the audit log. A failure to audit is logged loudly; the caller decides whether
    /// it must also end the session.
    @discardableResult
    public func record(_ event: AuditEvent) -> Bool {
        // Admission's summaries carry counts, not one refusal: AdmissionControl counts those itself.
        if event.outcome == .refused, event.action != AdmissionControl.summaryAction {
            metrics.refused(action: event.action, code: event.details["code"] ?? "unspecified")
        }
        do {
            // Connections audit concurrently: their records share writes and fsyncs.
            _ = try audit.appendSharingSync(event)
            return true
        } catch {
            logger.critical("audit log write failed", metadata: ["error": "\(error)", "action": "\(event.action)"])
            return false
        }
    }
}

/// Live connection and session counts, for logs and metrics.
public final class ConnectionCounter: Sendable {
    private let state = Mutex((connections: 0, sessions: 0, targetConnections: 0))
    func connectionOpened() { state.withLock { $0.connections += 1 } }
    func connectionClosed() { state.withLock { $0.connections -= 1 } }
    func sessionStarted() { state.withLock { $0.sessions += 1 } }
    func sessionEnded() { state.withLock { $0.sessions -= 1 } }
    func targetConnected() { state.withLock { $0.targetConnections += 1 } }
    /// SSH connections made to targets since start: one per agent connection that used one.
    public var targetConnectionsMade: Int { state.withLock { $0.targetConnections } }
    public var connections: Int { state.withLock { $0.connections } }
    public var sessions: Int { state.withLock { $0.sessions } }
}

/// A hook for other components (the recorder, metrics) to follow sessions without the bastion
/// knowing them.
public protocol SessionObserver: Sendable {
    func sessionStarted(_ summary: SessionSummary)
    func sessionEnded(_ summary: SessionSummary, outcome: SessionOutcome)
}

/// Who is connected where, as the audit log and observers see it.
public struct SessionSummary: Sendable {
    public var sessionID: String
    public var peer: String
    public var target: String
    public var login: String
    public var keyID: String
    public var serial: UInt64
    public var principals: [String]
    public var scopes: [String]
    public var context: String?
    public var request: String
    public var terminal: String?
    public var startedAt: Date
}

public struct SessionOutcome: Sendable {
    public var exitStatus: Int32?
    public var exitSignal: String?
    public var reason: String
    public var bytesIn: UInt64
    public var bytesOut: UInt64
    public var bytesErr: UInt64
    public var duration: TimeInterval
}
