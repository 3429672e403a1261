import CertificateAuthority
import Foundation
import SSHCertificates
import XCTest
@testable import Bastion

/// Everything that must not get a session. Each test asserts the refusal, that it was audited,
/// and that the target saw nothing.
final class RefusalTests: SharedFixtureTestCase {

    override class func makeFixture() throws -> BastionFixture { try BastionFixture(loginGrace: 3) }

    /// Runs `body` and checks that the target's sshd logged no new connection meanwhile.
    func assertTargetSawNothing(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) rethrows {
        let before = f.targetConnectionCount()
        try body()
        XCTAssertTrue(f.waitForIdle(), "connections drained", file: file, line: line)
        XCTAssertEqual(f.targetConnectionCount(), before, "the target saw a connection", file: file, line: line)
    }

    func assertLoginRefused(code: String, certificate: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try assertTargetSawNothing({
            let r = try f.ssh("web-01", ["true"], certificate: certificate)
            XCTAssertEqual(r.status, 255, file: file, line: line)
            XCTAssertTrue(r.err.contains("Permission denied"), r.err, file: file, line: line)
        }, file: file, line: line)
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "ssh.login" && $0.event.outcome == .refused && $0.event.details["code"] == code },
                        "audited as \(code)", file: file, line: line)
    }

    func testPlainKeyIsRefused() throws {
        // A key of its own: ssh would otherwise find agent-cert.pub beside the agent key by itself.
        let plain = f.directory.appendingPathComponent("plain").path
        if !FileManager.default.fileExists(atPath: plain) { try runChecked("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", plain]) }
        try assertTargetSawNothing {
            let r = try f.ssh("web-01", ["true"], identity: plain, certificate: nil)
            XCTAssertEqual(r.status, 255)
            XCTAssertTrue(r.err.contains("Permission denied"), r.err)
        }
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "ssh.login" && $0.event.details["code"] == "not-a-certificate" })
    }

    func testPasswordAndKeyboardInteractiveAreRefused() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python/client.py").path
        let refusedBefore = try f.auditRecords().filter { $0.event.action == "ssh.connection" && $0.event.outcome == .refused }.count
        try assertTargetSawNothing {
            for mode in ["password", "kbdint"] {
                let r = try runBinary("/usr/bin/env", ["python3", script, mode, String(f.bastionPort), "web-01"])
                XCTAssertEqual(r.status, 0, r.err)
                XCTAssertTrue(r.out.contains("\"connected\": false"), "\(mode): \(r.out)")
            }
        }
        // Gatehouse offers only publickey, so neither client can even send its password: each
        // connection ends unauthenticated and is audited as refused.
        let refusedAfter = try f.auditRecords().filter { $0.event.action == "ssh.connection" && $0.event.outcome == .refused }.count
        XCTAssertGreaterThanOrEqual(refusedAfter - refusedBefore, 2)
    }

    func testExpiredCertificateIsRefused() throws {
        let now = UInt64(Date().timeIntervalSince1970)
        try f.issueAgentCertificate(scopes: ["ops"], validity: (now - 7200, now - 3600), output: "expired-cert.pub")
        try assertLoginRefused(code: "expired", certificate: "expired-cert.pub")
    }

    func testNotYetValidCertificateIsRefused() throws {
        let now = UInt64(Date().timeIntervalSince1970)
        try f.issueAgentCertificate(scopes: ["ops"], validity: (now + 3600, now + 7200), output: "future-cert.pub")
        try assertLoginRefused(code: "not-yet-valid", certificate: "future-cert.pub")
    }

    func testCertificateFromAnUntrustedCAIsRefused() throws {
        let rogue = try SSHPrivateKey.generate(.ed25519)
        try f.issueAgentCertificate(scopes: ["ops"], ca: rogue, output: "rogue-cert.pub")
        try assertLoginRefused(code: "untrusted-ca", certificate: "rogue-cert.pub")
    }

    func testCertificateRevokedWhileTheServerRunsIsRefused() throws {
        let certificate = try f.issueAgentCertificate(scopes: ["ops"], keyID: "agent:to-revoke", output: "revoked-cert.pub")
        XCTAssertEqual(try f.ssh("web-01", ["true"], certificate: "revoked-cert.pub").status, 0, "accepted before revocation")
        try f.store.revoke(.serial(certificate.serial, ca: .user), actor: "test")
        try assertLoginRefused(code: "revoked", certificate: "revoked-cert.pub")
    }

    func testUnknownCriticalOptionIsRefused() throws {
        try f.issueAgentCertificate(scopes: ["ops"], criticalOptions: [CertificateOption(name: "no-such-option@example.com", value: "x")], output: "critical-cert.pub")
        try assertLoginRefused(code: "unknown-critical-option", certificate: "critical-cert.pub")
    }

    func testSourceAddressMismatchIsRefused() throws {
        try f.issueAgentCertificate(scopes: ["ops"], criticalOptions: [CertificateOption(name: CriticalOption.sourceAddress, value: "10.9.8.0/24")], output: "source-cert.pub")
        try assertLoginRefused(code: "source-address-mismatch", certificate: "source-cert.pub")
    }

    func testUnknownTargetGetsOneSentenceAndStatus255() throws {
        try assertTargetSawNothing {
            let r = try f.ssh("web-99", ["true"])
            XCTAssertEqual(r.status, 255)
            XCTAssertEqual(r.err, "gatehouse: no target named \"web-99\" is configured on this bastion.\n")
        }
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.target" && $0.event.details["reason"] == "unknown target" })
    }

    func testDeniedCommandGetsTheStructuredDenialAndStatus77() throws {
        try assertTargetSawNothing {
            let r = try f.ssh("web-01", ["rm", "-rf", "/"])
            XCTAssertEqual(r.status, 77)
            XCTAssertTrue(r.err.contains("gatehouse: denied:"), r.err)
            let line = try XCTUnwrap(r.err.split(separator: "\n").first { $0.hasPrefix("gatehouse-denial: ") })
            let json = try JSONSerialization.jsonObject(with: Data(line.dropFirst("gatehouse-denial: ".count).utf8)) as? [String: Any]
            XCTAssertEqual(json?["code"] as? String, "command-refused")
            XCTAssertEqual(json?["exit_status"] as? Int, 77)
        }
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "policy.decision" && $0.event.outcome == .refused && $0.event.details["request"] == "rm -rf /" })
    }

    func testRemoteForwardingIsRefused() throws {
        let r = try f.ssh("web-01", ["true"], options: ["-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22"])
        XCTAssertEqual(r.status, 255)
        XCTAssertTrue(r.err.contains("forwarding failed"), r.err)
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.request" && $0.event.object == "port-forwarding-remote" })
    }

    func testLocalAndDynamicForwardingAreRefused() throws {
        for flag in ["-L", "-D"] {
            let port = try freePort()
            let spec = flag == "-L" ? "127.0.0.1:\(port):127.0.0.1:\(f.targetPort)" : "127.0.0.1:\(port)"
            let p = try Child("/usr/bin/ssh", ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                               "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path,
                                               "-o", "CertificateFile=\(f.directory.appendingPathComponent("agent-cert.pub").path)", "-p", String(f.bastionPort),
                                               "-N", flag, spec, "web-01@127.0.0.1"])
            defer { kill(p.pid, SIGTERM); _ = p.wait() }
            // Wait for the forwarder to listen, then use it: the bastion refuses the channel.
            var connected = false
            let until = Date().addingTimeInterval(15)
            while Date() < until, !connected {
                if let fd = connectLoopback(port: port) {
                    connected = true
                    if flag == "-D" {
                        // SOCKS5: no auth, then CONNECT 127.0.0.1:targetPort.
                        _ = write(fd, [5, 1, 0], 3)
                        var reply = [UInt8](repeating: 0, count: 2)
                        _ = read(fd, &reply, 2)
                        let p = UInt16(f.targetPort)
                        _ = write(fd, [5, 1, 0, 1, 127, 0, 0, 1, UInt8(p >> 8), UInt8(p & 0xff)], 10)
                    }
                    var buffer = [UInt8](repeating: 0, count: 64)
                    var tv = timeval(tv_sec: 10, tv_usec: 0)
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                    let n = read(fd, &buffer, buffer.count)
                    // -L: closed with nothing; -D: a SOCKS failure reply, then close. Never an SSH banner from the target.
                    XCTAssertFalse(n > 0 && String(decoding: buffer[0..<n], as: UTF8.self).hasPrefix("SSH-"), "\(flag) reached the target")
                    close(fd)
                } else {
                    usleep(50_000)
                }
            }
            XCTAssertTrue(connected, "\(flag) forwarder never listened")
            XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.request" && $0.event.object == "port-forwarding-local" }, flag)
        }
    }

    func testAgentAndX11ForwardingAreRefused() throws {
        let socket = f.directory.appendingPathComponent("agent.sock").path
        let agent = try spawnDaemon("/usr/bin/ssh-agent", ["-D", "-a", socket])
        defer { kill(agent, SIGTERM); var s: Int32 = 0; waitpid(agent, &s, 0) }
        let until = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: socket), Date() < until { usleep(20_000) }
        var environment = ProcessInfo.processInfo.environment
        environment["SSH_AUTH_SOCK"] = socket
        environment["DISPLAY"] = "127.0.0.1:0"
        var arguments = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                         "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path,
                         "-o", "CertificateFile=\(f.directory.appendingPathComponent("agent-cert.pub").path)", "-p", String(f.bastionPort)]
        arguments += ["-A", "-X", "web-01@127.0.0.1", "--", "env"]
        let r = try runBinary("/usr/bin/ssh", arguments, environment: environment)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertFalse(r.out.contains("SSH_AUTH_SOCK"), "no agent socket on the target")
        XCTAssertFalse(r.out.contains("DISPLAY"), "no X11 display on the target")
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.request" && $0.event.object == "agent-forwarding" })
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.request" && $0.event.object == "x11" })
    }

    func testSFTPSubsystemIsRefusedWithoutTheRight() throws {
        try assertTargetSawNothing {
            let r = try f.ssh("web-01", ["sftp"], options: ["-s"])
            XCTAssertNotEqual(r.status, 0)
        }
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "policy.decision" && $0.event.object == "subsystem sftp" && $0.event.outcome == .refused })
    }

    func testPTYIsRefusedWithoutPermitPTY() throws {
        try f.issueAgentCertificate(scopes: ["ops"], extensions: [], output: "nopty-cert.pub")
        // With an explicit -tt, OpenSSH's client treats a refused pty as fatal, as with sshd.
        let r = try f.ssh("web-01", ["sh", "-c", "tty"], options: ["-tt"], certificate: "nopty-cert.pub")
        XCTAssertEqual(r.status, 255)
        XCTAssertTrue(r.err.contains("PTY allocation request failed"), r.err)
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.request" && $0.event.object == "pty" && $0.event.details["reason"]?.contains("permit-pty") == true })
    }

    func testStalledHandshakeIsCutOffAtTheDeadlineWhileOthersLogIn() throws {
        let stalled = try XCTUnwrap(connectLoopback(port: f.bastionPort))
        defer { close(stalled) }
        // Another agent logs in while the stalled connection holds its slot.
        XCTAssertEqual(try f.ssh("web-01", ["echo", "ok"]).out, "ok\n")
        // The stalled one is cut off: reading reaches EOF (after the server's banner) within the grace time.
        var tv = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(stalled, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let began = Date()
        var closed = false
        while Date().timeIntervalSince(began) < 15 {
            let n = read(stalled, &buffer, buffer.count)
            if n == 0 { closed = true; break }
            if n < 0 { break }
        }
        XCTAssertTrue(closed, "the stalled connection was closed by the server")
        // No identity before the handshake: counted in the source's admission summary.
        for event in f.server.context.admission.flush() { f.server.context.record(event) }
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "ssh.admission" && $0.event.details["source"] == "127.0.0.1" && $0.event.details["login_grace_exceeded"] != nil })
    }
}

func connectLoopback(port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = UInt16(port).bigEndian
    let rc = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    if rc != 0 { close(fd); return nil }
    return fd
}
