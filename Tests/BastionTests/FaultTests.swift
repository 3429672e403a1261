import Foundation
import XCTest
@testable import Bastion

/// Things going wrong on either side: each ends with a clear message, a closed session, an
/// audit record, and no descriptor left behind.
final class FaultTests: SharedFixtureTestCase {


    func testTargetDownGivesAClearMessage() throws {
        let r = try f.ssh("web-down", ["true"])
        XCTAssertEqual(r.status, 255)
        XCTAssertTrue(r.err.hasPrefix("gatehouse: target web-down could not be reached:"), r.err)
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.target" && $0.event.details["code"] == "target_unreachable" })
    }

    func testTargetRefusingTheLoginGivesAClearMessage() throws {
        let r = try f.ssh("web-nologin", ["true"])
        XCTAssertEqual(r.status, 255)
        XCTAssertTrue(r.err.contains("target web-nologin refused Gatehouse's certificate for login \"no-such-user-here\""), r.err)
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.target" && $0.event.details["code"] == "target_auth_refused" })
    }

    func testChangedTargetHostKeyRefusesTheSession() throws {
        let before = try String(contentsOf: f.sshdLog, encoding: .utf8).components(separatedBy: "Accepted publickey").count
        let r = try f.ssh("web-wrongkey", ["true"])
        XCTAssertEqual(r.status, 255)
        XCTAssertTrue(r.err.contains("failed host key verification"), r.err)
        XCTAssertTrue(r.err.contains("is not the pinned key"), r.err)
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.target" && $0.event.details["code"] == "target_host_key" })
        let after = try String(contentsOf: f.sshdLog, encoding: .utf8).components(separatedBy: "Accepted publickey").count
        XCTAssertEqual(before, after, "Gatehouse never authenticated to a target whose host key did not match")
    }

    func testTargetDroppingMidStreamEndsTheSessionWithAMessage() throws {
        // The command's own sshd session process is killed: the TCP connection dies mid-output.
        let r = try f.ssh("web-01", ["sh", "-c", "'echo started; sleep 0.2; kill -9 $PPID; sleep 5'"])
        XCTAssertEqual(r.out, "started\n")
        XCTAssertEqual(r.status, 255)
        XCTAssertTrue(r.err.contains("gatehouse: "), r.err)
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.end" && $0.event.outcome == .failure && ($0.event.details["reason"] ?? "").contains("web-01") })
    }

    func testClientDroppingMidStreamClosesTheTargetSession() throws {
        let marker = "gatehouse-drop-\(UInt32.random(in: 0 ... .max))"
        // A duration no other process on the machine has on its command line: pgrep sees them all.
        let sleeper = "sleep 300.\(UInt32.random(in: 100_000 ... 999_999))"
        let p = try Child("/usr/bin/ssh", ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                           "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path,
                                           "-o", "CertificateFile=\(f.directory.appendingPathComponent("agent-cert.pub").path)", "-p", String(f.bastionPort),
                                           "-tt", "web-01@127.0.0.1", "--", "sh", "-c", "'echo \(marker); exec \(sleeper)'"])
        // Wait until the remote command runs, then kill the client outright.
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains(marker) {
            let chunk = p.stdout.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
        }
        XCTAssertTrue(String(decoding: seen, as: UTF8.self).contains(marker))
        kill(p.pid, SIGKILL)
        _ = p.wait()
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.end" && $0.event.details["reason"] == "client disconnected" })
        // The target's `sleep 300` goes away with its session: Gatehouse asks for HUP and TERM
        // (sshd honours signal requests only for non-root logins) and closes the channel, and
        // sshd hangs up the pty.
        let until = Date().addingTimeInterval(10)
        var alive = true
        while alive, Date() < until {
            alive = (try? runBinary("/usr/bin/pgrep", ["-f", sleeper]))?.status == 0
            if alive { usleep(50_000) }
        }
        XCTAssertFalse(alive, "the target process outlived the client")
    }

    func testNoDescriptorLeaksAcrossSessionsAndFaults() throws {
        // Warm up once so lazily opened descriptors (resolver, urandom) are already counted.
        _ = try f.ssh("web-01", ["true"])
        _ = try f.ssh("web-down", ["true"])
        XCTAssertTrue(f.waitForIdle())
        // Sockets and files are what a session holds (both SSH connections, the recording); the
        // shared test process opens other descriptors lazily (dispatch, pipes of other tests).
        func sessionDescriptors() -> [String] {
            openFileDescriptorTargets().filter { $0.hasPrefix("socket:") || $0.hasPrefix(f.directory.path) }
        }
        let before = sessionDescriptors().count
        for _ in 0..<3 {
            _ = try f.ssh("web-01", ["echo", "x"])
            _ = try f.ssh("web-down", ["true"])
            _ = try f.ssh("web-wrongkey", ["true"])
            _ = try f.ssh("web-99", ["true"])
            _ = try f.ssh("web-01", ["rm", "x"])
            _ = try f.ssh("web-01", ["sh", "-c", "'kill -9 $PPID'"])
        }
        XCTAssertTrue(f.waitForIdle())
        XCTAssertEqual(sessionDescriptors().count, before, "descriptors leaked: \(openFileDescriptorTargets())")
        XCTAssertEqual(f.server.context.connections.sessions, 0)
        XCTAssertEqual(f.server.context.admission.inFlight, 0)
    }
}
