import CoreMetrics
import Foundation
import Recording

/// The bastion's own numbers, emitted through swift-metrics. The bastion knows no exporter: the
/// factory is whatever the process bootstrapped (`gatehouse serve` bootstraps Prometheus), or one
/// passed in, so several servers in one process (tests) can each count into their own registry.
///
/// | name | kind | labels |
/// | --- | --- | --- |
/// | `gatehouse_sessions_started_total` | counter | |
/// | `gatehouse_sessions_ended_total` | counter | `outcome`: `exit_zero`, `exit_nonzero`, `signal`, `no_exit_status` |
/// | `gatehouse_sessions_live` | gauge | |
/// | `gatehouse_session_seconds` | histogram | |
/// | `gatehouse_bytes_relayed_total` | counter | `stream`: `in` (agent to target), `out`, `err` |
/// | `gatehouse_bastion_refusals_total` | counter | `action` (the audit action), `code` (the refusal's code) |
/// | `gatehouse_login_seconds` | histogram | `outcome`: how the unauthenticated slot ended (`authenticated`, `authentication_failed`, …) |
/// | `gatehouse_recorder_batches_queued` | gauge | |
/// | `gatehouse_masks_total` | counter | `rule`: the masking rule (built-in or the configuration's custom rules) |
public final class BastionMetrics: Sendable {
    public static let sessionSeconds = "gatehouse_session_seconds"
    public static let loginSeconds = "gatehouse_login_seconds"

    /// Histogram bounds the exporter should use for the bastion's timers (Prometheus fixes a
    /// histogram's buckets when it is created; swift-metrics leaves them to the exporter).
    public static let timerBuckets: [String: [Duration]] = [
        sessionSeconds: [1, 5, 15, 60, 300, 900, 3600].map { .seconds($0) },
        loginSeconds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120].map { .milliseconds(Int64($0 * 1000)) },
    ]

    /// How a session ended, as the `outcome` label of `gatehouse_sessions_ended_total`.
    public enum SessionEnd: String, CaseIterable, Sendable {
        case exitZero = "exit_zero"
        case exitNonzero = "exit_nonzero"
        case signal
        /// Ended without an exit status: a limit, a recording failure, the agent or target gone.
        case noExitStatus = "no_exit_status"

        init(_ outcome: SessionOutcome) {
            if outcome.exitSignal != nil { self = .signal }
            else if let status = outcome.exitStatus { self = status == 0 ? .exitZero : .exitNonzero }
            else { self = .noExitStatus }
        }
    }

    private let factory: any MetricsFactory
    private let started: Counter
    private let ended: [SessionEnd: Counter]
    private let live: Meter
    private let duration: CoreMetrics.Timer
    private let relayed: (stdin: Counter, stdout: Counter, stderr: Counter)
    private let recorderQueue: Meter

    /// `factory`: where the numbers go; by default the process's bootstrapped one.
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        started = Counter(label: "gatehouse_sessions_started_total", factory: factory)
        ended = Dictionary(uniqueKeysWithValues: SessionEnd.allCases.map {
            ($0, Counter(label: "gatehouse_sessions_ended_total", dimensions: [("outcome", $0.rawValue)], factory: factory))
        })
        live = Meter(label: "gatehouse_sessions_live", factory: factory)
        duration = CoreMetrics.Timer(label: Self.sessionSeconds, factory: factory)
        relayed = (Counter(label: "gatehouse_bytes_relayed_total", dimensions: [("stream", "in")], factory: factory),
                   Counter(label: "gatehouse_bytes_relayed_total", dimensions: [("stream", "out")], factory: factory),
                   Counter(label: "gatehouse_bytes_relayed_total", dimensions: [("stream", "err")], factory: factory))
        recorderQueue = Meter(label: "gatehouse_recorder_batches_queued", factory: factory)
        live.set(0)
        recorderQueue.set(0)
    }

    func sessionStarted() {
        started.increment()
        live.increment()
    }

    func sessionEnded(_ outcome: SessionOutcome) {
        live.decrement()
        ended[SessionEnd(outcome)]?.increment()
        duration.recordSeconds(max(0, outcome.duration))
        relayed.stdin.increment(by: outcome.bytesIn)
        relayed.stdout.increment(by: outcome.bytesOut)
        relayed.stderr.increment(by: outcome.bytesErr)
    }

    /// One refusal, as audited: `action` is the audit action (`ssh.login`, `session.request`, …),
    /// `code` the refusal's machine code. Both come from a fixed vocabulary in the source, so the
    /// label sets stay bounded.
    func refused(action: String, code: String) {
        Counter(label: "gatehouse_bastion_refusals_total", dimensions: [("action", action), ("code", code)], factory: factory).increment()
    }

    /// One span of a session's output masked by `rule` (a name from the configuration's rule set,
    /// so the label set is bounded by it).
    func masked(rule: String) {
        Counter(label: "gatehouse_masks_total", dimensions: [("rule", rule)], factory: factory).increment()
    }

    /// The time from a connection taking its unauthenticated slot to giving it back.
    func loginFinished(outcome: String, after elapsed: Duration) {
        CoreMetrics.Timer(label: Self.loginSeconds, dimensions: [("outcome", outcome)], factory: factory)
            .recordNanoseconds(Int64(elapsed.components.seconds) * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    /// Samples the gauges that are read rather than pushed (the recorder's queue across every
    /// session). Call before exporting, e.g. on each scrape.
    public func sample() {
        recorderQueue.set(RecordingQueueDepth.batches)
    }
}

/// Counts sessions into `BastionMetrics`, then hands them on to the observer the server was given.
struct MetricsSessionObserver: SessionObserver {
    let metrics: BastionMetrics
    let next: (any SessionObserver)?

    func sessionStarted(_ summary: SessionSummary) {
        metrics.sessionStarted()
        next?.sessionStarted(summary)
    }

    func sessionEnded(_ summary: SessionSummary, outcome: SessionOutcome) {
        metrics.sessionEnded(outcome)
        next?.sessionEnded(summary, outcome: outcome)
    }
}
