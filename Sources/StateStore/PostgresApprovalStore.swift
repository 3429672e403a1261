import Approvals
import Audit
import Foundation
import Logging
import Synchronization

/// The approval store replicas share: one row per request in `approvals` (schema version 4),
/// the same rules as the file store (`ApprovalTransitions`), the same audit records in the
/// same order.
///
/// - Atomic across processes: every transition is one transaction under an advisory lock that
///   every store on the database takes, so of two `consume` calls racing on two replicas the
///   second sees the first one's `consumed` and is refused. One lock for the whole table, not
///   row locks: a first request for a key has no row to lock yet, and every transition first
///   writes down all due expiries, as the file store does. The load is people's decisions and
///   agents' resends.
/// - Audited before commit: the sink runs inside the transaction, so a failing audit rolls the
///   transition back (stricter than the file, which cannot take back a rename).
/// - Waiters on every replica wake within a notification's round trip: each transition that
///   changed rows sends `NOTIFY gatehouse_approvals` at commit; `start()` listens, and re-reads
///   `max(change)` every `pollInterval` in case a notification was lost.
///
/// Synchronous like the protocol, over a `BlockingConnection` of its own (calls from many
/// threads take turns on it).
public final class PostgresApprovalStore: ApprovalSteps {
    /// `pg_advisory_xact_lock` key serialising transitions ("GATEAPPR").
    public static let lockKey: Int64 = 0x4741_5445_4150_5052
    /// The channel a transition notifies.
    public static let channel = "gatehouse_approvals"

    public let connection: BlockingConnection
    let configuration: PostgresStoreConfiguration
    let audit: ApprovalAuditSink
    let metrics: ApprovalMetrics?
    let retention: TimeInterval
    let clock: @Sendable () -> Date
    public let pollInterval: Duration
    let logger: Logger
    let changes = ChangeSignal()
    /// The change poll's own connection, so a re-read never waits behind a transition.
    let pollConnection: BlockingConnection
    let watch = Mutex(Watch())
    let wake = DispatchSemaphore(value: 0)

    /// `configuration`: the `store:` section's database. `audit` receives every transition's
    /// records inside its transaction; `clock` is injected by tests (times are kept to the
    /// millisecond, as the file store keeps them). Connects on first use; call `start()` in a
    /// server so waiters see other replicas' decisions.
    public init(configuration: PostgresStoreConfiguration, audit: @escaping ApprovalAuditSink, metrics: ApprovalMetrics? = nil,
                retention: TimeInterval = FileApprovalStore.defaultRetention, pollInterval: Duration = .milliseconds(500),
                timeout: Duration = .seconds(5), logger: Logger = Logger(label: "gatehouse.store"),
                clock: @escaping @Sendable () -> Date = Date.init) throws(StateStoreError) {
        self.configuration = configuration
        connection = try BlockingConnection(store: configuration, timeout: timeout, logger: logger)
        pollConnection = try BlockingConnection(store: configuration, timeout: timeout, logger: logger)
        self.audit = audit
        self.metrics = metrics
        self.retention = retention
        self.pollInterval = pollInterval
        self.logger = logger
        self.clock = clock
    }

    public func now() -> Date { ApprovalTime.date(milliseconds: ApprovalTime.milliseconds(clock())) }

    // MARK: Reads (no lock: a row is replaced whole by one statement)

    public func get(_ id: String) throws -> ApprovalRecord? {
        try connection.run("approval get") { session in
            try session.query("SELECT record FROM approvals WHERE approval_id = \(id)").first.map(ApprovalRows.decode)
        }
    }

    public func list() throws -> [ApprovalRecord] {
        try connection.run("approval list") { session in
            try session.query("SELECT record FROM approvals ORDER BY position").map(ApprovalRows.decode)
        }
    }

    // MARK: Transitions

    public func request(_ key: ApprovalRequestKey, requester: ApprovalRequester, rule: ApprovalRule) throws -> ApprovalLookup {
        let lookup = try transaction("approval request") { step in
            // `inForce` looks only at the newest request with the key: that is the row read here.
            let newest = try step.session.query("SELECT record FROM approvals WHERE key_digest = \(key.digest) ORDER BY position DESC LIMIT 1")
                .first.map(ApprovalRows.decode)
            if let existing = ApprovalTransitions.inForce(newest.map { [$0] } ?? [], key: key, now: step.now) {
                return ApprovalLookup(record: existing, created: false)
            }
            let record = ApprovalTransitions.newRequest(id: ApprovalTransitions.newID(), key: key, requester: requester, rule: rule, now: step.now)
            try ApprovalRows.insert(record, step.session)
            step.changed = true
            step.events.append(ApprovalAuditEvents.requested(record))
            return ApprovalLookup(record: record, created: true)
        }
        if lookup.created { metrics?.requested() }
        return lookup
    }

    public var stepMetrics: ApprovalMetrics? { metrics }

    @discardableResult
    public func expireDue() throws -> [ApprovalRecord] {
        // `transaction` writes down every due expiry before its body runs.
        try transaction("approval expiry") { step in step.expired }
    }

    /// One step on request `id` by `actor`, audited either way (a refusal as `approval.<step>`,
    /// refused), exactly as the file store does it.
    public func applyStep(_ name: String, id: String, actor: String, audited: (ApprovalRecord) -> AuditEvent,
                          _ apply: (ApprovalRecord, Date) throws(ApprovalRefusal) -> ApprovalRecord) throws -> ApprovalRecord {
        try transaction("approval \(name)") { step in
            guard let record = try step.session.query("SELECT record FROM approvals WHERE approval_id = \(id)").first.map(ApprovalRows.decode) else {
                step.events.append(ApprovalAuditEvents.refused(name, id: id, actor: actor, .notFound(id: id), record: nil))
                throw ApprovalRefusal.notFound(id: id)
            }
            let changed: ApprovalRecord
            do throws(ApprovalRefusal) {
                changed = try apply(record, step.now)
            } catch {
                step.events.append(ApprovalAuditEvents.refused(name, id: id, actor: actor, error, record: record))
                step.refused = true
                throw error
            }
            try ApprovalRows.update(changed, step.session)
            step.changed = true
            step.events.append(audited(changed))
            return changed
        }
    }

    // MARK: Waiting

    public func changeToken() -> UInt64 { changes.generation }

    public func waitForChange(since token: UInt64, upTo seconds: TimeInterval) async {
        // Without the watcher only this instance's own changes signal: bound the wait so the
        // caller re-reads the database at the poll interval instead.
        let bound = watch.withLock { $0.running } ? seconds : min(seconds, pollInterval.seconds)
        await changes.wait(since: token, upTo: bound)
    }
}

extension Duration {
    var seconds: TimeInterval {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
