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
        XCTAssertTrue(r.err.contains("can no longer be recorded"), r.err)
        XCTAssertLessThan(r.stdout.count, 4_000_000, "the output stopped when recording failed")
        XCTAssertNotNil(f.awaitAudit { $0.event.action == "session.recording" && ($0.event.details["reason"] ?? "").contains("ENOSPC") })
        // Fail closed, byte for byte: the agent received exactly what the recording holds.
        let name = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".ghrec") })
        let recorded = try RecordingExporter.export(path: "\(directory)/\(name)", format: .raw, stream: .stdout).bytes
        XCTAssertEqual(Data(recorded), r.stdout, "agent bytes == recorded bytes (\(r.stdout.count) received, \(recorded.count) recorded)")
        // The notice the agent read is in the recording too: stderr is byte-exact as well.
        let recordedErr = try RecordingExporter.export(path: "\(directory)/\(name)", format: .raw, stream: .stderr).bytes
        XCTAssertEqual(Data(recordedErr), r.stderr)
        let report = RecordingVerifier.verify(path: "\(directory)/\(name)", trustedKeys: f.store.trustedPublicKeys(.recording))
        XCTAssertTrue(report.problems.isEmpty, "\(report.problems)")
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

    /// Each stream, with the recordings on a 2 MiB tmpfs and 10 MB crossing: the agent (or, for
    /// stdin, the target) holds exactly what the recording holds.
    func testDiskFullIsByteExactOnEveryStream() throws {
        let directory = f.directory.appendingPathComponent("recordings").path
        let mount = try runBinary("/bin/mount", ["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", directory])
        guard mount.status == 0 else { throw XCTSkip("cannot mount a tmpfs here: \(mount.err)") }
        defer { _ = try? runBinary("/bin/umount", ["-l", directory]) }
        func newest() throws -> String {
            let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".ghrec") }
            let dated = names.map { ($0, (try? FileManager.default.attributesOfItem(atPath: "\(directory)/\($0)")[.modificationDate] as? Date) ?? .distantPast) }
            return "\(directory)/" + (try XCTUnwrap(dated.max { $0.1 < $1.1 }).0)
        }
        func clear() throws {
            for name in try FileManager.default.contentsOfDirectory(atPath: directory) { try? FileManager.default.removeItem(atPath: "\(directory)/\(name)") }
        }
        // stdout: random bytes, so a shifted or duplicated chunk could not compare equal.
        let out = try f.ssh("web-01", ["sh", "-c", "'head -c 10000000 /dev/urandom'"])
        XCTAssertEqual(out.status, 255, out.err)
        let outPath = try newest()
        XCTAssertEqual(Data(try RecordingExporter.export(path: outPath, format: .raw, stream: .stdout).bytes), out.stdout, "stdout")
        XCTAssertEqual(Data(try RecordingExporter.export(path: outPath, format: .raw, stream: .stderr).bytes), out.stderr, "stderr")
        try clear()
        // stderr.
        let err = try f.ssh("web-01", ["sh", "-c", "'head -c 10000000 /dev/urandom 1>&2'"])
        XCTAssertEqual(err.status, 255)
        let errPath = try newest()
        XCTAssertGreaterThan(err.stderr.count, 100_000)
        XCTAssertEqual(Data(try RecordingExporter.export(path: errPath, format: .raw, stream: .stderr).bytes), err.stderr, "stderr")
        try clear()
        // stdin: what reached the target's file is what the recording holds.
        let received = f.directory.appendingPathComponent("received-\(UUID().uuidString.prefix(6))").path
        var input = Data(count: 10_000_000)
        input.withUnsafeMutableBytes { for i in stride(from: 0, to: $0.count, by: 8) { $0.storeBytes(of: UInt64.random(in: 0 ... .max), toByteOffset: i, as: UInt64.self) } }
        let inp = try f.ssh("web-01", ["sh", "-c", "'cat > \(received)'"], stdin: input)
        XCTAssertEqual(inp.status, 255, inp.err)
        XCTAssertTrue(f.waitForIdle())
        let inPath = try newest()
        let recordedIn = Data(try RecordingExporter.export(path: inPath, format: .raw, stream: .stdin).bytes)
        XCTAssertLessThan(recordedIn.count, input.count, "the input stopped when recording failed")
        XCTAssertTrue(input.starts(with: recordedIn), "the recording holds the agent's input, in order")
        // Every byte passed to the target's channel is recorded (the audit counts what was passed
        // on); the process, hung up at once, may have read only part of it, never more.
        let end = try XCTUnwrap(f.awaitAudit { $0.event.action == "session.end" && $0.event.details["recording"] == inPath })
        XCTAssertEqual(end.event.details["bytes_stdin"], String(recordedIn.count))
        let landed = (try? Data(contentsOf: URL(fileURLWithPath: received))) ?? Data()
        XCTAssertTrue(recordedIn.starts(with: landed), "the target read nothing the recording lacks")
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
        // systemd waits 90 s by default (TimeoutStopSec); 30 s leaves a loaded CI machine room.
        XCTAssertEqual(restarted.wait(timeout: 30), 0, "gatehouse serve stops on SIGTERM")
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
