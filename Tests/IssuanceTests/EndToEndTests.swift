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
        var metrics = ""
        let until = Date().addingTimeInterval(10)
        repeat {
            metrics = try runBinary("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(e2e.issuancePort)/metrics"]).out
            if metrics.contains("gatehouse_bytes_relayed_total{stream=\"out\"} 20\n") { break }
            usleep(50_000)
        } while Date() < until
        XCTAssertTrue(metrics.contains("gatehouse_certificates_issued_total 1\n"), metrics)
        XCTAssertTrue(metrics.contains("gatehouse_sessions_started_total 1\n"), metrics)
        XCTAssertTrue(metrics.contains("gatehouse_sessions_live 0\n"), metrics)
        XCTAssertTrue(metrics.contains("gatehouse_bytes_relayed_total{stream=\"out\"} 20\n"), "\"through the bastion\\n\" is 20 bytes: \(metrics)")

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
