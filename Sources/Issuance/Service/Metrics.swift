import CoreMetrics

/// The issuance service's numbers, emitted through swift-metrics. The service knows no exporter:
/// the factory is whatever the process bootstrapped (`gatehouse serve` bootstraps Prometheus and
/// serves it on `/metrics`), or one passed in, so each test server can count into its own registry.
///
/// | name | kind | labels |
/// | --- | --- | --- |
/// | `gatehouse_certificates_issued_total` | counter | |
/// | `gatehouse_issuance_refusals_total` | counter | `reason`: the refusal code (every code starts at 0) |
/// | `gatehouse_issuance_request_seconds` | histogram | |
public final class IssuanceMetrics: Sendable {
    public static let requestSeconds = "gatehouse_issuance_request_seconds"

    /// Histogram bounds the exporter should use for the service's timers.
    public static let timerBuckets: [String: [Duration]] = [
        requestSeconds: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5].map { .microseconds(Int64($0 * 1_000_000)) },
    ]

    private let issuedCounter: Counter
    private let refusals: [Refusal.Code: Counter]
    private let latency: CoreMetrics.Timer

    /// `factory`: where the numbers go; by default the process's bootstrapped one.
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        issuedCounter = Counter(label: "gatehouse_certificates_issued_total", factory: factory)
        refusals = Dictionary(uniqueKeysWithValues: Refusal.Code.allCases.map {
            ($0, Counter(label: "gatehouse_issuance_refusals_total", dimensions: [("reason", $0.rawValue)], factory: factory))
        })
        latency = CoreMetrics.Timer(label: Self.requestSeconds, factory: factory)
    }

    public func issued(seconds: Double) {
        issuedCounter.increment()
        latency.recordSeconds(max(0, seconds))
    }

    public func refused(_ code: Refusal.Code, seconds: Double) {
        refusals[code]?.increment()
        latency.recordSeconds(max(0, seconds))
    }
}

/// What `/metrics` answers: the exposition text of the process's exporter, produced by whoever
/// bootstrapped it (the issuance service does not know which exporter that is).
public struct MetricsPage: Sendable {
    public let contentType: String
    public let render: @Sendable () -> String

    public init(contentType: String, render: @escaping @Sendable () -> String) {
        self.contentType = contentType
        self.render = render
    }
}
