import Audit
import Foundation
import Synchronization

/// The embedded approval store: one JSON file in `STATE/approvals/` (see `ApprovalStateFile`).
///
/// - Durable: every transition is on disk (fsync'd, renamed into place) before the call
///   returns, so an approval granted before a restart can be consumed after it and a pending
///   request stays pending.
/// - Safe from many threads: a `Mutex` serializes this instance's read-modify-writes.
/// - Safe across processes (`gatehouse serve` and `gatehouse approvals approve`) and across
///   instances on one directory: each read-modify-write holds `flock` on `approvals.lock` and
///   re-reads the file when another writer replaced it; so of two racing `consume` calls,
///   wherever they run, the second sees the first one's `consumed` and is refused.
/// - Bounded: requests that finished more than `retention` ago are dropped from the file (the
///   audit log keeps their history).
///
/// The expected load is people's decisions and agents' resends, not thousands per second: a
/// transition rewrites the whole file, which stays small because finished requests are pruned.
public final class FileApprovalStore: ApprovalSteps {
    /// How often a waiter looks at the file for changes made by another process.
    public static let pollInterval: TimeInterval = 0.2
    public static let defaultRetention: TimeInterval = 7 * 24 * 3600

    public let directory: String
    private let file: ApprovalStateFile
    private let lockDescriptor: Int32
    private let audit: ApprovalAuditSink
    private let metrics: ApprovalMetrics?
    private let clock: @Sendable () -> Date
    private let retention: TimeInterval
    private let changes = ChangeSignal()

    /// The last state read or written by this instance, with the file version it came from.
    private struct Snapshot {
        var records: [ApprovalRecord] = []
        var version = ApprovalStateFile.Version.absent
    }
    private let snapshot = Mutex(Snapshot())

    /// `directory`: `STATE/approvals`. `audit` receives every transition's record; `clock` is
    /// injected by tests (times are kept to the millisecond, as the file stores them).
    public init(directory: String, audit: @escaping ApprovalAuditSink, metrics: ApprovalMetrics? = nil,
                retention: TimeInterval = FileApprovalStore.defaultRetention, clock: @escaping @Sendable () -> Date = Date.init) throws {
        self.directory = directory
        file = try ApprovalStateFile(directory: directory)
        lockDescriptor = try file.openLock()
        self.audit = audit
        self.metrics = metrics
        self.retention = retention
        self.clock = clock
        try ApprovalStateFile.withExclusiveLock(lockDescriptor) { [file] in file.removeOrphanedTemporaries() }
        _ = try records()
    }

    /// The store of a state directory: `STATE/approvals`.
    public convenience init(stateDirectory: String, audit: @escaping ApprovalAuditSink, metrics: ApprovalMetrics? = nil,
                            clock: @escaping @Sendable () -> Date = Date.init) throws {
        try self.init(directory: stateDirectory + "/approvals", audit: audit, metrics: metrics, clock: clock)
    }

    deinit { close(lockDescriptor) }

    public func now() -> Date { ApprovalTime.date(milliseconds: ApprovalTime.milliseconds(clock())) }

    // MARK: Reads

    public func get(_ id: String) throws -> ApprovalRecord? { try records().first { $0.id == id } }

    public func list() throws -> [ApprovalRecord] { try records() }

    /// The current records, read again only when the file changed since this instance last saw it.
    private func records() throws -> [ApprovalRecord] {
        try snapshot.withLock { snapshot in try refresh(&snapshot) }
    }

    private func refresh(_ snapshot: inout Snapshot) throws -> [ApprovalRecord] {
        if file.currentVersion() == snapshot.version { return snapshot.records }
        let (bytes, version) = try file.read()
        do { snapshot.records = try bytes.map(ApprovalRecordCoding.decode) ?? [] } catch {
            throw ApprovalStoreError("\(file.statePath) is damaged: \(error)")
        }
        snapshot.version = version
        return snapshot.records
    }

    // MARK: Transitions

    public func request(_ key: ApprovalRequestKey, requester: ApprovalRequester, rule: ApprovalRule) throws -> ApprovalLookup {
        try transaction { records, events, now in
            if let existing = ApprovalTransitions.inForce(records, key: key, now: now) { return ApprovalLookup(record: existing, created: false) }
            let record = ApprovalTransitions.newRequest(id: ApprovalTransitions.newID(), key: key, requester: requester, rule: rule, now: now)
            records.append(record)
            events.append(ApprovalAuditEvents.requested(record))
            metrics?.requested()
            return ApprovalLookup(record: record, created: true)
        }
    }

    public var stepMetrics: ApprovalMetrics? { metrics }

    /// One step on request `id` by `actor`: `apply` makes the new record or refuses; either
    /// way the outcome is audited (a refusal as `approval.<step>`, refused).
    public func applyStep(_ step: String, id: String, actor: String, audited: (ApprovalRecord) -> AuditEvent,
                          _ apply: (ApprovalRecord, Date) throws(ApprovalRefusal) -> ApprovalRecord) throws -> ApprovalRecord {
        try transaction { records, events, now in
            guard let index = records.firstIndex(where: { $0.id == id }) else {
                events.append(ApprovalAuditEvents.refused(step, id: id, actor: actor, .notFound(id: id), record: nil))
                throw ApprovalRefusal.notFound(id: id)
            }
            do throws(ApprovalRefusal) {
                records[index] = try apply(records[index], now)
            } catch {
                events.append(ApprovalAuditEvents.refused(step, id: id, actor: actor, error, record: records[index]))
                metrics?.refused()
                throw error
            }
            events.append(audited(records[index]))
            return records[index]
        }
    }

    @discardableResult
    public func expireDue() throws -> [ApprovalRecord] {
        // `transaction` writes down every expiry that is due before running its body; the body
        // only picks out the requests those expiries were recorded for.
        try transaction { records, events, _ in
            let expired = Set(events.filter { $0.action == "approval.expired" }.map(\.object))
            return records.filter { expired.contains($0.id) }
        }
    }

    // MARK: Waiting

    public func changeToken() -> UInt64 { changes.generation }

    public func waitForChange(since token: UInt64, upTo seconds: TimeInterval) async {
        await changes.wait(since: token, upTo: min(seconds, Self.pollInterval))
    }

    // MARK: The atomic section

    /// Runs `body` on the current records under the mutex and the file lock, after writing down
    /// every expiry that is due, then persists the records if they changed, audits the events
    /// (those of a refusal too: `body` appends them before throwing) and wakes the waiters.
    private func transaction<T: Sendable>(_ body: (inout [ApprovalRecord], inout [AuditEvent], Date) throws -> T) throws -> T {
        try snapshot.withLock { snapshot in
            try ApprovalStateFile.withExclusiveLock(lockDescriptor) {
                let now = self.now()
                let before = try refresh(&snapshot)
                var records = before
                var events: [AuditEvent] = []
                for index in records.indices {
                    if let expired = ApprovalTransitions.expired(records[index], now: now) {
                        records[index] = expired
                        events.append(ApprovalAuditEvents.expired(expired))
                        metrics?.expired()
                    }
                }
                let result: Result<T, any Error>
                do { result = .success(try body(&records, &events, now)) } catch { result = .failure(error) }
                records.removeAll { record in record.finishedAt(now: now).map { now.timeIntervalSince($0) > retention } ?? false }
                if records != before {
                    snapshot.version = try file.replace(with: ApprovalRecordCoding.encode(records))
                    snapshot.records = records
                }
                if !events.isEmpty { try audit(events) }
                if records != before { changes.signal() }
                return try result.get()
            }
        }
    }
}
