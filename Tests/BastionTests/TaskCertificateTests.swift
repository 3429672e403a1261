import Foundation
import SSHCertificates
import XCTest
@testable import Bastion

/// Certificates narrowed to one task, through a live bastion in front of a real sshd, with the
/// stock OpenSSH clients: the task's commands run, everything else its scopes would allow is
/// refused with the limit that refused it, and a narrowing that does not parse refuses the login.
final class TaskCertificateTests: SharedFixtureTestCase {
    override class func makeFixture() throws -> BastionFixture {
        try BastionFixture(extraScopes: """
          wide:
            targets: ["web-*"]
            rights: [exec, shell, pty, sftp, scp, forward-local, agent-forwarding]
            commands: ["echo {words...}", "true", "id -un", "hostname"]
            forwards: ["127.0.0.1:1-65535"]
        """)
    }

    static let forwarding = CertificateTemplate.defaultUserExtensions + [CertificateExtension.permitPortForwarding, CertificateExtension.permitAgentForwarding].map { CertificateOption.flag($0) }

    @discardableResult
    func issueTask(targets: String? = nil, commands: String? = nil, maxSessions: String? = nil, keyID: String, output: String) throws -> SSHCertificate {
        var extensions = Self.forwarding
        if let targets { extensions.append(CertificateOption(name: CertificateExtension.targets, value: targets)) }
        if let commands { extensions.append(CertificateOption(name: CertificateExtension.commands, value: commands)) }
        if let maxSessions { extensions.append(CertificateOption(name: CertificateExtension.maxSessions, value: maxSessions)) }
        return try f.issueAgentCertificate(scopes: ["wide"], keyID: keyID, extensions: extensions, output: output)
    }

    func denialLine(_ stderr: String) -> [String: Any]? {
        guard let line = stderr.split(separator: "\n").first(where: { $0.hasPrefix("gatehouse-denial: ") }) else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(line.dropFirst("gatehouse-denial: ".count).utf8)) as? [String: Any]
    }

    func testTheTasksCommandsRunAndEverythingElseTheScopeAllowsIsRefused() throws {
        try issueTask(targets: "web-01", commands: #"["echo planned step","id -un"]"#, keyID: "agent:task-plan", output: "plan-cert.pub")
        let first = try f.ssh("web-01", ["echo", "planned", "step"], certificate: "plan-cert.pub")
        XCTAssertEqual(first.status, 0, first.err)
        XCTAssertEqual(first.out, "planned step\n")
        let second = try f.ssh("web-01", ["id", "-un"], certificate: "plan-cert.pub")
        XCTAssertEqual(second.status, 0, second.err)
        XCTAssertEqual(second.out, f.login + "\n")

        let before = f.targetConnectionCount()
        // Allowed by the scope, outside the task's commands.
        let stray = try f.ssh("web-01", ["hostname"], certificate: "plan-cert.pub")
        XCTAssertEqual(stray.status, 77)
        XCTAssertEqual(denialLine(stray.err)?["rule"] as? String, "task-commands", stray.err)
        XCTAssertEqual(denialLine(stray.err)?["accepted_patterns"] as? [String], ["echo planned step", "id -un"], "the agent is shown its plan")
        XCTAssertEqual(stray.out, "")
        // Allowed by the scope, outside the task's targets.
        let elsewhere = try f.ssh("web-kh", ["id", "-un"], certificate: "plan-cert.pub")
        XCTAssertEqual(elsewhere.status, 77)
        XCTAssertEqual(denialLine(elsewhere.err)?["rule"] as? String, "task-targets", elsewhere.err)
        let audit = try XCTUnwrap(f.awaitAudit { $0.event.action == "policy.decision" && $0.event.details["rule"] == "task-targets" })
        XCTAssertEqual(audit.event.outcome, .refused)
        XCTAssertEqual(audit.event.details["code"], "outside-task")
        XCTAssertEqual(audit.event.details["key_id"], "agent:task-plan")
        XCTAssertNotNil(audit.event.details["serial"])
        XCTAssertTrue(f.waitForIdle())
        XCTAssertEqual(f.targetConnectionCount(), before, "refused requests never reach the target")
    }

    /// A task limited to commands opens no shell, no sftp or scp, no forward, no agent forwarding.
    func testEveryOtherPathIsRefusedForACommandTask() throws {
        try issueTask(commands: #"["true"]"#, keyID: "agent:paths", output: "paths-cert.pub")
        let before = f.targetConnectionCount()
        let shell = try f.ssh("web-01", [], certificate: "paths-cert.pub", stdin: Data("echo from-a-shell\n".utf8))
        XCTAssertEqual(shell.status, 77)
        XCTAssertFalse(shell.out.contains("from-a-shell"))
        XCTAssertEqual(denialLine(shell.err)?["rule"] as? String, "task-commands", shell.err)

        let batch = f.directory.appendingPathComponent("task-sftp-batch")
        try "ls /\n".write(to: batch, atomically: true, encoding: .utf8)
        let common = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                      "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path, "-o", "CertificateFile=\(f.directory.appendingPathComponent("paths-cert.pub").path)"]
        let sftp = try runBinary("/usr/bin/sftp", common + ["-P", String(f.bastionPort), "-b", batch.path, "web-01@127.0.0.1"])
        XCTAssertNotEqual(sftp.status, 0)
        let source = f.directory.appendingPathComponent("task-scp.txt")
        try "x\n".write(to: source, atomically: true, encoding: .utf8)
        let scp = try runBinary("/usr/bin/scp", ["-O"] + common + ["-P", String(f.bastionPort), source.path, "web-01@127.0.0.1:/tmp/gatehouse-task-scp"])
        XCTAssertNotEqual(scp.status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/gatehouse-task-scp"))
        let forward = try f.ssh("web-01", [], options: ["-W", "127.0.0.1:\(f.targetPort)"], certificate: "paths-cert.pub")
        XCTAssertEqual(forward.status, 255)
        let agent = try f.ssh("web-01", ["true"], options: ["-A"], certificate: "paths-cert.pub")
        XCTAssertEqual(agent.status, 0, "the listed command runs; the agent forwarding beside it is refused: \(agent.err)")

        for request in ["sftp", "port-forwarding-local"] {
            XCTAssertNotNil(f.awaitAudit { $0.event.details["key_id"] == "agent:paths" && $0.event.outcome == .refused
                && $0.event.details["rule"] == "task-commands" && ($0.event.object == request || $0.event.details["request"]?.contains(request) == true) },
                            "\(request) refused by task-commands and audited")
        }
        XCTAssertNotNil(f.awaitAudit { $0.event.details["key_id"] == "agent:paths" && $0.event.outcome == .refused && $0.event.details["rule"] == "task-commands"
            && $0.event.details["request"]?.contains("scp") == true })
        XCTAssertTrue(f.waitForIdle())
        // At most the one allowed `true` reached the target.
        XCTAssertLessThanOrEqual(f.targetConnectionCount(), before + 1)
    }

    /// Minted by plain `ssh-keygen -s` with the user CA, as a break-glass admin would: a narrowing
    /// the bastion cannot read refuses the login, never grants the scopes unnarrowed.
    func testMalformedNarrowingFromSSHKeygenIsRefusedAtLogin() throws {
        let keys = f.directory.appendingPathComponent("state/ca/user/keys")
        let caKey = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: keys.path).first { $0.hasSuffix(".key") })
        let cases = [
            "commands@gatehouse=uptime", "commands@gatehouse=[\"echo {x\"]", "commands@gatehouse=[\"echo a; id\"]",
            "targets@gatehouse=web 01", "max-sessions@gatehouse=0", "max-sessions@gatehouse=many", "narrower@gatehouse=yes",
        ]
        for (i, narrowing) in cases.enumerated() {
            let pub = f.directory.appendingPathComponent("agent.pub").path
            let output = f.directory.appendingPathComponent("agent-cert.pub")
            let saved = try Data(contentsOf: output)
            defer { try? saved.write(to: output) }
            _ = try runChecked("/usr/bin/ssh-keygen", ["-q", "-s", keys.appendingPathComponent(caKey).path, "-I", "agent:keygen-\(i)", "-n", "agent",
                                                       "-V", "-1m:+10m", "-z", String(9000 + i), "-O", "extension:scopes@gatehouse=wide",
                                                       "-O", "extension:\(narrowing)", pub])
            try FileManager.default.copyItem(at: output, to: f.directory.appendingPathComponent("keygen-\(i)-cert.pub"))
            try saved.write(to: output)
            let r = try f.ssh("web-01", ["echo", "unrestricted"], certificate: "keygen-\(i)-cert.pub")
            XCTAssertEqual(r.status, 255, narrowing)
            XCTAssertFalse(r.out.contains("unrestricted"), narrowing)
            let refusal = try XCTUnwrap(f.awaitAudit { $0.event.action == "ssh.login" && $0.event.outcome == .refused && $0.event.details["cert_serial"] == String(9000 + i) },
                                        narrowing)
            XCTAssertEqual(refusal.event.details["code"], "malformed-option", narrowing)
        }
    }

    func testASessionBudgetIsSpentOnceEvenByConcurrentSessions() throws {
        try issueTask(commands: #"["echo budget"]"#, maxSessions: "2", keyID: "agent:budget", output: "budget-cert.pub")
        let arguments = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                         "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path,
                         "-o", "CertificateFile=\(f.directory.appendingPathComponent("budget-cert.pub").path)",
                         "-p", String(f.bastionPort), "web-01@127.0.0.1", "--", "echo", "budget"]
        let buffer = UnsafeMutableBufferPointer<BinaryResult?>.allocate(capacity: 5)
        buffer.initialize(repeating: nil)
        defer { buffer.deallocate() }
        nonisolated(unsafe) let slots = buffer
        DispatchQueue.concurrentPerform(iterations: 5) { i in slots[i] = try? runBinary("/usr/bin/ssh", arguments) }
        let results = buffer.compactMap { $0 }
        XCTAssertEqual(results.count, 5, "every ssh started")
        XCTAssertEqual(results.filter { $0.status == 0 && $0.out == "budget\n" }.count, 2, results.map(\.err).joined(separator: "\n"))
        let refused = results.filter { $0.status == 77 }
        XCTAssertEqual(refused.count, 3)
        for r in refused { XCTAssertEqual(denialLine(r.err)?["rule"] as? String, "task-max-sessions", r.err) }

        // The count is on disk: a fresh ledger on the same directory (what a restarted bastion
        // opens) finds it spent. The restart of a real `gatehouse serve` is in the Python suite.
        let reopened = SessionBudgetLedger(directory: f.directory.appendingPathComponent("state/session-budgets").path)
        let certificate = try SSHCertificate(openSSHLine: try String(contentsOf: f.directory.appendingPathComponent("budget-cert.pub"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines))
        let key = AgentCredential.budgetKey(of: certificate)
        XCTAssertEqual(reopened.take(key: key, limit: 2, validBefore: certificate.validBefore), .exhausted(used: 2))
    }
}

/// The reserved target's commands, parsed strictly with the same splitter as every exec.
final class ReservedTargetParseTests: XCTestCase {
    func testOnlyApprovalWaitAndShowAreKnown() {
        XCTAssertEqual(try? ApprovalDesk.parse("approval wait apr-1a2b").get(), .wait(id: "apr-1a2b", timeout: nil))
        XCTAssertEqual(try? ApprovalDesk.parse("approval wait apr-1a2b --timeout 50").get(), .wait(id: "apr-1a2b", timeout: 50))
        XCTAssertEqual(try? ApprovalDesk.parse("approval show apr-1a2b").get(), .show(id: "apr-1a2b"))
        for bad in ["", "uptime", "approval", "approval wait", "approval wait apr-1; id", "approval wait ../x", "approval wait apr-1 --timeout -1",
                    "approval wait apr-1 --timeout soon", "approval approve apr-1", "approval show apr-1 extra"] {
            guard case .failure(let refusal) = ApprovalDesk.parse(bad) else { XCTFail("accepted \"\(bad)\""); continue }
            XCTAssertEqual(refusal.rule, "reserved-target", bad)
        }
    }
}

/// The session budget is keyed by what the CA signed, not by the signature: a holder who
/// re-encodes the signature (ECDSA's s → n−s verifies too) gets the same budget, not a fresh one.
final class SessionBudgetKeyTests: XCTestCase {
    func testTheKeyIgnoresTheSignatureBytes() throws {
        let ca = try SSHPrivateKey.generate(.ecdsaP256)
        let subject = try SSHPrivateKey.generate(.ed25519)
        let (after, before) = CertificateTemplate.validFor(600, from: UInt64(Date().timeIntervalSince1970))
        let certificate = try CertificateTemplate(key: subject.publicKey, type: .user, serial: 7, keyID: "agent:budget", principals: ["agent"],
                                                  validAfter: after, validBefore: before,
                                                  extensions: [CertificateOption(name: CertificateExtension.maxSessions, value: "1")]).sign(with: ca)
        // The same signed bytes with a different signature blob (its last byte changed): parses,
        // does not verify — and must not be a different budget.
        var blob = certificate.blob
        blob[blob.count - 1] ^= 0x01
        let altered = try SSHCertificate(blob: blob)
        XCTAssertNotEqual(altered.blob, certificate.blob)
        XCTAssertEqual(AgentCredential.budgetKey(of: altered), AgentCredential.budgetKey(of: certificate))
        // A different certificate (another serial) is another budget.
        let other = try CertificateTemplate(key: subject.publicKey, type: .user, serial: 8, keyID: "agent:budget", principals: ["agent"],
                                            validAfter: after, validBefore: before).sign(with: ca)
        XCTAssertNotEqual(AgentCredential.budgetKey(of: other), AgentCredential.budgetKey(of: certificate))
    }
}
