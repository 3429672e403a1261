import Foundation
import Synchronization

/// Counters and histograms for `/metrics`, in the Prometheus text format. Kept here rather
/// than pulling in a metrics stack: a handful of numbers, one lock, one page.
public final class IssuanceMetrics: Sendable {
    struct State {
        var issued = 0
        var refusals: [String: Int] = [:]
        var sessionsStarted = 0
        var sessionsLive = 0
        var bytesRelayed: [String: UInt64] = ["in": 0, "out": 0, "err": 0]
        var latency = Histogram(bounds: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5])
        var sessionDuration = Histogram(bounds: [1, 5, 15, 60, 300, 900, 3600])
    }
    struct Histogram {
        let bounds: [Double]
        var counts: [Int]
        var sum = 0.0
        var count = 0
        init(bounds: [Double]) { self.bounds = bounds; counts = Array(repeating: 0, count: bounds.count) }
        mutating func observe(_ v: Double) {
            for (i, b) in bounds.enumerated() where v <= b { counts[i] += 1 }
            sum += v
            count += 1
        }
        func render(_ name: String) -> String {
            var s = ""
            for (i, b) in bounds.enumerated() { s += "\(name)_bucket{le=\"\(b)\"} \(counts[i])\n" }
            s += "\(name)_bucket{le=\"+Inf\"} \(count)\n\(name)_sum \(sum)\n\(name)_count \(count)\n"
            return s
        }
    }

    private let state = Mutex(State())
    public init() {}

    public func issued(seconds: Double) { state.withLock { $0.issued += 1; $0.latency.observe(seconds) } }
    public func refused(_ code: Refusal.Code, seconds: Double) {
        state.withLock { $0.refusals[code.rawValue, default: 0] += 1; $0.latency.observe(seconds) }
    }
    public func sessionStarted() { state.withLock { $0.sessionsStarted += 1; $0.sessionsLive += 1 } }
    public func sessionEnded(bytesIn: UInt64, bytesOut: UInt64, bytesErr: UInt64, seconds: Double) {
        state.withLock {
            $0.sessionsLive -= 1
            $0.bytesRelayed["in", default: 0] += bytesIn
            $0.bytesRelayed["out", default: 0] += bytesOut
            $0.bytesRelayed["err", default: 0] += bytesErr
            $0.sessionDuration.observe(seconds)
        }
    }

    public var issuedCount: Int { state.withLock { $0.issued } }
    public func refusalCount(_ code: Refusal.Code) -> Int { state.withLock { $0.refusals[code.rawValue] ?? 0 } }

    public func render() -> String {
        state.withLock { s in
            var out = "# HELP gatehouse_certificates_issued_total User certificates issued over HTTP.\n# TYPE gatehouse_certificates_issued_total counter\n"
            out += "gatehouse_certificates_issued_total \(s.issued)\n"
            out += "# HELP gatehouse_issuance_refusals_total Issuance requests refused, by reason.\n# TYPE gatehouse_issuance_refusals_total counter\n"
            for code in Refusal.Code.allCases { out += "gatehouse_issuance_refusals_total{reason=\"\(code.rawValue)\"} \(s.refusals[code.rawValue] ?? 0)\n" }
            out += "# HELP gatehouse_issuance_request_seconds Time to answer POST /v1/certificates.\n# TYPE gatehouse_issuance_request_seconds histogram\n"
            out += s.latency.render("gatehouse_issuance_request_seconds")
            out += "# HELP gatehouse_sessions_started_total SSH sessions started.\n# TYPE gatehouse_sessions_started_total counter\n"
            out += "gatehouse_sessions_started_total \(s.sessionsStarted)\n"
            out += "# HELP gatehouse_sessions_live SSH sessions open now.\n# TYPE gatehouse_sessions_live gauge\n"
            out += "gatehouse_sessions_live \(s.sessionsLive)\n"
            out += "# HELP gatehouse_session_seconds Length of ended SSH sessions.\n# TYPE gatehouse_session_seconds histogram\n"
            out += s.sessionDuration.render("gatehouse_session_seconds")
            out += "# HELP gatehouse_bytes_relayed_total Bytes relayed by ended sessions, by stream.\n# TYPE gatehouse_bytes_relayed_total counter\n"
            for k in ["in", "out", "err"] { out += "gatehouse_bytes_relayed_total{stream=\"\(k)\"} \(s.bytesRelayed[k] ?? 0)\n" }
            return out
        }
    }
}
