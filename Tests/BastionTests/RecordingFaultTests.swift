import Crypto
import Foundation
import Recording
import XCTest
@testable import Bastion

/// The recorder under faults: a full disk and a killed Gatehouse.
final class RecordingFaultTests: FreshFixtureTestCase {

    func testFullDiskEndsTheLiveSessionAndRefusesNewOnes() throws {
        let directory = f.directory.appendingPathComponent("recordings").path
        // A 256 KiB tmpfs over the recordings directory.
        let mount = try runBinary("/bin/mount", ["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", directory])
        guard mount.status == 0 else { throw XCTSkip("cannot mount a tmpfs here: \(mount.err)") }
        defer { _ = try? runBinary("/bin/umount", ["-l", directory]) }
        // 4 MiB of output cannot be recorded in 256 KiB: the session is ended, not continued unrecorded.
        let r = try f.ssh("web-01", ["head", "-c", "4000000", "/dev/zero"])
        XCTAssertEqual(r.status, 255)
        XCTAssertLessThan(r.stdout.count, 4_000_000, "the output stopped when recording failed")
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.recording" && ($0.event.details["reason"] ?? "").contains("ENOSPC") })
        // Fail closed, byte for byte: the agent received exactly what the recording holds.
        let name = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".ghrec") })
        let recorded = try RecordingExporter.export(path: "\(directory)/\(name)", format: .raw, stream: .stdout).bytes
        XCTAssertEqual(Data(recorded), r.stdout, "agent bytes == recorded bytes (\(r.stdout.count) received, \(recorded.count) recorded)")
        // Fill what is left: the next session cannot write its recording's header and is refused
        // before anything reaches the target.
        let filler = "\(directory)/filler"
        let fd = open(filler, O_WRONLY | O_CREAT, 0o600)
        let block = [UInt8](repeating: 0, count: 4096)
        while write(fd, block, block.count) > 0 {}
        close(fd)
        let before = f.targetConnectionCount()
        let next = try f.ssh("web-01", ["echo", "unrecorded"])
        XCTAssertEqual(next.status, 255)
        XCTAssertEqual(next.out, "")
        XCTAssertTrue(f.waitForIdle())
        XCTAssertEqual(f.targetConnectionCount(), before)
    }

    func testKilledGatehouseLeavesARecordingThatRecoversAsACrash() throws {
        let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/gatehouse").path
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw XCTSkip("\(binary) not built") }
        let port = try freePort()
        let config = f.directory.appendingPathComponent("gatehouse.yaml").path
        func startServe() throws -> Child {
            let serve = try Child(binary, ["serve", "--config", config, "--listen", "127.0.0.1:\(port)"])
            // Wait for its "listening" line.
            var seen = Data()
            while !String(decoding: seen, as: UTF8.self).contains("listening on") {
                let chunk = serve.stdout.availableData
                if chunk.isEmpty { break }
                seen.append(chunk)
            }
            return serve
        }
        let serve = try startServe()
        // A busy session: a numbered line every 10 ms.
        let client = try Child("/usr/bin/ssh", ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                                "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f.agentKey.path,
                                                "-o", "CertificateFile=\(f.directory.appendingPathComponent("agent-cert.pub").path)", "-p", String(port),
                                                "web-01@127.0.0.1", "--", "sh", "-c", "'i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.01; done'"])
        var received = Data()
        let began = Date()
        while Date().timeIntervalSince(began) < 2.5 {
            let chunk = client.stdout.availableData
            if chunk.isEmpty { break }
            received.append(chunk)
        }
        kill(serve.pid, SIGKILL)
        _ = serve.wait()
        received.append(client.stdout.readDataToEndOfFile())
        XCTAssertNotNil(client.wait(timeout: 10), "the client saw the connection end")
        let linesReceived = String(decoding: received, as: UTF8.self).split(separator: "\n").count
        XCTAssertGreaterThan(linesReceived, 50, "the session was busy")

        // A restart closes the unfinished recording as a crash.
        let restarted = try startServe()
        kill(restarted.pid, SIGTERM)
        XCTAssertEqual(restarted.wait(timeout: 10), 0, "gatehouse serve stops on SIGTERM")
        let directory = f.directory.appendingPathComponent("recordings").path
        let name = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".ghrec") })
        let report = RecordingVerifier.verify(path: "\(directory)/\(name)", trustedKeys: f.store.trustedPublicKeys(.recording))
        XCTAssertEqual(report.end, .crash, report.verdict + " audit: " + ((try? f.auditRecords().filter { $0.event.action.hasPrefix("recording") || $0.event.action.hasPrefix("server") }.map { "\($0.event)" }.joined(separator: "; ")) ?? ""))
        XCTAssertTrue(report.problems.isEmpty, "\(report.problems)")
        let recorded = try RecordingExporter.export(path: "\(directory)/\(name)", format: .raw, stream: .stdout).bytes
        let recordedLines = String(decoding: recorded, as: UTF8.self).split(separator: "\n").count
        // Released to the agent only once written: everything the agent saw survived the kill.
        XCTAssertTrue(Data(recorded).starts(with: received), "the agent's bytes are a prefix of the recording (\(received.count) received, \(recorded.count) recorded)")
        XCTAssertGreaterThanOrEqual(recordedLines, linesReceived, "recorded \(recordedLines) of \(linesReceived) lines")
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "recording.recover" && $0.event.outcome == .success })
    }
}
