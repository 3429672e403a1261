import Audit
import Crypto
import Foundation
import Recording
import XCTest
@testable import Bastion

/// Planted secrets, printed by a real target through the live bastion, never reach the agent;
/// the recording keeps the target's bytes and the mask records, so export shows what the agent
/// saw by default and the original on request.
final class MaskingRelayTests: SharedFixtureTestCase {
    override class func makeFixture() throws -> BastionFixture {
        try BastionFixture(extraScopes: """
          unmasked:
            targets: [web-01]
            rights: [exec]
            commands: ["cat {file: path under @DIR@}"]
            masking: {enabled: false}
          github-only:
            targets: [web-01]
            rights: [exec]
            commands: ["cat {file: path under @DIR@}"]
            masking: {rules: [github-token]}
        """)
    }

    /// Secrets of several kinds, made fresh for each run (never real).
    struct Planted {
        var text: String
        var secrets: [String: String]   // rule → secret
    }

    static func random(_ count: Int, from alphabet: String) -> String {
        let characters = Array(alphabet)
        return String((0..<count).map { _ in characters.randomElement()! })
    }

    static let upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    static let alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

    func plant() throws -> Planted {
        let keyFile = f.directory.appendingPathComponent("planted-key-\(UUID().uuidString.prefix(6))")
        _ = try runChecked("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "planted", "-f", keyFile.path])
        let privateKey = try String(contentsOf: keyFile, encoding: .utf8)
        let secrets = [
            "aws-access-key-id": "AKIA" + Self.random(16, from: Self.upperDigits),
            "aws-secret-access-key": Self.random(40, from: Self.alnum + "/+"),
            "github-token": "ghp_" + Self.random(36, from: Self.alnum),
            "slack-token": "xoxb-" + Self.random(12, from: "0123456789") + "-" + Self.random(12, from: "0123456789") + "-" + Self.random(24, from: Self.alnum),
            "secret-assignment": Self.random(22, from: Self.alnum),
            "url-credentials": Self.random(18, from: Self.alnum),
            "private-key": privateKey.split(separator: "\n")[1...].prefix(2).joined(),
        ]
        let text = """
        # app.env
        APP_NAME=billing
        AWS_ACCESS_KEY_ID=\(secrets["aws-access-key-id"]!)
        aws_secret_access_key = \(secrets["aws-secret-access-key"]!)
        GITHUB_TOKEN=\(secrets["github-token"]!)
        SLACK_BOT=\(secrets["slack-token"]!)
        DB_PASSWORD=\(secrets["secret-assignment"]!)
        DATABASE_URL=postgres://billing:\(secrets["url-credentials"]!)@db.internal:5432/billing
        LOG_LEVEL=info
        \(privateKey)
        done

        """
        return Planted(text: text, secrets: secrets)
    }

    func sha256(_ bytes: some DataProtocol) -> String { SHA256.hash(data: Data(bytes)).map { String(format: "%02x", $0) }.joined() }

    /// The end record of the session that ran `command` (read from its recording's header), waiting for it.
    func sessionEnd(command: String) -> AuditRecord? {
        f.awaitAudit { record in
            guard record.event.action == "session.end", let path = record.event.details["recording"] else { return false }
            return (try? RecordingReader(path: path, allowTornTail: true).header.command) == command
        }
    }

    func leaked(_ output: String, _ planted: Planted) -> [String] {
        planted.secrets.filter { output.contains($0.value) }.map(\.key)
    }

    func testPlantedSecretsNeverReachTheAgentWhileTheRecordingKeepsTheOriginal() throws {
        let planted = try plant()
        let file = f.directory.appendingPathComponent("planted.env")
        try planted.text.write(to: file, atomically: true, encoding: .utf8)
        let r = try f.ssh("web-01", ["cat", file.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(leaked(r.out, planted), [], "secrets the agent received")
        for rule in ["aws-access-key-id", "github-token", "private-key", "url-credentials"] {
            XCTAssertTrue(r.out.contains("[masked:\(rule)]"), "marker for \(rule) in:\n\(r.out)")
        }
        XCTAssertTrue(r.out.contains("APP_NAME=billing\n") && r.out.hasSuffix("done\n"), "ordinary lines pass unchanged")

        let end = try XCTUnwrap(sessionEnd(command: "cat \(file.path)"))
        let path = try XCTUnwrap(end.event.details["recording"])
        XCTAssertTrue(end.event.details["masks"]!.contains("github-token=1"), end.event.details["masks"]!)
        XCTAssertFalse(end.event.details["masks"]!.contains(planted.secrets["github-token"]!), "counts only")
        // The recording verifies (mask records included), keeps the target's bytes, and its
        // default view is byte for byte what the agent received.
        let report = RecordingVerifier.verify(path: path, trustedKeys: f.store.trustedPublicKeys(.recording))
        XCTAssertTrue(report.isIntact, report.verdict)
        let original = try RecordingExporter.export(path: path, format: .raw, view: .original).bytes
        let expected = Array(planted.text.utf8)
        let firstDifference = zip(original, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        XCTAssertEqual(sha256(original), sha256(Data(expected)),
                       "the raw stream is the file (\(original.count) vs \(expected.count) bytes, first difference at \(firstDifference.map(String.init) ?? "none"): \(String(decoding: original.prefix((firstDifference ?? 0) + 40).suffix(80), as: UTF8.self)))")
        let agentView = try RecordingExporter.export(path: path, format: .raw).bytes
        XCTAssertEqual(Data(agentView), r.stdout, "export shows exactly what the agent saw")
        let header = try RecordingReader(path: path).header
        XCTAssertEqual(header.masking?.record, "raw")
        XCTAssertEqual(header.masking?.view, "marker")
        let text = String(decoding: try RecordingExporter.export(path: path, format: .asciicastV2).bytes, as: UTF8.self)
        XCTAssertEqual(leaked(text, planted), [], "asciicast export is masked too")
    }

    func testASecretWrittenOneByteAtATimeIsStillCaught() throws {
        let planted = try plant()
        let file = f.directory.appendingPathComponent("trickle.env")
        try planted.text.write(to: file, atomically: true, encoding: .utf8)
        // One write(2) per byte: each byte is its own SSH packet and, mostly, its own read.
        let r = try f.ssh("web-01", ["sh", "-c", "'python3 -c \"import os,sys\ndata=open(sys.argv[1],\\\"rb\\\").read()\nfor i in range(len(data)): os.write(1, data[i:i+1])\" \(file.path)'"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(leaked(r.out, planted), [], "secrets the agent received")
        XCTAssertTrue(r.out.contains("[masked:github-token]"), r.out)
    }

    func testStderrIsMaskedToo() throws {
        let planted = try plant()
        let file = f.directory.appendingPathComponent("stderr.env")
        try planted.text.write(to: file, atomically: true, encoding: .utf8)
        let r = try f.ssh("web-01", ["sh", "-c", "'cat \(file.path) >&2'"])
        XCTAssertEqual(r.status, 0)
        XCTAssertEqual(leaked(r.err, planted), [])
        XCTAssertTrue(r.err.contains("[masked:aws-access-key-id]"), r.err)
    }

    func testAPtySessionGetsSameWidthMasksThatKeepTheLayout() throws {
        let planted = try plant()
        let file = f.directory.appendingPathComponent("pty.env")
        try planted.text.write(to: file, atomically: true, encoding: .utf8)
        let r = try f.ssh("web-01", ["cat", file.path], options: ["-tt"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(leaked(r.out, planted), [])
        XCTAssertFalse(r.out.contains("[masked:"), "no markers in a terminal")
        let token = planted.secrets["github-token"]!
        XCTAssertTrue(r.out.contains("GITHUB_TOKEN=" + String(repeating: "*", count: token.count) + "\r\n"), "one * per character")
    }

    func testAScopeWithMaskingOffShowsTheOriginalAndAScopeSelectionMasksOnlyItsRules() throws {
        let planted = try plant()
        let file = f.directory.appendingPathComponent("scoped.env")
        try planted.text.write(to: file, atomically: true, encoding: .utf8)

        _ = try f.issueAgentCertificate(scopes: ["unmasked"], output: "unmasked-cert.pub")
        let open = try f.ssh("web-01", ["cat", file.path], certificate: "unmasked-cert.pub")
        XCTAssertEqual(open.status, 0, open.err)
        XCTAssertEqual(open.out, planted.text, "masking: {enabled: false} passes the output as it is")

        _ = try f.issueAgentCertificate(scopes: ["github-only"], output: "github-only-cert.pub")
        let narrow = try f.ssh("web-01", ["cat", file.path], certificate: "github-only-cert.pub")
        XCTAssertEqual(narrow.status, 0, narrow.err)
        XCTAssertFalse(narrow.out.contains(planted.secrets["github-token"]!))
        XCTAssertTrue(narrow.out.contains(planted.secrets["aws-access-key-id"]!), "rules outside the scope's selection are off")
    }

    func testBinaryOutputPassesUntouched() throws {
        var bytes = [UInt8](repeating: 0, count: 4 << 20)
        for i in stride(from: 0, to: bytes.count, by: 8) {
            withUnsafeBytes(of: UInt64.random(in: 0 ... .max)) { raw in for j in 0..<8 { bytes[i + j] = raw[j] } }
        }
        // Secret-looking text inside binary is binary: it must not be changed either.
        let planted = Array("AKIA\(Self.random(16, from: Self.upperDigits))".utf8)
        bytes.replaceSubrange(1000..<(1000 + planted.count), with: planted)
        let file = f.directory.appendingPathComponent("blob.bin")
        try Data(bytes).write(to: file)
        let r = try f.ssh("web-01", ["cat", file.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(sha256(r.stdout), sha256(bytes))
    }
}

/// `masking.record: masked`: the recording holds only what the agent saw, and says so.
final class MaskedRecordingTests: SharedFixtureTestCase {
    override class func makeFixture() throws -> BastionFixture {
        try BastionFixture(extraSections: """
        masking:
          record: masked
        """)
    }

    func testTheRecordingHoldsOnlyTheMaskedViewAndRefusesAnUnmaskedOne() throws {
        let token = "ghp_" + MaskingRelayTests.random(36, from: MaskingRelayTests.alnum)
        let file = f.directory.appendingPathComponent("token.txt")
        try "token: \(token)\n".write(to: file, atomically: true, encoding: .utf8)
        let r = try f.ssh("web-01", ["cat", file.path])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertFalse(r.out.contains(token))
        let end = try XCTUnwrap(f.awaitAudit { $0.event.action == "session.end" && ($0.event.details["masks"] ?? "").contains("github-token=1") })
        let path = try XCTUnwrap(end.event.details["recording"])
        let header = try RecordingReader(path: path).header
        XCTAssertEqual(header.masking?.record, "masked")
        let stored = try RecordingExporter.export(path: path, format: .raw).bytes
        XCTAssertEqual(Data(stored), r.stdout, "the recording is what the agent saw")
        XCTAssertFalse(String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self).contains(token), "no copy of the secret on disk")
        XCTAssertThrowsError(try RecordingExporter.export(path: path, format: .raw, view: .original)) { error in
            XCTAssertEqual(error as? ExportError, .view(.originalNotKept))
        }
        XCTAssertTrue(RecordingVerifier.verify(path: path, trustedKeys: f.store.trustedPublicKeys(.recording)).isIntact)
    }
}
