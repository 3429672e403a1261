import CoreMetrics
import Prometheus

/// The Prometheus side of swift-metrics, assembled once for a process (or once per test server):
/// one registry, a factory that writes into it with each module's histogram buckets, and the
/// text `/metrics` serves. The modules that count (Bastion, Issuance) see only the factory.
public final class PrometheusExporter: Sendable {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory

    /// `timerBuckets`: histogram bounds by metric name, as each module publishes them
    /// (`BastionMetrics.timerBuckets`, `IssuanceMetrics.timerBuckets`).
    public init(timerBuckets: [String: [Duration]]) {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets = timerBuckets
        self.registry = registry
        self.factory = factory
    }

    /// The exposition text (Prometheus text format 0.0.4).
    public func render() -> String {
        registry.emitToString()
    }
}
