import Audit
import Foundation
import SSHCertificates
import Synchronization

/// Who may hold one of the unauthenticated slots, decided at accept, before libssh sees the
/// connection. A flood from some sources must never lock the others out:
///
/// - a source (an address; an IPv6 /64) holds at most `max_unauthenticated_per_source` slots;
///   more of its connections wait in the queue;
/// - when every slot is taken, a connection from a source holding fewer slots than the heaviest
///   one takes the slot of that source's oldest connection (which is shut down), so a flood only
///   ever displaces itself; otherwise it waits in the queue;
/// - the queue is bounded (`max_queued`) and a wait by 120 s (or twice the login grace); past either,
///   a clean refusal (one line of text, then close);
/// - sources that fail (garbage, failed key exchange, the grace run out) earn penalty seconds
///   (OpenSSH 9.8's PerSourcePenalties); a standing penalty of `min` or more refuses the source
///   at accept, and past `early_drop_start` slots a penalised source is dropped at random, more
///   often as the slots fill (sshd's MaxStartups start:rate:full).
///
/// Refusals and failures before login carry no identity, so they are audited as counted
/// summaries, one record per source per interval, not one fsynced record per connection: a
/// flood cannot grow the audit log faster than the number of sources.
public final class AdmissionControl: Sendable {
    /// How a connection that held a slot ended, as far as admission cares.
    enum Outcome: String {
        case authenticated
        case handshakeFailed = "handshake_failed"
        case graceExceeded = "login_grace_exceeded"
        case authenticationFailed = "authentication_failed"
        case disconnected = "closed_before_login"
    }

    enum Decision {
        /// Start the connection now with this ticket.
        case admit(AdmissionTicket)
        /// Held; `start` runs later when a slot frees, or the connection is refused.
        case queued
        /// Close it now, after writing `reason` as a line of text.
        case refuse(reason: String)
    }

    typealias Launch = @Sendable (AdmissionTicket) -> Void

    fileprivate struct Waiting {
        let id: UInt64
        let fd: Int32
        let source: SourceKey
        let address: String
        let arrived: ContinuousClock.Instant
        let launch: Launch
    }

    fileprivate struct Source {
        /// Connections holding a slot, by admission id (ascending: oldest first), with their socket.
        var holding: [UInt64: Int32] = [:]
        var penaltyUntil: ContinuousClock.Instant?
        var waiting = 0
    }

    fileprivate struct State {
        var limits: Limits
        var sources: [SourceKey: Source] = [:]
        var queue: [Waiting] = []
        var holding = 0
        var nextID: UInt64 = 1
        /// Connections shut down to make room: their slot no longer counts.
        var evicted: Set<UInt64> = []
        var counts: [SourceKey: [String: Int]] = [:]
        var lastFlush = ContinuousClock.now
        /// Refusals at accept are counted here, one by one (the audit log gets summaries).
        let metrics: BastionMetrics
    }

    /// The audit action of the counted summaries.
    static let summaryAction = "ssh.admission"

    private let state: Mutex<State>
    private let metrics: BastionMetrics

    init(limits: Limits, metrics: BastionMetrics = BastionMetrics()) {
        state = Mutex(State(limits: limits, metrics: metrics))
        self.metrics = metrics
    }

    func setLimits(_ limits: Limits) { state.withLock { $0.limits = limits } }

    /// How long a connection may wait in the queue: two minutes (sshd's LoginGraceTime), or twice
    /// the login grace if longer. A burst waits its turn; a client that gave up is refused.
    static func queueWaitSeconds(_ limits: Limits) -> Int { max(120, 2 * limits.loginGraceSeconds) }

    /// Unauthenticated connections holding a slot now.
    public var inFlight: Int { state.withLock { $0.holding } }
    /// Accepted connections waiting for a slot.
    public var queued: Int { state.withLock { $0.queue.count } }

    // MARK: Arrival

    func arrive(fd: Int32, address: String, launch: @escaping Launch) -> Decision {
        let source = SourceKey(address: address)
        let now = ContinuousClock.now
        return state.withLock { s -> Decision in
            let limits = s.limits
            var entry = s.sources[source] ?? Source()
            defer { s.sources[source] = entry }
            if let until = entry.penaltyUntil, until - now >= .seconds(limits.penalties.minimum) {
                s.count(source, "refused_penalised")
                return .refuse(reason: "this address is refused for a while after repeated failed connections")
            }
            let penalised = entry.penaltyUntil.map { $0 > now } ?? false
            if penalised, s.holding >= limits.earlyDropStart {
                let span = max(1, limits.maxUnauthenticated - limits.earlyDropStart)
                let chance = 0.3 + 0.7 * Double(s.holding - limits.earlyDropStart) / Double(span)
                if Double.random(in: 0..<1) < chance {
                    s.count(source, "refused_early_drop")
                    return .refuse(reason: "too many connections are logging in; try again shortly")
                }
            }
            if entry.holding.count < limits.maxUnauthenticatedPerSource {
                if s.holding < limits.maxUnauthenticated || s.evictHeaviest(than: entry.holding.count, except: source) {
                    return .admit(s.admit(source: source, fd: fd, address: address, entry: &entry, control: self))
                }
            }
            guard s.queue.count < limits.maxQueued else {
                s.count(source, "refused_queue_full")
                return .refuse(reason: "too many connections are waiting to log in; try again shortly")
            }
            s.queue.append(Waiting(id: s.take(), fd: fd, source: source, address: address, arrived: now, launch: launch))
            entry.waiting += 1
            return .queued
        }
    }

    // MARK: Departure

    func loginFinished(_ outcome: Outcome, since arrived: ContinuousClock.Instant) {
        metrics.loginFinished(outcome: outcome.rawValue, after: ContinuousClock.now - arrived)
    }

    /// A connection gave its slot back: logged in, or ended without. Starts whoever waited.
    func release(_ ticket: AdmissionTicket, outcome: Outcome) {
        let now = ContinuousClock.now
        let launches = state.withLock { s -> [(Waiting, AdmissionTicket)] in
            if var entry = s.sources[ticket.source], entry.holding.removeValue(forKey: ticket.id) != nil {
                if s.evicted.remove(ticket.id) == nil { s.holding -= 1 }
                if outcome != .authenticated {
                    s.count(ticket.source, outcome.rawValue)
                    entry.penalise(outcome, address: ticket.address, limits: s.limits, now: now)
                }
                s.sources[ticket.source] = entry
            }
            return s.launchWaiting(control: self, now: now)
        }
        for (waiting, ticket) in launches { waiting.launch(ticket) }
    }

    /// Refuses connections that waited past the login grace, forgets idle sources, and returns
    /// the counted summaries due (every `interval`). Called about once a second.
    func maintain(interval: Duration = .seconds(10)) -> [AuditEvent] {
        let now = ContinuousClock.now
        var expired: [Int32] = []
        let (launches, events) = state.withLock { s -> ([(Waiting, AdmissionTicket)], [AuditEvent]) in
            let grace = Duration.seconds(AdmissionControl.queueWaitSeconds(s.limits))
            let (stale, fresh) = (s.queue.filter { now - $0.arrived >= grace }, s.queue.filter { now - $0.arrived < grace })
            s.queue = fresh
            for waiting in stale {
                expired.append(waiting.fd)
                s.sources[waiting.source]?.waiting -= 1
                s.count(waiting.source, "refused_queue_timeout")
            }
            let launches = s.launchWaiting(control: self, now: now)
            s.sources = s.sources.filter { _, entry in !entry.holding.isEmpty || entry.waiting > 0 || (entry.penaltyUntil.map { $0 > now } ?? false) }
            var events: [AuditEvent] = []
            if now - s.lastFlush >= interval {
                events = s.summaries(interval: now - s.lastFlush)
                s.lastFlush = now
            }
            return (launches, events)
        }
        for fd in expired { Self.refuse(fd: fd, reason: "waited too long for a login slot; try again shortly") }
        for (waiting, ticket) in launches { waiting.launch(ticket) }
        return events
    }

    /// Every summary still counted (at shutdown).
    func flush() -> [AuditEvent] {
        state.withLock { s in
            defer { s.lastFlush = .now }
            return s.summaries(interval: .now - s.lastFlush)
        }
    }

    /// Writes the reason as one line (RFC 4253 lets a server send lines before its version) and closes.
    static func refuse(fd: Int32, reason: String) {
        let line = Array("gatehouse: \(reason)\r\n".utf8)
        _ = line.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
        close(fd)
    }
}

extension AdmissionControl.State {
    fileprivate mutating func take() -> UInt64 {
        defer { nextID += 1 }
        return nextID
    }

    fileprivate mutating func count(_ source: SourceKey, _ reason: String) {
        counts[source, default: [:]][reason, default: 0] += 1
        if reason.hasPrefix("refused_") { metrics.refused(action: AdmissionControl.summaryAction, code: reason) }
    }

    fileprivate mutating func admit(source: SourceKey, fd: Int32, address: String, entry: inout AdmissionControl.Source,
                                    control: AdmissionControl, arrived: ContinuousClock.Instant = .now) -> AdmissionTicket {
        let id = take()
        entry.holding[id] = fd
        holding += 1
        return AdmissionTicket(id: id, source: source, address: address, control: control, arrived: arrived)
    }

    /// Shuts down the oldest connection of the source holding the most slots, if it holds more
    /// than `count + 1` (the newcomer's source after admission): a flood displaces only itself.
    fileprivate mutating func evictHeaviest(than count: Int, except source: SourceKey) -> Bool {
        guard let (heavy, entry) = sources.filter({ $0.key != source }).max(by: { $0.value.live(evicted) < $1.value.live(evicted) }),
              entry.live(evicted) > count + 1,
              let (id, fd) = entry.holding.filter({ !evicted.contains($0.key) }).min(by: { $0.key < $1.key }) else { return false }
        evicted.insert(id)
        holding -= 1
        _ = shutdown(fd, Int32(SHUT_RDWR))
        self.count(heavy, "evicted_for_other_source")
        return true
    }

    /// Starts waiting connections, oldest first, while slots are free and their source may hold more.
    fileprivate mutating func launchWaiting(control: AdmissionControl, now: ContinuousClock.Instant) -> [(AdmissionControl.Waiting, AdmissionTicket)] {
        var launches: [(AdmissionControl.Waiting, AdmissionTicket)] = []
        var index = 0
        while holding < limits.maxUnauthenticated, index < queue.count {
            let waiting = queue[index]
            var entry = sources[waiting.source] ?? AdmissionControl.Source()
            guard entry.holding.count < limits.maxUnauthenticatedPerSource else {
                index += 1
                continue
            }
            queue.remove(at: index)
            entry.waiting -= 1
            let ticket = admit(source: waiting.source, fd: waiting.fd, address: waiting.address, entry: &entry, control: control, arrived: waiting.arrived)
            sources[waiting.source] = entry
            launches.append((waiting, ticket))
        }
        return launches
    }

    fileprivate mutating func summaries(interval: Duration) -> [AuditEvent] {
        defer { counts.removeAll() }
        return counts.sorted { $0.key.text < $1.key.text }.map { source, reasons in
            var details = reasons.mapValues(String.init)
            details["interval_ms"] = String(interval.milliseconds)
            details["source"] = source.text
            return AuditEvent(actor: "peer:\(source.text)", action: AdmissionControl.summaryAction, object: "connections from \(source.text)", outcome: .refused,
                              details: details)
        }
    }
}

extension AdmissionControl.Source {
    fileprivate func live(_ evicted: Set<UInt64>) -> Int { holding.keys.filter { !evicted.contains($0) }.count }

    fileprivate mutating func penalise(_ outcome: AdmissionControl.Outcome, address: String, limits: Limits, now: ContinuousClock.Instant) {
        let p = limits.penalties
        let seconds: Int
        switch outcome {
        case .authenticated: return
        case .handshakeFailed: seconds = p.handshakeFailed
        case .graceExceeded: seconds = p.graceExceeded
        case .authenticationFailed: seconds = p.authenticationFailed
        case .disconnected: seconds = p.disconnected
        }
        guard seconds > 0, !p.exempt.contains(where: { $0.contains(address) }) else { return }
        let base = max(now, penaltyUntil ?? now)
        penaltyUntil = min(base + .seconds(seconds), now + .seconds(p.maximum))
    }
}

/// One admitted connection's claim on an unauthenticated slot. Given back once, whichever comes
/// first: login (`authenticated`) or the connection's end before it (`finish`).
public final class AdmissionTicket: Sendable {
    let id: UInt64
    let source: SourceKey
    let address: String
    private let control: AdmissionControl
    private let returned = Atomic<Bool>(false)
    /// When the connection was accepted (before any wait in the queue): login latency runs from here.
    let arrived: ContinuousClock.Instant

    init(id: UInt64, source: SourceKey, address: String, control: AdmissionControl, arrived: ContinuousClock.Instant = .now) {
        self.id = id
        self.source = source
        self.address = address
        self.control = control
        self.arrived = arrived
    }

    func authenticated() { give(.authenticated) }

    func finish(_ outcome: AdmissionControl.Outcome, detail: String) { give(outcome) }

    private func give(_ outcome: AdmissionControl.Outcome) {
        guard !returned.exchange(true, ordering: .acquiringAndReleasing) else { return }
        control.loginFinished(outcome, since: arrived)
        control.release(self, outcome: outcome)
    }
}
