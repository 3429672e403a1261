import CoreMetrics
import MetricsTestKit
import Synchronization
import XCTest
@testable import Bastion

/// The bastion counts through whatever swift-metrics factory it is given (no exporter here):
/// each test has its own TestMetrics, so nothing depends on the process-wide bootstrap.
final class BastionMetricsTests: XCTestCase {
    func testSessionsAreCountedByOutcomeWithTheirBytesAndTheObserverStillHearsThem() throws {
        let factory = TestMetrics()
        let metrics = BastionMetrics(factory: factory)
        let heard = HeardSessions()
        let observer = MetricsSessionObserver(metrics: metrics, next: heard)
        let summary = SessionSummary(sessionID: "gs-1", peer: "127.0.0.1:1", target: "web-01", login: "u", keyID: "k", serial: 1, principals: [],
                                     scopes: [], context: nil, request: "exec true", terminal: nil, startedAt: Date())
        for _ in 0..<4 { observer.sessionStarted(summary) }
        XCTAssertEqual(try factory.expectMeter("gatehouse_sessions_live").lastValue, 4)
        func outcome(_ status: Int32?, _ signal: String?) -> SessionOutcome {
            SessionOutcome(exitStatus: status, exitSignal: signal, reason: "r", bytesIn: 3, bytesOut: 20, bytesErr: 1, duration: 2)
        }
        observer.sessionEnded(summary, outcome: outcome(0, nil))
        observer.sessionEnded(summary, outcome: outcome(1, nil))
        observer.sessionEnded(summary, outcome: outcome(nil, "KILL"))
        observer.sessionEnded(summary, outcome: outcome(nil, nil))
        XCTAssertEqual(try factory.expectCounter("gatehouse_sessions_started_total").totalValue, 4)
        for end in BastionMetrics.SessionEnd.allCases {
            XCTAssertEqual(try factory.expectCounter("gatehouse_sessions_ended_total", [("outcome", end.rawValue)]).totalValue, 1, end.rawValue)
        }
        XCTAssertEqual(try factory.expectMeter("gatehouse_sessions_live").lastValue, 0)
        XCTAssertEqual(try factory.expectCounter("gatehouse_bytes_relayed_total", [("stream", "in")]).totalValue, 12)
        XCTAssertEqual(try factory.expectCounter("gatehouse_bytes_relayed_total", [("stream", "out")]).totalValue, 80)
        XCTAssertEqual(try factory.expectCounter("gatehouse_bytes_relayed_total", [("stream", "err")]).totalValue, 4)
        XCTAssertEqual(try factory.expectTimer(BastionMetrics.sessionSeconds).values, Array(repeating: 2_000_000_000, count: 4))
        XCTAssertEqual(heard.started.withLock { $0 }, 4)
        XCTAssertEqual(heard.ended.withLock { $0 }, 4)
    }

    func testLoginLatencyAndAdmissionRefusalsAreCounted() throws {
        let factory = TestMetrics()
        var limits = Limits()
        limits.penalties.handshakeFailed = 5
        limits.penalties.minimum = 15
        let control = AdmissionControl(limits: limits, metrics: BastionMetrics(factory: factory))
        guard case .admit(let agent) = control.arrive(fd: -1, address: "127.0.0.1", launch: { _ in }) else { return XCTFail("admitted") }
        agent.authenticated()
        agent.finish(.disconnected, detail: "later end of the same connection is not a second login")
        for _ in 0..<4 {
            guard case .admit(let ticket) = control.arrive(fd: -1, address: "127.0.0.9", launch: { _ in }) else { return XCTFail("admitted at first") }
            ticket.finish(.handshakeFailed, detail: "garbage")
        }
        guard case .refuse = control.arrive(fd: -1, address: "127.0.0.9", launch: { _ in }) else { return XCTFail("penalised") }
        XCTAssertEqual(try factory.expectTimer(BastionMetrics.loginSeconds, [("outcome", "authenticated")]).values.count, 1)
        XCTAssertEqual(try factory.expectTimer(BastionMetrics.loginSeconds, [("outcome", "handshake_failed")]).values.count, 4)
        XCTAssertEqual(try factory.expectCounter("gatehouse_bastion_refusals_total", [("action", "ssh.admission"), ("code", "refused_penalised")]).totalValue, 1)
        // The audit summary that follows is not counted a second time.
        XCTAssertFalse(control.flush().isEmpty)
    }
}

final class HeardSessions: SessionObserver {
    let started = Mutex(0)
    let ended = Mutex(0)
    func sessionStarted(_ summary: SessionSummary) { started.withLock { $0 += 1 } }
    func sessionEnded(_ summary: SessionSummary, outcome: SessionOutcome) { ended.withLock { $0 += 1 } }
}
