import Audit
import Foundation
import Recording
import SSHCertificates
import XCTest
@testable import CertificateAuthority

/// Rotating the recording key never orphans a recording: real recordings written by the
/// Recording module's writer, a real CA store on disk, every phase twice and a rollback.
final class RecordingKeyHistoryTests: XCTestCase {
    var root: String!
    var recordings: String!

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "keyhistory-\(UUID().uuidString)"
        recordings = root + "-recordings"
        try FileManager.default.createDirectory(atPath: recordings, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: root)
        try? FileManager.default.removeItem(atPath: recordings)
    }

    func header(_ id: String, start: UInt64 = WallClock.microseconds()) -> SessionHeader {
        SessionHeader(sessionID: id, certificateKeyID: "agent", certificateSerial: 1, scopes: ["ops"], context: "task-1",
                      subject: "alice", sourceAddress: "127.0.0.1:5000", target: "web-01", login: "deploy",
                      command: "uptime", terminalType: nil, columns: 0, rows: 0, startTimeMicros: start, inputRecorded: false)
    }

    /// A finished recording signed by `signer`, as the bastion writes one.
    @discardableResult
    func record(_ id: String, signer: SSHPrivateKey, start: UInt64 = WallClock.microseconds()) throws -> String {
        var options = RecordingWriter.Options()
        options.updateIndex = false
        let writer = try RecordingWriter(directory: recordings, header: header(id, start: start), signer: signer, options: options)
        try writer.append(.stdout, Array(" 12:00:00 up 1 day\n".utf8))
        try writer.exit(status: 0)
        _ = try writer.finish()
        return writer.path
    }

    func testEveryRecordingVerifiesAcrossTwoFullRotationsAndARollback() throws {
        var ca = try CAStore.initialize(at: root, actor: "test")
        var paths: [String] = []
        var signers: [SSHPrivateKey] = []
        func step(_ label: String) throws {
            signers.append(ca.signingKey(.recording))
            paths.append(try record(label, signer: ca.signingKey(.recording)))
        }
        try step("standby-0")
        for round in 1...2 {
            try ca.rotate(.recording, actor: "test"); try step("init-\(round)")
            try ca.rotate(.recording, actor: "test"); try step("update-\(round)")
            try ca.rotate(.recording, actor: "test"); try step("retired-\(round)")
        }
        try ca.rotate(.recording, actor: "test"); try step("init-3")
        try ca.rotate(.recording, actor: "test"); try step("update-3")
        try ca.rollback(.recording, actor: "test"); try step("rolled-back")
        XCTAssertEqual(Set(signers.map(\.publicKey)).count, 4, "initial key, two rotated in, one rolled back")

        // From disk, as `gatehouse verify` sees it.
        ca = try CAStore.open(at: root)
        let trust = ca.verificationKeys(.recording)
        for path in paths {
            let report = RecordingVerifier.verify(path: path, trust: trust)
            XCTAssertTrue(report.isIntact, report.verdict)
        }
        // What the store alone trusts now would have orphaned the older recordings.
        let currentOnly = paths.filter { RecordingVerifier.verify(path: $0, trustedKeys: ca.trustedPublicKeys(.recording)).isIntact }
        XCTAssertLessThan(currentOnly.count, paths.count)

        // The exported key file verifies the same without the store.
        let exported = TrustedKeyFile.serialize(trust, comment: "gatehouse-recording-ca")
        let parsed = try TrustedKeyFile.parse(exported, source: "history.pub")
        XCTAssertEqual(parsed, trust)
        for path in paths { XCTAssertTrue(RecordingVerifier.verify(path: path, trust: parsed).isIntact) }

        // `ca status` lists the verify-only keys: two retired, one rolled back after signing.
        let status = ca.status().first { $0.name == .recording }!
        XCTAssertEqual(status.retired.map(\.how), ["retired", "retired", "rolled-back"])
        XCTAssertTrue(status.retired.allSatisfy { $0.activeFromMicros != nil })

        // Re-signed with a key that was not active when the recording says it started: refused, naming why.
        let original = try XCTUnwrap(RecordingVerifier.verify(path: paths[0], trust: trust).header)
        let forged = try record("forged-current", signer: ca.signingKey(.recording), start: original.startTimeMicros)
        let forgedReport = RecordingVerifier.verify(path: forged, trust: trust)
        XCTAssertFalse(forgedReport.isIntact)
        XCTAssertEqual(forgedReport.problems.first?.kind, .keyOutsideInterval)
        XCTAssertTrue(forgedReport.verdict.contains("before the key"), forgedReport.verdict)

        // A retired key (say, stolen) signing a recording that claims a time after its retirement.
        let retiredKey = signers[0]
        let late = try record("forged-retired", signer: retiredKey)
        let lateReport = RecordingVerifier.verify(path: late, trust: trust)
        XCTAssertEqual(lateReport.problems.first?.kind, .keyOutsideInterval)
        XCTAssertTrue(lateReport.verdict.contains("after the key \(retiredKey.publicKey.fingerprint) was retired"), lateReport.verdict)

        // A key never in the store at all is still "untrusted".
        let stranger = try record("stranger", signer: try SSHPrivateKey.generate(.ed25519))
        XCTAssertEqual(RecordingVerifier.verify(path: stranger, trust: trust).problems.first?.kind, .untrustedKey)
    }

    /// Retired keys of the other authorities are history only: they authorize nothing.
    func testRetiredUserKeysAreListedButNotTrusted() throws {
        let ca = try CAStore.initialize(at: root, actor: "test")
        let first = ca.signingKey(.user).publicKey
        try ca.rotate(.user, actor: "test")
        try ca.rotate(.user, actor: "test")
        try ca.rotate(.user, actor: "test", force: true)
        let reopened = try CAStore.open(at: root)
        XCTAssertFalse(reopened.trustedPublicKeys(.user).contains(first))
        let status = reopened.status().first { $0.name == .user }!
        XCTAssertEqual(status.retired.map(\.fingerprint), [first.fingerprint])
        // The audit log names the retired key.
        let records = try AuditLog.records(path: root + "/audit.log")
        XCTAssertTrue(records.contains { $0.event.action == "ca.rotate" && $0.event.details["retired"] == first.fingerprint })
    }

    /// A store written before key history (camelCase state files, no activity times) still
    /// opens, and its keys verify recordings made since they were created.
    func testStoreFromBeforeKeyHistoryStillVerifies() throws {
        let ca = try CAStore.initialize(at: root, actor: "test")
        let path = try record("legacy", signer: ca.signingKey(.recording))
        for name in AuthorityName.allCases {
            let file = "\(root!)/ca/\(name.rawValue)/state.json"
            var text = try String(contentsOfFile: file, encoding: .utf8)
            for (snake, camel) in [("update_started", "updateStarted"), ("grace_period", "gracePeriod"), ("public_key", "publicKey")] {
                text = text.replacingOccurrences(of: "\"\(snake)\"", with: "\"\(camel)\"")
            }
            text = text.replacingOccurrences(of: #",\s*"active_from_micros"\s*:\s*\d+"#, with: "", options: .regularExpression)
                .replacingOccurrences(of: #""active_from_micros"\s*:\s*\d+,\s*"#, with: "", options: .regularExpression)
            XCTAssertFalse(text.contains("active_from"))
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            chmod(file, 0o600)
        }
        let reopened = try CAStore.open(at: root)
        XCTAssertTrue(RecordingVerifier.verify(path: path, trust: reopened.verificationKeys(.recording)).isIntact)
    }

    func testTrustedKeyFileRefusesBadLinesWithTheirLineNumber() throws {
        let key = try SSHPrivateKey.generate(.ed25519).publicKey.openSSHLine
        XCTAssertEqual(try TrustedKeyFile.parse("# comment\n\n\(key) plain\n", source: "f").count, 1)
        let bad = ["active-from=\"yesterday\" \(key)", "frobnicate=\"x\" \(key)", "active-from=\"2025-01-01T00:00:00Z\"",
                   "ssh-ed25519 AAAA", "active-from=\"2025-02-01T00:00:00Z\",active-until=\"2025-01-01T00:00:00Z\" \(key)",
                   "active-from=\"2025-01-01T00:00:00Z \(key)"]
        for line in bad {
            XCTAssertThrowsError(try TrustedKeyFile.parse("\(key)\n\(line)\n", source: "keys.txt"), line) {
                XCTAssertTrue("\($0)".hasPrefix("keys.txt:2: "), "\($0)")
            }
        }
        XCTAssertEqual(TrustedKey.parseTime("2025-01-02T03:04:05.000006Z"), 1_735_787_045_000_006)
        XCTAssertEqual(TrustedKey.parseTime("2025-01-02T03:04:05.5Z"), 1_735_787_045_500_000)
        XCTAssertEqual(TrustedKey.format(1_735_787_045_000_006), "2025-01-02T03:04:05.000006Z")
        XCTAssertEqual(TrustedKey.format(5), "1970-01-01T00:00:00.000005Z")
        XCTAssertEqual(TrustedKey.format(.max), "\(UInt64.max) µs since the epoch")
        XCTAssertEqual(TrustedKey.parseTime(TrustedKey.format(5)), 5)
    }
}

extension RecordingKeyHistoryTests {
    /// A store loaded before a rotation made by another process (the CLI) signs new recordings
    /// with the key in force now, not a retired one: otherwise those recordings would claim a
    /// time after their key's retirement and fail verification.
    func testAStoreLoadedBeforeARotationSignsWithTheCurrentKey() throws {
        _ = try CAStore.initialize(at: root, actor: "test")
        let server = try CAStore.open(at: root)           // the running bastion's copy
        let before = server.signingKey(.recording).publicKey
        let admin = try CAStore.open(at: root)            // `gatehouse ca rotate recording` ×3
        for _ in 0..<3 { try admin.rotate(.recording, actor: "test") }
        let after = server.signingKey(.recording)
        XCTAssertNotEqual(after.publicKey, before)
        XCTAssertEqual(after.publicKey, admin.signingKey(.recording).publicKey)
        let path = try record("after-rotation", signer: after)
        XCTAssertTrue(RecordingVerifier.verify(path: path, trust: try CAStore.open(at: root).verificationKeys(.recording)).isIntact)
    }
}

extension RecordingKeyHistoryTests {
    /// Recovery closes a crashed recording with the key current at recovery time: a recording
    /// begun under a key that has since been retired still verifies, header and crash end each
    /// checked against their own key's interval; a crash end signed by the retired key after
    /// its retirement does not.
    func testACrashedRecordingRecoveredAfterItsKeyWasRetiredVerifies() throws {
        let ca = try CAStore.initialize(at: root, actor: "test")
        let retired = ca.signingKey(.recording)
        let path = try record("crashed", signer: retired)
        let copy = path.replacingOccurrences(of: "crashed-ch0", with: "stolen-ch0")
        // Tear the trailer, as a kill -9 mid-write would.
        for file in [path, copy] {
            if file == copy { try FileManager.default.copyItem(atPath: path, toPath: copy) }
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: file)[.size] as? Int)
            XCTAssertEqual(truncate(file, off_t(size - 10)), 0)
        }
        for _ in 0..<3 { try ca.rotate(.recording, actor: "test") }
        let trust = ca.verificationKeys(.recording)

        guard case .closed = try RecordingRecovery.recover(path: path, signer: ca.signingKey(.recording), updateIndex: false) else { return XCTFail("not recovered") }
        let report = RecordingVerifier.verify(path: path, trust: trust)
        XCTAssertTrue(report.isIntact, report.verdict)
        XCTAssertEqual(report.end, .crash)

        guard case .closed = try RecordingRecovery.recover(path: copy, signer: retired, updateIndex: false) else { return XCTFail("not recovered") }
        let stolen = RecordingVerifier.verify(path: copy, trust: trust)
        XCTAssertEqual(stolen.problems.first?.kind, .keyOutsideInterval, stolen.verdict)
        XCTAssertTrue(stolen.verdict.contains("crash end is signed by \(retired.publicKey.fingerprint)"), stolen.verdict)
    }
}

extension RecordingKeyHistoryTests {
    /// The interval of a dropped key ends once the state that drops it is on disk, not when the
    /// command began: a server that started a recording in between (it had not yet seen the
    /// change) still signed inside the interval.
    func testTheIntervalEndsWhenTheDropIsDurable() throws {
        let ca = try CAStore.initialize(at: root, actor: "test")
        let began = Date(timeIntervalSinceNow: -5)              // the command "began" 5 s ago
        try ca.rotate(.recording, actor: "test", now: began)
        try ca.rotate(.recording, actor: "test", now: began)
        let beforeRetire = WallClock.microseconds()
        try ca.rotate(.recording, actor: "test", now: began)
        try ca.rotate(.recording, actor: "test", now: began)
        try ca.rotate(.recording, actor: "test", now: began)
        try ca.rollback(.recording, actor: "test", now: began)
        let retired = try CAStore.open(at: root).status().first { $0.name == .recording }!.retired
        XCTAssertEqual(retired.map(\.how), ["retired", "rolled-back"])
        for key in retired { XCTAssertGreaterThanOrEqual(key.retiredMicros, beforeRetire) }
    }
}
