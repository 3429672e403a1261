import Foundation
import Policy
import XCTest
@testable import Bastion

/// The policy enforced by a live Gatehouse in front of a real sshd.
final class PolicyEnforcementTests: SharedFixtureTestCase {
    static let canary = "/tmp/gatehouse-canary"

    override class func makeFixture() throws -> BastionFixture {
        // The corpus's own allowlist (as in PolicyTests), plus an argv printer for the property test
        // and scopes with and without each right.
        try BastionFixture(extraScopes: """
          corpus:
            targets: [web-01]
            rights: [exec]
            commands:
              - "systemctl status {unit: /[a-z0-9@._-]+/}"
              - "journalctl -u {unit: nginx|postgres} -n {lines: 1..1000}"
              - "cat {file: path under /var/log}"
              - "git status"
              - "git status --porcelain"
              - "uptime"
          argv:
            targets: [web-01]
            rights: [exec]
            commands: ["@DIR@/argv-dump {args...}"]
          files:
            targets: [web-01]
            rights: [sftp, exec]
            commands: ["true"]
          shell-only:
            targets: [web-01]
            rights: [shell]
          legacy-scp:
            targets: [web-01]
            rights: [scp]
        """)
    }

    var script: String { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python").path }

    func testHostileCorpusThroughALiveGatehouseNeverReachesTheTarget() throws {
        unlink(Self.canary)
        try f.issueAgentCertificate(scopes: ["corpus"], keyID: "agent:corpus", output: "corpus-cert.pub")
        let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("PolicyTests/hostile-commands.txt").path
        let r = try runBinary("/usr/bin/env", ["python3", "\(script)/corpus.py", String(f.bastionPort), f.agentKey.path,
                                               f.directory.appendingPathComponent("corpus-cert.pub").path, corpus])
        XCTAssertEqual(r.status, 0, r.err)
        let results = try XCTUnwrap(JSONSerialization.jsonObject(with: r.stdout) as? [[String: Any]])
        XCTAssertGreaterThanOrEqual(results.count, 150)
        var transportRefusals = 0
        for (i, result) in results.enumerated() {
            let code = result["code"] as? String ?? "?"
            if code == "nul-byte" {
                // libssh 0.10 passes the exec string as a C string: the request arrives cut at the
                // NUL, and only that checked prefix can run (never the tail, see the canary below).
                continue
            }
            if code == "empty-command" && result["exit_status"] as? Int == 77 && result["denial"] != nil {
                // asyncssh sends an empty command as a shell request: refused for want of the shell right.
                continue
            }
            if let error = result["transport_error"] as? String {
                // Only the 1 MiB string may be stopped by the SSH transport itself (larger than any packet).
                XCTAssertEqual(code, "too-long", "corpus line \(i + 1): \(error)")
                transportRefusals += 1
                continue
            }
            XCTAssertEqual(result["exit_status"] as? Int, 77, "corpus line \(i + 1) (\(code)) was not denied")
            let denial = result["denial"] as? [String: Any]
            XCTAssertEqual(denial?["rule"] as? String, code, "corpus line \(i + 1): the denial names the rule that refused it")
        }
        XCTAssertLessThanOrEqual(transportRefusals, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: Self.canary), "a hostile command created the canary on the target")
        // Every command that did reach the target is one the policy allowed, exactly as audited.
        let sent = try f.auditRecords().filter { $0.event.action == "policy.decision" && $0.event.outcome == .success && $0.event.details["key_id"] == "agent:corpus" }
        for record in sent {
            XCTAssertFalse(record.event.details["command"]?.contains("canary") ?? true, "allowed: \(record.event.details["command"] ?? "")")
        }
        // Allowed commands of the same scope run and return the target's real output.
        let uptime = try f.ssh("web-01", ["uptime"], certificate: "corpus-cert.pub")
        XCTAssertEqual(uptime.status, 0, uptime.err)
        XCTAssertTrue(uptime.out.contains("load average"), uptime.out)
    }

    func testTheTargetReceivesExactlyTheArgvThatWasChecked() throws {
        try f.issueAgentCertificate(scopes: ["argv"], keyID: "agent:argv", output: "argv-cert.pub")
        var generator = SystemRandomNumberGenerator()
        // Words the splitter accepts when quoted: spaces, quotes, shell syntax, backslashes, options.
        let alphabet = Array("abcXYZ019 -_=.,:/'\"\\;|&$`*?[]{}()<>#!~%^+@")
        for round in 0..<25 {
            // Placeholders never match a word starting with "-" (option injection), so none does here.
            let argv: [String] = (0..<Int.random(in: 1...5, using: &generator)).map { _ in
                var word = String((0..<Int.random(in: 1...12, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
                if word.hasPrefix("-") { word = "w" + word }
                return word
            }
            let command = ShellWords.join([f.directory.appendingPathComponent("argv-dump").path] + argv)
            let r = try f.ssh("web-01", [command], certificate: "argv-cert.pub")
            XCTAssertEqual(r.status, 0, "round \(round) \(argv): \(r.err)")
            // Python's repr of the list of received arguments, compared with the list we meant.
            let expected = "[" + argv.map { pythonRepr($0) }.joined(separator: ", ") + "]"
            XCTAssertEqual(r.out, expected, "round \(round)")
        }
    }

    func testSFTPGrantedByItsRightAndRefusedWithout() throws {
        try f.issueAgentCertificate(scopes: ["files"], keyID: "agent:files", output: "files-cert.pub")
        let batch = f.directory.appendingPathComponent("sftp-batch")
        try "ls \(f.directory.path)\n".write(to: batch, atomically: true, encoding: .utf8)
        let arguments = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                         "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path, "-P", String(f.bastionPort), "-b", batch.path]
        let granted = try runBinary("/usr/bin/sftp", arguments + ["-o", "CertificateFile=\(f.directory.appendingPathComponent("files-cert.pub").path)", "web-01@127.0.0.1"])
        XCTAssertEqual(granted.status, 0, granted.err)
        XCTAssertTrue(granted.out.contains("sftp-batch"), granted.out)
        let refused = try runBinary("/usr/bin/sftp", arguments + ["-o", "CertificateFile=\(f.directory.appendingPathComponent("agent-cert.pub").path)", "web-01@127.0.0.1"])
        XCTAssertNotEqual(refused.status, 0)
    }

    /// Legacy scp (`scp -O`) arrives as an exec of `scp -t …`: its own right, not a command pattern.
    func testLegacySCPGrantedByItsRightAndRefusedWithout() throws {
        try f.issueAgentCertificate(scopes: ["legacy-scp"], keyID: "agent:scp", output: "scp-cert.pub")
        let source = f.directory.appendingPathComponent("scp-source.txt")
        try "copied by legacy scp\n".write(to: source, atomically: true, encoding: .utf8)
        let destination = f.directory.appendingPathComponent("scp-destination.txt").path
        func scp(_ certificate: String) throws -> BinaryResult {
            try runBinary("/usr/bin/scp", ["-O", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                           "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path, "-P", String(f.bastionPort),
                                           "-o", "CertificateFile=\(f.directory.appendingPathComponent(certificate).path)", source.path, "web-01@127.0.0.1:\(destination)"])
        }
        let granted = try scp("scp-cert.pub")
        XCTAssertEqual(granted.status, 0, granted.err)
        XCTAssertEqual(try String(contentsOfFile: destination, encoding: .utf8), "copied by legacy scp\n")
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "policy.decision" && $0.event.details["key_id"] == "agent:scp" && $0.event.outcome == .success })
        unlink(destination)
        try f.issueAgentCertificate(scopes: ["files"], keyID: "agent:no-scp", output: "noscp-cert.pub")
        let refused = try scp("noscp-cert.pub")
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: destination))
        XCTAssertTrue(refused.err.contains("the scp right is not granted"), refused.err)
    }

    func testShellGrantedByItsRightAndRefusedWithout() throws {
        try f.issueAgentCertificate(scopes: ["shell-only"], keyID: "agent:shell", output: "shell-cert.pub")
        let granted = try f.ssh("web-01", [], certificate: "shell-cert.pub", stdin: Data("echo from-a-shell\nexit 4\n".utf8))
        XCTAssertEqual(granted.status, 4, granted.err)
        XCTAssertTrue(granted.out.contains("from-a-shell"), granted.out)
        XCTAssertEqual(try f.ssh("web-01", ["true"], certificate: "shell-cert.pub").status, 77, "a shell right grants no exec")
        try f.issueAgentCertificate(scopes: ["corpus"], keyID: "agent:noshell", output: "noshell-cert.pub")
        let refused = try f.ssh("web-01", [], certificate: "noshell-cert.pub", stdin: Data("echo from-a-shell\n".utf8))
        XCTAssertEqual(refused.status, 77)
        XCTAssertTrue(refused.err.contains("the shell right is not granted"), refused.err)
    }

    func testPTYGrantedByItsRightAndRefusedWithout() throws {
        let granted = try f.ssh("web-01", ["sh", "-c", "tty"], options: ["-tt"])
        XCTAssertTrue(granted.out.hasPrefix("/dev/pts/"), granted.out)
        try f.issueAgentCertificate(scopes: ["corpus"], keyID: "agent:nopty", output: "corpus-nopty-cert.pub")
        let refused = try f.ssh("web-01", ["uptime"], options: ["-tt"], certificate: "corpus-nopty-cert.pub")
        XCTAssertEqual(refused.status, 255)
        XCTAssertTrue(refused.err.contains("PTY allocation request failed"), refused.err)
    }
}

/// Python's repr() of a str made of printable ASCII, as the argv printer writes it.
func pythonRepr(_ s: String) -> String {
    let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
    var out = String(quote)
    for c in s {
        if c == "\\" { out += "\\\\" } else if c == quote { out += "\\\(c)" } else { out.append(c) }
    }
    out.append(quote)
    return out
}
