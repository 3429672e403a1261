import Foundation
import Recording
import SSHCertificates
import XCTest

/// Port, agent and X11 forwarding through a live bastion with the stock OpenSSH client and a
/// real target sshd: each kind granted by a scope works and is recorded; each kind outside the
/// scope, or without the certificate's permit-* extension, is refused and audited. (The
/// refusals for a scope granting none of them are in RefusalTests.)
final class ForwardingTests: SharedFixtureTestCase {
    nonisolated(unsafe) static var echoPort = 0
    nonisolated(unsafe) static var remotePort = 0
    nonisolated(unsafe) static var echoPid: pid_t = 0
    static let tcp = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python/tcp.py").path

    override class func makeFixture() throws -> BastionFixture {
        echoPort = try freePort()
        remotePort = try freePort()
        let fixture = try BastionFixture(maxForwards: 3, extraScopes: """
          tunnels:
            targets: [web-01]
            rights: [exec, forward-local, forward-remote, agent-forwarding, x11]
            commands:
              - "ssh-add -l"
              - "xdpyinfo"
              - "python3 \(tcp) send {port: 1..65535} {message: /[a-z-]+/}"
            forwards: ["127.0.0.1:\(echoPort)"]
            remote_forwards: ["127.0.0.1:\(remotePort)", "localhost:0"]
        """)
        // One echo server stands on both sides: the target's (for -L, -D, -W) and the agent's (for -R).
        echoPid = try spawnDaemon("/usr/bin/python3", [tcp, "echo", String(echoPort)])
        guard waitUntilListening(echoPort) else { throw FixtureError("the echo server never listened") }
        let all = CertificateTemplate.defaultUserExtensions + [CertificateExtension.permitPortForwarding, CertificateExtension.permitAgentForwarding,
                                                                CertificateExtension.permitX11Forwarding].map { CertificateOption.flag($0) }
        try fixture.issueAgentCertificate(scopes: ["tunnels"], keyID: "agent:tunnels", extensions: all, output: "tunnel-cert.pub")
        try fixture.issueAgentCertificate(scopes: ["tunnels"], keyID: "agent:no-forwarding-extension", output: "plain-cert.pub")
        return fixture
    }

    override class func tearDown() {
        kill(echoPid, SIGTERM)
        var status: Int32 = 0
        waitpid(echoPid, &status, 0)
        super.tearDown()
    }

    var echoPort: Int { Self.echoPort }

    func sshArguments(certificate: String, _ options: [String]) -> [String] {
        ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20", "-i", f.agentKey.path,
         "-o", "CertificateFile=\(f.directory.appendingPathComponent(certificate).path)", "-p", String(f.bastionPort)] + options
    }

    // MARK: -L / -W / -D

    func testLocalForwardCarriesBytesAndEveryByteIsRecorded() throws {
        let r = try f.ssh("web-01", [], options: ["-W", "127.0.0.1:\(echoPort)"], certificate: "tunnel-cert.pub", stdin: Data("hello-forward\n".utf8))
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "hello-forward\n")
        let start = try XCTUnwrap(f.awaitAudit { $0.event.action == "forward.start" && $0.event.details["request"]?.contains("127.0.0.1:\(self.echoPort)") == true })
        XCTAssertEqual(start.event.object, "port-forwarding-local")
        XCTAssertEqual(start.event.details["scope"], "tunnels")
        XCTAssertEqual(start.event.details["key_id"], "agent:tunnels")
        let end = try XCTUnwrap(f.awaitAudit { $0.event.action == "forward.end" && $0.event.details["recording"] == start.event.details["recording"] })
        XCTAssertEqual(end.event.details["bytes_from_agent"], "14")
        XCTAssertEqual(end.event.details["bytes_to_agent"], "14")
        let path = try XCTUnwrap(end.event.details["recording"])
        XCTAssertEqual(try RecordingExporter.export(path: path, format: .raw, stream: .stdin).bytes, Array("hello-forward\n".utf8))
        XCTAssertEqual(try RecordingExporter.export(path: path, format: .raw, stream: .stdout).bytes, Array("hello-forward\n".utf8))
        let report = RecordingVerifier.verify(path: path, trustedKeys: f.store.trustedPublicKeys(.recording))
        XCTAssertTrue(report.isIntact, "\(report.problems)")
        XCTAssertTrue(report.header?.command?.hasPrefix("direct-tcpip to 127.0.0.1:\(echoPort)") ?? false, "\(String(describing: report.header?.command))")
        XCTAssertEqual(report.header?.channel, 0, "channels are numbered in the order the connection opened them")
        XCTAssertEqual(report.finalHash, end.event.details["recording_hash"])
    }

    func testLocalForwardOutsideTheScopeIsRefusedBeforeTheTargetIsContacted() throws {
        let other = try freePort()
        let before = f.targetConnectionCount()
        let r = try f.ssh("web-01", [], options: ["-W", "127.0.0.1:\(other)"], certificate: "tunnel-cert.pub")
        XCTAssertEqual(r.status, 255)
        XCTAssertTrue(r.err.contains("stdio forwarding failed"), r.err)
        let refusal = try XCTUnwrap(f.awaitAudit { $0.event.action == "session.request" && $0.event.details["request"]?.contains("127.0.0.1:\(other)") == true })
        XCTAssertEqual(refusal.event.object, "port-forwarding-local")
        XCTAssertEqual(refusal.event.outcome, .refused)
        XCTAssertEqual(refusal.event.details["rule"], "forwards")
        XCTAssertTrue(f.waitForIdle())
        XCTAssertEqual(f.targetConnectionCount(), before, "a refused forward never reaches the target")
    }

    func testForwardingNeedsTheCertificatesOwnExtension() throws {
        let r = try f.ssh("web-01", [], options: ["-W", "127.0.0.1:\(echoPort)"], certificate: "plain-cert.pub", stdin: Data("x".utf8))
        XCTAssertEqual(r.status, 255)
        XCTAssertEqual(r.out, "")
        let refusal = try XCTUnwrap(f.awaitAudit { $0.event.action == "session.request" && $0.event.details["key_id"] == "agent:no-forwarding-extension" })
        XCTAssertEqual(refusal.event.details["reason"], "the certificate has no permit-port-forwarding extension")
    }

    func testDynamicForwardingDecidesEachDestinationAndOutlivesTheLoginDeadline() throws {
        let socksPort = try freePort()
        let ssh = try spawnDaemon("/usr/bin/ssh", sshArguments(certificate: "tunnel-cert.pub", ["-N", "-o", "ExitOnForwardFailure=yes",
                                                                                                "-D", "127.0.0.1:\(socksPort)", "web-01@127.0.0.1"]))
        defer { kill(ssh, SIGTERM); var s: Int32 = 0; waitpid(ssh, &s, 0) }
        XCTAssertTrue(Self.waitUntilListening(socksPort), "ssh -D never listened")
        let allowed = try runBinary("/usr/bin/python3", [Self.tcp, "socks5", String(socksPort), "127.0.0.1", String(echoPort), "hello-socks"])
        XCTAssertEqual(allowed.status, 0, allowed.err)
        XCTAssertEqual(allowed.out, "hello-socks")
        let other = try freePort()
        let refused = try runBinary("/usr/bin/python3", [Self.tcp, "socks5", String(socksPort), "127.0.0.1", String(other), "never"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("connect refused"), refused.err)
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.request" && $0.event.details["request"]?.contains("127.0.0.1:\(other)") == true })
        // A connection that only forwards has no session to start: the login deadline (3 s in
        // the fixture) must not cut it off once it is in use.
        Thread.sleep(forTimeInterval: 4)
        let later = try runBinary("/usr/bin/python3", [Self.tcp, "socks5", String(socksPort), "127.0.0.1", String(echoPort), "still-here"])
        XCTAssertEqual(later.out, "still-here", later.err)
    }

    // MARK: -R

    func testRemoteForwardBringsTargetConnectionsBackToTheAgent() throws {
        let port = Self.remotePort
        let r = try runBinary("/usr/bin/ssh", sshArguments(certificate: "tunnel-cert.pub", [
            "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:\(port):127.0.0.1:\(echoPort)", "web-01@127.0.0.1", "--",
            "python3", Self.tcp, "send", String(port), "hello-remote",
        ]))
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "hello-remote")
        let granted = try XCTUnwrap(f.awaitAudit { $0.event.action == "policy.decision" && $0.event.object == "port-forwarding-remote" })
        XCTAssertEqual(granted.event.details["bound_port"], String(port))
        let end = try XCTUnwrap(f.awaitAudit { $0.event.action == "forward.end" && $0.event.object == "port-forwarding-remote" })
        XCTAssertEqual(end.event.details["bytes_to_agent"], "12", "\(end.event.details)")
        XCTAssertEqual(end.event.details["bytes_from_agent"], "12")
    }

    func testRemoteForwardOutsideTheScopeIsRefused() throws {
        let other = try freePort()
        let r = try runBinary("/usr/bin/ssh", sshArguments(certificate: "tunnel-cert.pub", [
            "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:\(other):127.0.0.1:\(echoPort)", "web-01@127.0.0.1", "--", "ssh-add", "-l",
        ]))
        XCTAssertEqual(r.status, 255)
        XCTAssertTrue(r.err.contains("remote port forwarding failed"), r.err)
        let refusal = try XCTUnwrap(f.awaitAudit { $0.event.action == "session.request" && $0.event.details["request"]?.contains(":\(other)") == true })
        XCTAssertEqual(refusal.event.details["rule"], "remote_forwards")
    }

    func testForwardsPerConnectionAreBounded() throws {
        // limits.max_forwards is 3 in this fixture: a fourth listener on one connection is refused.
        // Distinct specs (the client drops duplicates); the local end is never used.
        let specs = (1...4).flatMap { ["-R", "localhost:0:127.0.0.1:\($0)"] }
        let r = try runBinary("/usr/bin/ssh", sshArguments(certificate: "tunnel-cert.pub", ["-o", "ExitOnForwardFailure=yes"] + specs + [
            "web-01@127.0.0.1", "--", "ssh-add", "-l",
        ]))
        XCTAssertEqual(r.status, 255)
        XCTAssertTrue(r.err.contains("remote port forwarding failed"), r.err)
        let refusal = try XCTUnwrap(f.awaitAudit { $0.event.action == "session.request" && $0.event.details["code"] == "limit" })
        XCTAssertTrue(refusal.event.details["reason"]?.contains("limits.max_forwards") ?? false)
        XCTAssertEqual(try f.auditRecords().filter { $0.event.action == "policy.decision" && $0.event.details["session"] == refusal.event.details["session"] }.count, 3)
    }

    // MARK: -A

    func testAgentForwardingReachesTheAgentsOwnSSHAgent() throws {
        let socket = f.directory.appendingPathComponent("fwd-agent.sock").path
        let agent = try spawnDaemon("/usr/bin/ssh-agent", ["-D", "-a", socket])
        defer { kill(agent, SIGTERM); var s: Int32 = 0; waitpid(agent, &s, 0) }
        XCTAssertTrue(Self.waitFor { FileManager.default.fileExists(atPath: socket) }, "ssh-agent never made its socket")
        let key = f.directory.appendingPathComponent("forwarded-key").path
        _ = try runBinary("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "forwarded-key", "-f", key])
        let added = try runBinary("/usr/bin/ssh-add", ["-q", key], environment: ["SSH_AUTH_SOCK": socket])
        XCTAssertEqual(added.status, 0, added.err)
        let fingerprint = try runBinary("/usr/bin/ssh-keygen", ["-l", "-f", key + ".pub"]).out.split(separator: " ")[1]

        let granted = try runBinary("/usr/bin/ssh", sshArguments(certificate: "tunnel-cert.pub", ["-A", "web-01@127.0.0.1", "--", "ssh-add", "-l"]),
                                    environment: ["SSH_AUTH_SOCK": socket, "PATH": "/usr/bin:/bin"])
        XCTAssertEqual(granted.status, 0, granted.err)
        XCTAssertTrue(granted.out.contains(fingerprint), "the target listed the agent's key: \(granted.out)")
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "forward.end" && $0.event.object == "agent-forwarding" && $0.event.details["key_id"] == "agent:tunnels" })

        // Without -A nothing is forwarded: ssh-add on the target finds no agent (exit 2).
        let without = try runBinary("/usr/bin/ssh", sshArguments(certificate: "tunnel-cert.pub", ["web-01@127.0.0.1", "--", "ssh-add", "-l"]),
                                    environment: ["SSH_AUTH_SOCK": socket, "PATH": "/usr/bin:/bin"])
        XCTAssertEqual(without.status, 2, without.out + without.err)
    }

    // MARK: -X

    func testX11ForwardingReachesTheAgentsDisplay() throws {
        var display = 70
        while FileManager.default.fileExists(atPath: "/tmp/.X11-unix/X\(display)") || FileManager.default.fileExists(atPath: "/tmp/.X\(display)-lock") { display += 1 }
        let xvfb = try spawnDaemon("/usr/bin/Xvfb", [":\(display)", "-nolisten", "tcp", "-ac", "-screen", "0", "320x200x24"])
        defer { kill(xvfb, SIGTERM); var s: Int32 = 0; waitpid(xvfb, &s, 0) }
        XCTAssertTrue(Self.waitFor { FileManager.default.fileExists(atPath: "/tmp/.X11-unix/X\(display)") }, "Xvfb never started")
        let r = try runBinary("/usr/bin/ssh", sshArguments(certificate: "tunnel-cert.pub", ["-Y", "web-01@127.0.0.1", "--", "xdpyinfo"]),
                              environment: ["DISPLAY": ":\(display)", "PATH": "/usr/bin:/bin", "HOME": f.directory.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("dimensions:    320x200 pixels"), "xdpyinfo on the target saw the agent's display: \(r.out.prefix(400))")
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "forward.end" && $0.event.object == "x11" && $0.event.details["key_id"] == "agent:tunnels" })
    }

    // MARK: helpers

    static func waitFor(_ timeout: TimeInterval = 10, _ condition: () -> Bool) -> Bool {
        let until = Date().addingTimeInterval(timeout)
        while Date() < until {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    static func waitUntilListening(_ port: Int) -> Bool {
        waitFor {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
        }
    }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
