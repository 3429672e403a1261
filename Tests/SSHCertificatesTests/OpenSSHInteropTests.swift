import Foundation
import XCTest
@testable import SSHCertificates

/// Interop in both directions with the real ssh-keygen, every key type as subject and as CA.
final class OpenSSHInteropTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try makeTemporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func generateWithKeygen(_ algorithm: SSHKeyAlgorithm, name: String) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try runTool("ssh-keygen", keygenArguments(algorithm) + ["-q", "-N", "", "-C", name, "-f", url.path])
        return url
    }

    /// Certificates ssh-keygen makes, with options and extensions, parse and verify here.
    func testCertificatesFromSSHKeygenParseAndVerify() throws {
        for caAlgorithm in SSHKeyAlgorithm.allCases {
            let ca = try generateWithKeygen(caAlgorithm, name: "ca-\(caAlgorithm.shortName)")
            for subject in SSHKeyAlgorithm.allCases {
                let key = try generateWithKeygen(subject, name: "user-\(caAlgorithm.shortName)-\(subject.shortName)")
                try runTool("ssh-keygen", ["-q", "-s", ca.path, "-I", "agent-7", "-n", "alice,deploy", "-z", "4242", "-V", "-5m:+1h",
                                       "-O", "clear", "-O", "permit-pty", "-O", "force-command=/usr/bin/uptime",
                                       "-O", "source-address=127.0.0.1/32,::1",
                                       "-O", "extension:scopes@gatehouse=ops-read,web-deploy",
                                       "-O", "extension:context@gatehouse=task-9f2",
                                       key.path + ".pub"])
                let cert = try SSHCertificate(openSSHLine: try readText(URL(fileURLWithPath: key.path + "-cert.pub")))
                XCTAssertEqual(cert.algorithm, subject)
                XCTAssertEqual(cert.signatureKey.algorithm, caAlgorithm)
                XCTAssertEqual(cert.keyID, "agent-7")
                XCTAssertEqual(cert.serial, 4242)
                XCTAssertEqual(cert.principals, ["alice", "deploy"])
                XCTAssertEqual(cert.type, .user)
                XCTAssertNoThrow(try cert.verifySignature(), "\(caAlgorithm) signing \(subject)")
                XCTAssertEqual(cert.key, try SSHPublicKey(openSSHLine: try readText(URL(fileURLWithPath: key.path + ".pub"))))
                XCTAssertEqual(cert.signatureKey, try SSHPublicKey(openSSHLine: try readText(URL(fileURLWithPath: ca.path + ".pub"))))
                let permissions = try CertificatePermissions(certificate: cert)
                XCTAssertTrue(permissions.pty)
                XCTAssertFalse(permissions.portForwarding)
                XCTAssertEqual(permissions.forceCommand, "/usr/bin/uptime")
                XCTAssertEqual(permissions.scopes, ["ops-read", "web-deploy"])
                XCTAssertEqual(permissions.context, "task-9f2")
                XCTAssertEqual(permissions.sourceAddresses?.count, 2)
                // ssh-keygen signs RSA CAs with rsa-sha2-512 by default.
                if caAlgorithm == .rsa { XCTAssertEqual(cert.signature.algorithm, .rsaSHA512) }
            }
        }
    }

    /// Certificates made here are listed correctly by `ssh-keygen -L`.
    func testCertificatesSignedHereAreReadByKeygen() throws {
        for caAlgorithm in SSHKeyAlgorithm.allCases {
            let ca = try SSHPrivateKey.generate(caAlgorithm, rsaBits: 2048)
            for subject in SSHKeyAlgorithm.allCases {
                let key = try SSHPrivateKey.generate(subject, rsaBits: 2048)
                let now = nowSeconds
                let (after, before) = CertificateTemplate.validFor(600, from: now)
                let template = CertificateTemplate(
                    key: key.publicKey, type: .user, serial: 77, keyID: "gatehouse:session-1", principals: ["agent", "ops"],
                    validAfter: after, validBefore: before,
                    criticalOptions: [CertificateOption(name: "force-command", value: "uptime")],
                    extensions: CertificateTemplate.defaultUserExtensions + [CertificateOption(name: "scopes@gatehouse", value: "ops-read")])
                let cert = try template.sign(with: ca)
                let file = dir.appendingPathComponent("c-\(caAlgorithm.shortName)-\(subject.shortName)-cert.pub")
                try writeText(cert.openSSHLine + "\n", to: file)
                let listing = try runTool("ssh-keygen", ["-L", "-f", file.path]).stdout
                XCTAssertTrue(listing.contains("Type: \(subject.certificateTypeName) user certificate"), listing)
                XCTAssertTrue(listing.contains("Key ID: \"gatehouse:session-1\""), listing)
                XCTAssertTrue(listing.contains("Serial: 77"), listing)
                XCTAssertTrue(listing.contains("Signing CA: \(caAlgorithm == .rsa ? "RSA" : caAlgorithm == .ed25519 ? "ED25519" : "ECDSA") \(ca.publicKey.fingerprint)"), listing)
                XCTAssertTrue(listing.contains("force-command UTF-8 \"uptime\"") || listing.contains("force-command uptime"), listing)
                XCTAssertTrue(listing.contains("scopes@gatehouse UTF-8 \"ops-read\"") || listing.contains("scopes@gatehouse"), listing)
                XCTAssertTrue(listing.contains("permit-pty"), listing)
                if caAlgorithm == .rsa { XCTAssertTrue(listing.contains("using rsa-sha2-512"), listing) }
            }
        }
    }

    /// Private keys: ssh-keygen's files load here, and files written here load in ssh-keygen.
    func testPrivateKeyFilesRoundTripWithKeygen() throws {
        for algorithm in SSHKeyAlgorithm.allCases {
            let path = try generateWithKeygen(algorithm, name: "pk-\(algorithm.shortName)")
            let key = try OpenSSHPrivateKeyFile.parse(try readText(path))
            XCTAssertEqual(key.publicKey, try SSHPublicKey(openSSHLine: try readText(URL(fileURLWithPath: path.path + ".pub"))))
            XCTAssertEqual(key.comment, "pk-\(algorithm.shortName)")

            let ours = try SSHPrivateKey.generate(algorithm, rsaBits: 2048, comment: "ours")
            let ourPath = dir.appendingPathComponent("ours-\(algorithm.shortName)")
            try writeText(OpenSSHPrivateKeyFile.serialize(ours), to: ourPath)
            let derived = try runTool("ssh-keygen", ["-y", "-f", ourPath.path]).stdout
            XCTAssertEqual(try SSHPublicKey(openSSHLine: derived.trimmingCharacters(in: .whitespacesAndNewlines)), ours.publicKey)
            // And ssh-keygen can sign a certificate with a CA key file written here.
            let user = try generateWithKeygen(.ed25519, name: "signed-by-ours-\(algorithm.shortName)")
            try runTool("ssh-keygen", ["-q", "-s", ourPath.path, "-I", "x", "-n", "p", user.path + ".pub"])
            let cert = try SSHCertificate(openSSHLine: try readText(URL(fileURLWithPath: user.path + "-cert.pub")))
            XCTAssertEqual(cert.signatureKey, ours.publicKey)
            XCTAssertNoThrow(try cert.verifySignature())
        }
    }

    func testFingerprintMatchesKeygen() throws {
        for algorithm in SSHKeyAlgorithm.allCases {
            let path = try generateWithKeygen(algorithm, name: "fp-\(algorithm.shortName)")
            let printed = try runTool("ssh-keygen", ["-l", "-E", "sha256", "-f", path.path + ".pub"]).stdout
            let key = try SSHPublicKey(openSSHLine: try readText(URL(fileURLWithPath: path.path + ".pub")))
            XCTAssertTrue(printed.contains(key.fingerprint), "\(printed) vs \(key.fingerprint)")
        }
    }

    func testEncryptedPrivateKeyIsRefusedWithAClearReason() throws {
        let path = dir.appendingPathComponent("enc")
        try runTool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "secret", "-f", path.path])
        XCTAssertThrowsError(try OpenSSHPrivateKeyFile.parse(try readText(path))) { error in
            XCTAssertTrue("\(error)".contains("encrypted"), "\(error)")
        }
    }
}
