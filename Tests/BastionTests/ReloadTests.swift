import CertificateAuthority
import Foundation
import SSHCertificates
import XCTest
@testable import Bastion

/// Configuration reloads and CA rotation while sessions are live.
final class ReloadTests: FreshFixtureTestCase {

    func testReloadAddsATargetWithoutDroppingALiveSession() throws {
        // A live session that outlasts the reload.
        let live = try Child("/usr/bin/ssh", ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                              "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path,
                                              "-o", "CertificateFile=\(f.directory.appendingPathComponent("agent-cert.pub").path)", "-p", String(f.bastionPort),
                                              "web-01@127.0.0.1", "--", "sh", "-c", "'read line; echo got $line'"])
        let until = Date().addingTimeInterval(15)
        while f.server.context.connections.sessions == 0, Date() < until { usleep(20_000) }
        XCTAssertEqual(f.server.context.connections.sessions, 1)

        XCTAssertEqual(try f.ssh("web-new", ["true"]).status, 255, "unknown before the reload")
        let file = f.directory.appendingPathComponent("gatehouse.yaml")
        var yaml = try String(contentsOf: file, encoding: .utf8)
        let hostKey = try String(contentsOf: f.directory.appendingPathComponent("host_key.pub"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        yaml = yaml.replacingOccurrences(of: "targets:\n", with: "targets:\n  web-new:\n    address: 127.0.0.1\n    port: \(f.targetPort)\n    login: \(f.login)\n    host_key: \"\(hostKey)\"\n")
        try yaml.write(to: file, atomically: true, encoding: .utf8)
        try f.server.reload()
        XCTAssertEqual(try f.ssh("web-new", ["echo", "new"]).out, "new\n")

        live.stdin.write(Data("hello\n".utf8))
        try live.stdin.close()
        let out = live.stdout.readDataToEndOfFile()
        XCTAssertEqual(live.wait(), 0)
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "got hello\n", "the live session survived the reload")
    }

    func testAReloadWithABrokenFileKeepsTheOldConfiguration() throws {
        let file = f.directory.appendingPathComponent("gatehouse.yaml")
        let good = try String(contentsOf: file, encoding: .utf8)
        try (good + "\nbogus_key: 1\n").write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try f.server.reload()) { error in
            XCTAssertTrue("\(error)".contains("bogus_key"), "\(error)")
        }
        XCTAssertEqual(try f.ssh("web-01", ["echo", "still"]).out, "still\n")
    }

    func testTrustFollowsUserCARotationWithoutARestart() throws {
        let oldKey = f.store.signingKey(.user).publicKey
        // init (a new key is trusted), then update (the new key signs, the old one stays trusted).
        _ = try f.store.rotate(.user, actor: "test")
        _ = try f.store.rotate(.user, actor: "test")
        XCTAssertNotEqual(f.store.signingKey(.user).publicKey, oldKey)
        try f.issueAgentCertificate(scopes: ["ops"], keyID: "agent:rotated", output: "rotated-cert.pub")
        XCTAssertEqual(try f.ssh("web-01", ["echo", "rotated"], certificate: "rotated-cert.pub").out, "rotated\n", "new CA key trusted live")
        XCTAssertEqual(try f.ssh("web-01", ["echo", "old"]).out, "old\n", "certificates of the previous key still work during the update phase")
        // retire (forced past the grace period): the old key's certificates stop working, live.
        _ = try f.store.rotate(.user, actor: "test", force: true)
        XCTAssertEqual(try f.ssh("web-01", ["true"]).status, 255, "retired CA no longer trusted")
    }

    func testTargetCARotationIsPickedUpForNewSessions() throws {
        // The target trusts both target CA keys during the rotation: update the file sshd reads.
        _ = try f.store.rotate(.target, actor: "test")
        let both = f.store.trustedPublicKeys(.target).map(\.openSSHLine).joined(separator: "\n") + "\n"
        try both.write(to: f.directory.appendingPathComponent("target_ca.pub"), atomically: true, encoding: .utf8)
        _ = try f.store.rotate(.target, actor: "test")
        XCTAssertEqual(try f.ssh("web-01", ["echo", "new-target-ca"]).out, "new-target-ca\n")
        let issued = try XCTUnwrap(f.awaitAudit { $0.event.action == "cert.issue" && $0.event.object.hasPrefix("target certificate") })
        XCTAssertEqual(issued.event.details["ca_fingerprint"], f.store.signingKey(.target).publicKey.fingerprint, "signed by the new target CA key")
    }
}
