import CoreMetrics
import Foundation

/// The approvals' numbers, through swift-metrics (the exporter is whatever the process
/// bootstrapped, or a factory passed in, as `IssuanceMetrics` does).
///
/// | name | kind | labels |
/// | --- | --- | --- |
/// | `gatehouse_approvals_total` | counter | `outcome`: requested, approved, denied, expired, consumed, refused |
/// | `gatehouse_approval_decision_seconds` | timer | `outcome`: approved, denied — time from request to decision |
public final class ApprovalMetrics: Sendable {
    public static let decisionSeconds = "gatehouse_approval_decision_seconds"
    public static let outcomes = ["requested", "approved", "denied", "expired", "consumed", "refused"]

    /// Histogram bounds for the decision timer: people take seconds to hours.
    public static let timerBuckets: [String: [Duration]] = [
        decisionSeconds: [5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].map { Duration.seconds($0) },
    ]

    private let counters: [String: Counter]
    private let approvedTimer: CoreMetrics.Timer
    private let deniedTimer: CoreMetrics.Timer

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        counters = Dictionary(uniqueKeysWithValues: Self.outcomes.map {
            ($0, Counter(label: "gatehouse_approvals_total", dimensions: [("outcome", $0)], factory: factory))
        })
        approvedTimer = CoreMetrics.Timer(label: Self.decisionSeconds, dimensions: [("outcome", "approved")], factory: factory)
        deniedTimer = CoreMetrics.Timer(label: Self.decisionSeconds, dimensions: [("outcome", "denied")], factory: factory)
    }

    public func requested() { counters["requested"]?.increment() }
    public func expired() { counters["expired"]?.increment() }
    public func consumed() { counters["consumed"]?.increment() }
    public func refused() { counters["refused"]?.increment() }

    public func decided(approved: Bool, after seconds: TimeInterval) {
        counters[approved ? "approved" : "denied"]?.increment()
        (approved ? approvedTimer : deniedTimer).recordSeconds(max(0, seconds))
    }
}
