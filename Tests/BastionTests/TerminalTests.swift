import Foundation
import XCTest
@testable import Bastion

/// A shell under `ssh -tt` in a real terminal (tmux): the target sees the terminal's size,
/// a resize, and the TERM of the client.
final class TerminalTests: SharedFixtureTestCase {
    let socketName = "gatehouse-test-\(getpid())"


    func tmux(_ arguments: [String]) throws -> BinaryResult {
        try runBinary("/usr/bin/tmux", ["-L", socketName, "-f", "/dev/null"] + arguments)
    }

    /// Polls the pane until `text` appears, with a deadline.
    func waitForPane(_ predicate: (String) -> Bool, timeout: TimeInterval = 15) throws -> String {
        let until = Date().addingTimeInterval(timeout)
        var pane = ""
        while Date() < until {
            pane = try tmux(["capture-pane", "-p", "-t", "t"]).out
            if predicate(pane) { return pane }
            usleep(50_000)
        }
        XCTFail("pane never matched; it shows:\n\(pane)")
        return pane
    }

    func testShellUnderPTYSeesItsSizeAResizeAndTERM() throws {
        let command = ["/usr/bin/ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                       "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path,
                       "-o", "CertificateFile=\(f.directory.appendingPathComponent("agent-cert.pub").path)", "-p", String(f.bastionPort),
                       "-tt", "web-01@127.0.0.1"].joined(separator: " ")
        // The tmux server outlives this call and closes inherited descriptors, which Foundation's
        // Process mistakes for an exit: spawn it directly and wait for the client by pid.
        let client = try spawnDaemon("/usr/bin/tmux", ["-L", socketName, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "40",
                                                       "env TERM=xterm-256color " + command])
        var status: Int32 = 0
        waitpid(client, &status, 0)
        XCTAssertEqual(status, 0)
        defer { _ = try? tmux(["kill-server"]) }
        _ = try tmux(["set-option", "-t", "t", "status", "off"])
        _ = try waitForPane { $0.contains("#") || $0.contains("$") }
        _ = try tmux(["send-keys", "-t", "t", "echo size=$(stty size) term=$TERM", "Enter"])
        let first = try waitForPane { $0.contains("size=40 120") }
        XCTAssertTrue(first.contains("term=xterm-256color"), first)
        _ = try tmux(["resize-window", "-t", "t", "-x", "100", "-y", "30"])
        _ = try tmux(["send-keys", "-t", "t", "echo size=$(stty size)", "Enter"])
        _ = try waitForPane { $0.contains("size=30 100") }
        _ = try tmux(["send-keys", "-t", "t", "exit 7", "Enter"])
        let end = f.awaitAudit { $0.event.action == "session.end" && $0.event.details["exit_status"] == "7" }
        XCTAssertNotNil(end, "the shell's exit status reached the audit log")
    }

    func testPythonClientSeesItsRequestedTerminalSizeAndExactOutput() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python/client.py").path
        let key = f.agentKey.path, cert = f.directory.appendingPathComponent("agent-cert.pub").path
        let pty = try runBinary("/usr/bin/env", ["python3", script, "pty-size", String(f.bastionPort), "web-01", key, cert])
        XCTAssertEqual(pty.status, 0, pty.err)
        let ptyResult = try JSONSerialization.jsonObject(with: pty.stdout) as? [String: Any]
        XCTAssertEqual((ptyResult?["stdout"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines), "43 132")

        let exec = try runBinary("/usr/bin/env", ["python3", script, "exec", String(f.bastionPort), "web-01", key, cert,
                                                  "sh -c 'cat; printf e >&2; exit 5'"], stdin: Data([0, 1, 2, 255, 10]))
        XCTAssertEqual(exec.status, 0, exec.err)
        let execResult = try JSONSerialization.jsonObject(with: exec.stdout) as? [String: Any]
        XCTAssertEqual(execResult?["exit_status"] as? Int, 5)
        XCTAssertEqual(execResult?["stdout"] as? String, "000102ff0a")
        XCTAssertEqual(execResult?["stderr"] as? String, "65")
    }
}
