import Audit
import Foundation
import Recording
import XCTest
@testable import Bastion

/// Many session channels on one agent connection: OpenSSH ControlMaster, asyncssh and paramiko,
/// each session decided, recorded and audited on its own, all sharing one target connection.
final class MultiplexingTests: SharedFixtureTestCase {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python/sessions.py").path

    func python(_ mode: String, _ extra: [String] = []) throws -> [String: Any] {
        let r = try runBinary("/usr/bin/env", ["python3", Self.script, mode, String(f.bastionPort), "web-01", f.agentKey.path,
                                               f.directory.appendingPathComponent("agent-cert.pub").path] + extra)
        XCTAssertEqual(r.status, 0, r.err)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: r.stdout) as? [String: Any], r.out + r.err)
    }


    func testAsyncsshRunsConcurrentAndSequentialCommandsOnOneConnection() throws {
        let targetConnectionsBefore = f.server.context.connections.targetConnectionsMade
        let startsBefore = try f.auditRecords().filter { $0.event.action == "session.start" }.count
        let result = try python("asyncssh-many", ["5"])
        let concurrent = try XCTUnwrap(result["concurrent"] as? [[String: Any]])
        let sequential = try XCTUnwrap(result["sequential"] as? [[String: Any]])
        XCTAssertEqual(concurrent.map { $0["stdout"] as? String }, (0..<5).map { "c\($0)\n" })
        XCTAssertEqual(sequential.map { $0["stdout"] as? String }, (0..<5).map { "s\($0)\n" })
        XCTAssertEqual(Set((concurrent + sequential).compactMap { $0["exit_status"] as? Int }), [0])
        XCTAssertTrue(f.waitForIdle())
        XCTAssertEqual(f.server.context.connections.targetConnectionsMade - targetConnectionsBefore, 1, "ten sessions, one target connection")
        let starts = try f.auditRecords().filter { $0.event.action == "session.start" }.dropFirst(startsBefore)
        XCTAssertEqual(starts.count, 10)
        XCTAssertEqual(Set(starts.compactMap { $0.event.details["session"] }).count, 1, "one connection")
        XCTAssertEqual(Set(starts.compactMap { $0.event.details["channel"] }).count, 10, "each session its own channel")
        // Each session has its own recording, and each verifies.
        let recordings = starts.compactMap { $0.event.details["recording"] }
        XCTAssertEqual(Set(recordings).count, 10)
        for path in recordings {
            let report = RecordingVerifier.verify(path: path, trustedKeys: f.store.trustedPublicKeys(.recording))
            XCTAssertTrue(report.problems.isEmpty, "\(path): \(report.verdict)")
        }
    }

    func testParamikoRunsSeveralCommandsOnOneTransport() throws {
        let targetConnectionsBefore = f.server.context.connections.targetConnectionsMade
        let result = try python("paramiko-many", ["4"])
        let runs = try XCTUnwrap(result["results"] as? [[String: Any]])
        XCTAssertEqual(runs.map { $0["stdout"] as? String }, (0..<4).map { "p\($0)\n" })
        XCTAssertEqual(Set(runs.compactMap { $0["exit_status"] as? Int }), [0])
        XCTAssertTrue(f.waitForIdle())
        XCTAssertEqual(f.server.context.connections.targetConnectionsMade - targetConnectionsBefore, 1)
    }

    func testOpenSSHControlMasterMultiplexes() throws {
        let control = f.directory.appendingPathComponent("cm-\(UUID().uuidString.prefix(6))").path
        let startsBefore = try f.auditRecords().filter { $0.event.action == "session.start" }.count
        let targetConnectionsBefore = f.server.context.connections.targetConnectionsMade
        // The master runs a session of its own; the commands below are its mux clients.
        let master = try Child("/usr/bin/ssh", ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                                "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path,
                                                "-o", "CertificateFile=\(f.directory.appendingPathComponent("agent-cert.pub").path)", "-p", String(f.bastionPort),
                                                "-M", "-S", control, "web-01@127.0.0.1", "--", "sleep", "20"])
        defer { kill(master.pid, SIGTERM); _ = master.wait(timeout: 10) }
        let until = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: control), Date() < until { usleep(20_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: control), "the master is listening")
        let options = ["-o", "ControlMaster=no", "-S", control]
        // Mux clients whose stdin is at EOF close their channel as soon as the output ends: the
        // exit status must already be there (it is sent before the EOF, once recorded).
        for i in 0..<4 {
            let r = try f.ssh("web-01", ["echo", "warm-\(i)"], options: options)
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertEqual(r.out, "warm-\(i)\n")
            let status = try f.ssh("web-01", ["sh", "-c", "'exit \(i + 3)'"], options: options)
            XCTAssertEqual(status.status, Int32(i + 3), "exit status through the mux, run \(i)")
        }
        // A denied command on the shared connection is denied on its own channel only.
        let denied = try f.ssh("web-01", ["rm", "-rf", "/"], options: options)
        XCTAssertEqual(denied.status, 77)
        XCTAssertTrue(denied.err.contains("gatehouse-denial: {"), denied.err)
        let after = try f.ssh("web-01", ["echo", "still-here"], options: options)
        XCTAssertEqual(after.out, "still-here\n")
        let starts = try f.auditRecords().filter { $0.event.action == "session.start" }.dropFirst(startsBefore)
        XCTAssertEqual(starts.count, 10, "the master's sleep and nine commands")
        XCTAssertEqual(Set(starts.compactMap { $0.event.details["session"] }).count, 1, "all on the master's one connection")
        XCTAssertEqual(f.server.context.connections.targetConnectionsMade - targetConnectionsBefore, 1, "and one target connection")
    }

    func testSessionsPastMaxSessionsAreRefusedWithAReason() throws {
        // The fixture's limit is the default, 10: twelve at once leave two refused.
        let r = try runBinary("/usr/bin/env", ["python3", "-c", """
            import asyncio, asyncssh, json, sys
            async def main():
                key = asyncssh.read_private_key(sys.argv[2]); cert = asyncssh.read_certificate(sys.argv[3])
                async with asyncssh.connect("127.0.0.1", port=int(sys.argv[1]), username="web-01", known_hosts=None, client_keys=[(key, cert)]) as conn:
                    runs = await asyncio.gather(*(conn.run("sleep 2", check=False) for _ in range(12)))
                    print(json.dumps([[r.exit_status, r.stderr] for r in runs]))
            asyncio.run(main())
            """, String(f.bastionPort), f.agentKey.path, f.directory.appendingPathComponent("agent-cert.pub").path])
        XCTAssertEqual(r.status, 0, r.err)
        let runs = try XCTUnwrap(JSONSerialization.jsonObject(with: r.stdout) as? [[Any]])
        XCTAssertEqual(runs.filter { $0[0] as? Int == 0 }.count, 10)
        let refused = runs.filter { $0[0] as? Int == 255 }
        XCTAssertEqual(refused.count, 2)
        XCTAssertTrue(refused.allSatisfy { ($0[1] as? String ?? "").contains("limits.max_sessions") }, "\(refused)")
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.open" && $0.event.details["code"] == "max-sessions" })
    }

    func testEveryRequestOnALiveChannelIsRefusedAndAudited() throws {
        let auditBefore = try f.auditRecords().count
        let execsBefore = ((try? String(contentsOf: f.sshdLog, encoding: .utf8)) ?? "").components(separatedBy: "Starting session").count
        let result = try python("live-requests")
        let replies = try XCTUnwrap(result["replies"] as? [String: Bool])
        XCTAssertEqual(replies.count, 8)
        for (request, accepted) in replies { XCTAssertFalse(accepted, "\(request) on a live channel must be refused") }
        XCTAssertEqual(result["exit_status"] as? Int, 0, "the running command was not disturbed")
        XCTAssertTrue(f.waitForIdle())
        let refusals = try f.auditRecords().dropFirst(auditBefore).filter { $0.event.action == "session.request" && $0.event.outcome == .refused }
        let audited = Set(refusals.compactMap { $0.event.details["request"] })
        for name in ["exec", "shell", "subsystem", "pty-req", "x11-req", "env", "auth-agent-req@openssh.com", "unknown channel request"] {
            XCTAssertTrue(audited.contains(name), "\(name) refused without an audit record: \(audited)")
        }
        let execsAfter = ((try? String(contentsOf: f.sshdLog, encoding: .utf8)) ?? "").components(separatedBy: "Starting session").count
        XCTAssertEqual(execsAfter - execsBefore, 1, "only the first exec reached the target")
    }

    func testANewSessionRechecksTheCertificate() throws {
        let now = UInt64(Date().timeIntervalSince1970)
        try f.issueAgentCertificate(scopes: ["ops"], keyID: "agent:short", validity: (now - 60, now + 4), output: "short-cert.pub")
        let r = try runBinary("/usr/bin/env", ["python3", "-c", """
            import asyncio, asyncssh, json, sys
            async def main():
                key = asyncssh.read_private_key(sys.argv[2]); cert = asyncssh.read_certificate(sys.argv[3])
                async with asyncssh.connect("127.0.0.1", port=int(sys.argv[1]), username="web-01", known_hosts=None, client_keys=[(key, cert)]) as conn:
                    first = await conn.run("echo before", check=False)
                    await asyncio.sleep(5)
                    second = await conn.run("echo after", check=False)
                    print(json.dumps([[first.exit_status, first.stdout], [second.exit_status, second.stdout, second.stderr]]))
            asyncio.run(main())
            """, String(f.bastionPort), f.agentKey.path, f.directory.appendingPathComponent("short-cert.pub").path])
        XCTAssertEqual(r.status, 0, r.err)
        let runs = try XCTUnwrap(JSONSerialization.jsonObject(with: r.stdout) as? [[Any]])
        XCTAssertEqual(runs[0][0] as? Int, 0)
        XCTAssertEqual(runs[1][0] as? Int, 255)
        XCTAssertEqual(runs[1][1] as? String, "")
        XCTAssertTrue((runs[1][2] as? String ?? "").contains("certificate no longer holds"), "\(runs[1])")
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.open" && $0.event.outcome == .refused && $0.event.details["key_id"] == "agent:short" })
    }
}
