import Crypto
import Foundation
import XCTest
@testable import Bastion

/// Sessions relayed to a real sshd, checked byte for byte.
final class RelayTests: SharedFixtureTestCase {


    func testExecStdoutStderrAndExitStatusAreExact() throws {
        let r = try f.ssh("web-01", ["sh", "-c", "'printf \"out\\n\\001\\377\"; printf \"err line\" >&2; exit 3'"])
        XCTAssertEqual(r.status, 3)
        XCTAssertEqual(r.stdout, Data([0x6f, 0x75, 0x74, 0x0a, 0x01, 0xff]))
        XCTAssertEqual(r.err, "err line")
    }

    func testTenMiBThroughStdoutAndStdinKeepTheirSHA256() throws {
        var bytes = [UInt8](repeating: 0, count: 10 << 20)
        for i in stride(from: 0, to: bytes.count, by: 8) {
            withUnsafeBytes(of: UInt64.random(in: 0 ... .max)) { raw in for j in 0..<8 { bytes[i + j] = raw[j] } }
        }
        let file = f.directory.appendingPathComponent("random.bin")
        try Data(bytes).write(to: file)
        let digest = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()

        let down = try f.ssh("web-01", ["cat", file.path])
        XCTAssertEqual(down.status, 0, down.err)
        XCTAssertEqual(down.stdout.count, bytes.count)
        XCTAssertEqual(SHA256.hash(data: down.stdout).map { String(format: "%02x", $0) }.joined(), digest)

        let up = try f.ssh("web-01", ["sha256sum"], stdin: Data(bytes))
        XCTAssertEqual(up.status, 0, up.err)
        XCTAssertEqual(up.out, "\(digest)  -\n")
    }

    func testEOFFromTheClientReachesTheTargetAndOutputContinuesAfterIt() throws {
        // cat ends only when stdin's EOF arrives; the echo after it proves the channel stays
        // open for output once the client half-closed.
        let r = try f.ssh("web-01", ["sh", "-c", "'cat; echo after-eof'"], stdin: Data("abc".utf8))
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "abcafter-eof\n")
    }

    func testExitSignalIsRelayedLikeADirectConnection() throws {
        let r = try f.ssh("web-01", ["sh", "-c", "'echo before; kill -TERM $$'"])
        XCTAssertEqual(r.out, "before\n")
        // OpenSSH's client exits 255 when the remote command was killed by a signal, as it does direct.
        XCTAssertEqual(r.status, 255)
        let end = f.awaitAudit { $0.event.action == "session.end" && $0.event.details["exit_signal"] == "TERM" }
        XCTAssertNotNil(end, "session.end with exit_signal TERM")
    }

    func testEnvironmentGrantedByScopeIsPassedAndOthersAreNot() throws {
        let r = try f.ssh("web-01", ["env"], options: ["-o", "SetEnv=GATEHOUSE_TEST=yes LD_PRELOAD=/tmp/evil.so"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("GATEHOUSE_TEST=yes"))
        XCTAssertFalse(r.out.contains("LD_PRELOAD"), "LD_PRELOAD must not reach the target")
        XCTAssertNotNil(try f.auditRecords().last { $0.event.action == "session.request" && $0.event.details["variable"] == "LD_PRELOAD" })
    }

    func testTheTargetSeesTheExactCheckedArgvAndNoShellReinterpretation() throws {
        // The words are requoted by Gatehouse: the target's shell gets one literal argument.
        let quoted = try f.ssh("web-01", ["echo", "'a  b'", "'$(id)'", "'x;y'"])
        XCTAssertEqual(quoted.status, 0, quoted.err)
        XCTAssertEqual(quoted.out, "a  b $(id) x;y\n", "quoted words arrive literally, never expanded by the target's shell")
        let unquoted = try f.ssh("web-01", ["echo", "$(id)"])
        XCTAssertEqual(unquoted.status, 77, "an unquoted substitution is refused before anything reaches the target")
        XCTAssertTrue(unquoted.err.contains("gatehouse-denial: {"), unquoted.err)
    }

    func testTargetLogTiesTheSessionBackToTheAgentCertificate() throws {
        let r = try f.ssh("web-01", ["true"])
        XCTAssertEqual(r.status, 0, r.err)
        let start = try XCTUnwrap(f.auditRecords().last { $0.event.action == "session.start" })
        let session = try XCTUnwrap(start.event.details["session"])
        let log = try String(contentsOf: f.sshdLog, encoding: .utf8)
        XCTAssertTrue(log.contains("gatehouse session=\(session) agent=agent:test"), "sshd logs the per-session certificate's key id")
    }

    func testHundredConcurrentSessionsEachGetTheirOwnOutput() throws {
        let results = UnsafeMutableBufferPointer<BinaryResult?>.allocate(capacity: 100)
        results.initialize(repeating: nil)
        defer { results.deallocate() }
        nonisolated(unsafe) let slots = results
        let fixture = f
        DispatchQueue.concurrentPerform(iterations: 100) { i in
            slots[i] = try? fixture.ssh("web-01", ["echo", "session-\(i)"])
        }
        for i in 0..<100 {
            XCTAssertEqual(results[i]?.status, 0, "session \(i): \(results[i]?.err ?? "no result")")
            XCTAssertEqual(results[i]?.out, "session-\(i)\n")
        }
    }

    func testKnownHostsVerifiedTargetWorks() throws {
        let r = try f.ssh("web-kh", ["echo", "via", "known_hosts"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "via known_hosts\n")
    }
}
