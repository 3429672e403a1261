import Audit
import Foundation
import XCTest
@testable import Bastion

/// No lock-out by flood: idle and garbage connections from other sources never keep an agent out,
/// and the audit log grows by counted summaries, not a record per flood connection.
final class AdmissionTests: XCTestCase {
    func testAFloodFromOtherSourcesNeverLocksTheAgentOut() throws {
        // The shipped limits (max_unauthenticated 128, 32 per source), a 10 s login grace.
        let f = try BastionFixture(loginGrace: 10, maxUnauthenticated: nil)
        defer { f.stop() }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python/flood.py").path
        let auditBefore = try f.auditRecords().count
        let floodStarted = Date()
        let flood = try Child("/usr/bin/python3", [script, String(f.bastionPort), "300", "300", "20"])
        defer {
            kill(flood.pid, SIGTERM)
            _ = flood.wait(timeout: 10)
        }
        let ready = String(decoding: flood.stdout.availableData, as: UTF8.self)
        XCTAssertTrue(ready.contains("ready"), ready)
        for attempt in 0..<6 {
            let began = Date()
            let r = try f.ssh("web-01", ["echo", "through-\(attempt)"])
            let took = Date().timeIntervalSince(began)
            XCTAssertEqual(r.status, 0, "login \(attempt) during the flood: \(r.err)")
            XCTAssertEqual(r.out, "through-\(attempt)\n")
            XCTAssertLessThan(took, 2.0, "login \(attempt) took \(took)s during the flood")
            usleep(500_000)
        }
        // The flood ends: every connection it held is closed and audited before the test ends
        // (no connection thread may outlive the test process's own teardown).
        kill(flood.pid, SIGTERM)
        _ = flood.wait(timeout: 10)
        XCTAssertTrue(f.waitForIdle(timeout: 60), "\(f.server.context.connections.connections) connections still open after the flood")
        // 600 flood connections (and every re-connection) cost a bounded number of audit
        // records: per-source summaries, at most one per source per interval, plus the agent's own.
        for event in f.server.context.admission.flush() { f.server.context.record(event) }
        let added = try f.auditRecords().dropFirst(auditBefore)
        let summaries = added.filter { $0.event.action == "ssh.admission" }
        XCTAssertFalse(summaries.isEmpty, "the flood is audited")
        // 20 flood sources, one summary each per 10 s interval (plus the final flush).
        let intervals = Int(Date().timeIntervalSince(floodStarted) / 10) + 2
        XCTAssertLessThanOrEqual(summaries.count, 20 * intervals, "at most one summary per source per interval")
        XCTAssertLessThan(added.count, 20 * intervals + 60, "the audit log grew by \(added.count) records for a 600-connection flood")
        XCTAssertTrue(summaries.allSatisfy { ($0.event.details["source"] ?? "").hasPrefix("127.0.0.") && $0.event.details["source"] != "127.0.0.1" })
    }

    func testSourceKeysGroupIPv6ByPrefix() {
        XCTAssertEqual(SourceKey(address: "2001:db8:1:2:aaaa::1").text, "2001:db8:1:2::/64")
        XCTAssertEqual(SourceKey(address: "2001:db8:1:2:bbbb::9"), SourceKey(address: "2001:db8:1:2:aaaa::1"))
        XCTAssertNotEqual(SourceKey(address: "2001:db8:1:3::1"), SourceKey(address: "2001:db8:1:2::1"))
        XCTAssertEqual(SourceKey(address: "127.0.0.7").text, "127.0.0.7")
    }

    func testAPenalisedSourceIsRefusedAtAcceptAndOthersAreNot() {
        var limits = Limits()
        limits.penalties.handshakeFailed = 5
        limits.penalties.minimum = 15
        let control = AdmissionControl(limits: limits)
        for _ in 0..<4 {
            guard case .admit(let ticket) = control.arrive(fd: -1, address: "127.0.0.9", launch: { _ in }) else { return XCTFail("admitted at first") }
            ticket.finish(.handshakeFailed, detail: "garbage")
        }
        guard case .refuse = control.arrive(fd: -1, address: "127.0.0.9", launch: { _ in }) else { return XCTFail("penalised after 15 s of penalty") }
        guard case .admit(let other) = control.arrive(fd: -1, address: "127.0.0.1", launch: { _ in }) else { return XCTFail("another source is admitted") }
        other.authenticated()
        XCTAssertEqual(control.inFlight, 0)
        let summary = control.flush()
        XCTAssertEqual(summary.first { $0.details["source"] == "127.0.0.9" }?.details["handshake_failed"], "4")
        XCTAssertEqual(summary.first { $0.details["source"] == "127.0.0.9" }?.details["refused_penalised"], "1")
    }

    func testAFullTableMakesTheHeaviestSourceMakeRoom() {
        var limits = Limits()
        limits.maxUnauthenticated = 4
        limits.maxUnauthenticatedPerSource = 4
        let control = AdmissionControl(limits: limits)
        var flood: [AdmissionTicket] = []
        for _ in 0..<4 {
            guard case .admit(let t) = control.arrive(fd: -1, address: "127.0.0.2", launch: { _ in }) else { return XCTFail() }
            flood.append(t)
        }
        // The table is full of one source; another source still gets a slot at once.
        guard case .admit(let agent) = control.arrive(fd: -1, address: "127.0.0.1", launch: { _ in }) else { return XCTFail("the agent waited behind a flood") }
        // The flood's own next connection waits instead.
        guard case .queued = control.arrive(fd: -1, address: "127.0.0.2", launch: { _ in }) else { return XCTFail("the flood queues") }
        agent.authenticated()
        for t in flood { t.finish(.graceExceeded, detail: "") }
        XCTAssertEqual(control.flush().first?.details["evicted_for_other_source"], "1")
    }
}

/// A burst of legitimate agents beyond the unauthenticated limit waits its turn instead of
/// being cut, and the login deadline never ends a connection whose session has started.
final class BurstTests: XCTestCase {
    func testFiveHundredSimultaneousSessionsAllComplete() throws {
        // The shipped limits and login grace: 500 is past max_unauthenticated (128) and the
        // per-source share (32), so most of the burst waits in the queue.
        let f = try BastionFixture(loginGrace: 10, maxUnauthenticated: nil)
        defer { f.stop() }
        // Five client processes of 100 connections each, all at once.
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python/burst.py").path
        let shares = UnsafeMutableBufferPointer<BinaryResult?>.allocate(capacity: 5)
        shares.initialize(repeating: nil)
        defer { shares.deallocate() }
        nonisolated(unsafe) let slots = shares
        let (port, key, cert) = (String(f.bastionPort), f.agentKey.path, f.directory.appendingPathComponent("agent-cert.pub").path)
        DispatchQueue.concurrentPerform(iterations: 5) { share in
            slots[share] = try? runBinary("/usr/bin/env", ["python3", script, port, key, cert, "100", String(share * 100)])
        }
        var ok = 0
        var errors: [String] = []
        for share in 0..<5 {
            let r = try XCTUnwrap(shares[share])
            XCTAssertEqual(r.status, 0, r.err)
            let part = try XCTUnwrap(JSONSerialization.jsonObject(with: r.stdout) as? [String: Any], r.out)
            ok += part["ok"] as? Int ?? 0
            errors += part["errors"] as? [String] ?? []
        }
        let summary: [String: Any] = ["ok": ok, "errors": errors]
        for event in f.server.context.admission.flush() { f.server.context.record(event) }
        let records = try f.auditRecords()
        var reasons: [String: Int] = [:]
        for r in records where r.event.outcome != .success || r.event.action == "ssh.admission" {
            reasons["\(r.event.action) \(r.event.details["reason"] ?? r.event.details.filter { $0.key != "source" && $0.key != "interval_ms" }.description)", default: 0] += 1
        }
        XCTAssertEqual(summary["ok"] as? Int, 500, "\(summary) \(reasons)")
        XCTAssertTrue(f.waitForIdle(timeout: 60))
        // No session that started was ended by the login deadline, or by anything but its exit.
        let ends = try f.auditRecords().filter { $0.event.action == "session.end" }
        XCTAssertEqual(ends.count, 500)
        XCTAssertEqual(ends.filter { $0.event.details["reason"] != "target process exited" }.count, 0,
                       "\(ends.filter { $0.event.details["reason"] != "target process exited" }.prefix(3).map { $0.event.details })")
    }
}
