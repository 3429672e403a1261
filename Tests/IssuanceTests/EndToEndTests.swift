import Audit
import Foundation
import SSHCertificates
import XCTest

/// `gatehouse serve` + `gatehouse login` + `ssh` with the test provider (its own keys and JWKS
/// on loopback). The same path with a real provider is GlewlwydTests.
final class EndToEndTests: XCTestCase {
    func testLoginThenSSHThroughServeThenSIGTERMExitsAfterTheFinalAuditRecord() async throws {
        let provider = TestProvider()
        try await provider.start()
        defer { provider.stop() }
        let e2e = try ServeEndToEnd(issuers: """
            - issuer: \(provider.issuer)
              audiences: [gatehouse]
        """)
        defer { e2e.stop() }
        XCTAssertTrue(e2e.serveOutput.contains("issuance: listening on http://127.0.0.1:\(e2e.issuancePort)"), e2e.serveOutput)

        let login = try e2e.loginWith(token: provider.token(provider.claims(sub: "e2e-agent", groups: ["ops"])), extra: ["--task-id", "ticket-9"])
        XCTAssertEqual(login.status, 0, login.err)
        XCTAssertTrue(login.out.contains("Generated a new Ed25519 key"), login.out)
        XCTAssertTrue(login.out.contains("ssh -i "), login.out)
        XCTAssertTrue(login.out.contains("CertificateFile \(e2e.directory.path)/agent-cert.pub"), login.out)
        let cert = try SSHCertificate(openSSHLine: try String(contentsOfFile: e2e.directory.appendingPathComponent("agent-cert.pub").path, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertEqual(cert.keyID, "oidc:e2e-agent")
        XCTAssertEqual(try CertificatePermissions(certificate: cert).context, "{\"task_id\":\"ticket-9\"}")

        let allowed = try e2e.ssh(["echo", "through", "the", "bastion"])
        XCTAssertEqual(allowed.status, 0, allowed.err)
        XCTAssertEqual(allowed.out, "through the bastion\n")
        let denied = try e2e.ssh(["id"])
        XCTAssertNotEqual(denied.status, 0, "scope ops allows only echo")

        // /metrics on the issuance listener counts the bastion's sessions and relayed bytes. The
        // session's end is counted as the server closes it, so poll (with a deadline) for it.
        // The page is read by prometheus_client's parser, as a Prometheus server would read it.
        var page = try PrometheusText(parsing: "")
        let until = Date().addingTimeInterval(10)
        repeat {
            let scrape = try runBinary("/usr/bin/curl", ["-sf", "-D", "/dev/stderr", "http://127.0.0.1:\(e2e.issuancePort)/metrics"])
            XCTAssertTrue(scrape.err.lowercased().contains("content-type: text/plain; version=0.0.4"), scrape.err)
            page = try PrometheusText(parsing: scrape.out)
            if page.value("gatehouse_bytes_relayed_total", ["stream": "out"]) == 20 { break }
            usleep(50_000)
        } while Date() < until
        XCTAssertEqual(page.value("gatehouse_certificates_issued_total"), 1)
        XCTAssertEqual(page.type(ofFamily: "gatehouse_certificates_issued"), "counter")
        XCTAssertEqual(page.value("gatehouse_issuance_refusals_total", ["reason": "bad_audience"]), 0, "every refusal code is exported from the start")
        XCTAssertEqual(page.type(ofFamily: "gatehouse_issuance_request_seconds"), "histogram")
        XCTAssertEqual(page.value("gatehouse_issuance_request_seconds_count"), 1)
        XCTAssertEqual(page.value("gatehouse_issuance_request_seconds_bucket", ["le": "+Inf"]), 1)
        XCTAssertEqual(page.value("gatehouse_sessions_started_total"), 1)
        XCTAssertEqual(page.value("gatehouse_sessions_live"), 0)
        XCTAssertEqual(page.type(ofFamily: "gatehouse_sessions_live"), "gauge")
        XCTAssertEqual(page.value("gatehouse_sessions_ended_total", ["outcome": "exit_zero"]), 1)
        XCTAssertEqual(page.value("gatehouse_sessions_ended_total", ["outcome": "exit_nonzero"]), 0)
        XCTAssertEqual(page.value("gatehouse_session_seconds_count"), 1)
        XCTAssertEqual(page.value("gatehouse_bytes_relayed_total", ["stream": "out"]), 20, "\"through the bastion\\n\" is 20 bytes")
        XCTAssertEqual(page.value("gatehouse_bytes_relayed_total", ["stream": "err"]), 0)
        XCTAssertEqual(page.value("gatehouse_recorder_batches_queued"), 0, "no batch waits for the disk once the session is over")
        // Two SSH connections logged in (the allowed command and the denied one).
        XCTAssertEqual(page.type(ofFamily: "gatehouse_login_seconds"), "histogram")
        XCTAssertEqual(page.value("gatehouse_login_seconds_count", ["outcome": "authenticated"]), 2)
        // Refusals by code: exactly the refusals the audit log holds, one for one.
        var audited: [String: Double] = [:]
        for record in try AuditLog.records(path: e2e.auditPath) where record.event.outcome == .refused && !["ssh.admission", "cert.issue"].contains(record.event.action) {
            audited["\(record.event.action) \(record.event.details["code"] ?? "unspecified")", default: 0] += 1
        }
        var counted: [String: Double] = [:]
        for sample in page.samples(of: "gatehouse_bastion_refusals_total") where sample.value > 0 {
            counted["\(sample.labels["action"] ?? "?") \(sample.labels["code"] ?? "?")"] = sample.value
        }
        XCTAssertFalse(counted.isEmpty, "the denied `id` is a refusal")
        XCTAssertEqual(counted, audited)

        // A second login with the same key refreshes the certificate; a refused one says why.
        let refused = try e2e.loginWith(token: provider.token(provider.claims(audience: "elsewhere")))
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.err.contains("bad_audience"), refused.err)

        XCTAssertEqual(e2e.terminate(), 0, "serve must exit 0 promptly on SIGTERM")
        let records = try AuditLog.records(path: e2e.auditPath)
        XCTAssertEqual(records.last?.event.action, "server.stop")
        XCTAssertTrue(records.contains { $0.event.action == "cert.issue" && $0.event.details["sub"] == "e2e-agent" && $0.event.outcome == .success })
        XCTAssertTrue(records.contains { $0.event.details["code"] == "bad_audience" })
        guard case .intact = try AuditLog.verify(path: e2e.auditPath) else { return XCTFail("audit chain broken") }
    }
}
