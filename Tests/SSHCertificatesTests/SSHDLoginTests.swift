import Foundation
import XCTest
@testable import SSHCertificates

/// Certificates made here let the real OpenSSH `ssh` log in to a real `sshd` on 127.0.0.1 that
/// trusts the CA through TrustedUserCAKeys, and that sshd refuses them once expired or revoked
/// through a KRL written here.
final class SSHDLoginTests: XCTestCase {
    var dir: URL!
    var sshd: Daemon?
    var port: Int = 0

    override func setUpWithError() throws { dir = try makeTemporaryDirectory() }

    override func tearDownWithError() throws {
        sshd?.stop()
        try? FileManager.default.removeItem(at: dir)
    }

    func startSSHD(trusted ca: SSHPublicKey, krl: KeyRevocationList) throws {
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let hostKey = dir.appendingPathComponent("host_ed25519")
        try writeText(OpenSSHPrivateKeyFile.serialize(try SSHPrivateKey.generate(.ed25519)), to: hostKey)
        try writeText(ca.openSSHLine + "\n", to: dir.appendingPathComponent("trusted_user_ca"), mode: 0o644)
        try Data(krl.serialized()).write(to: dir.appendingPathComponent("revoked.krl"))
        port = try freePort()
        let config = """
        ListenAddress 127.0.0.1:\(port)
        HostKey \(hostKey.path)
        PidFile none
        UsePAM no
        StrictModes no
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        PubkeyAuthentication yes
        AuthorizedKeysFile none
        TrustedUserCAKeys \(dir.appendingPathComponent("trusted_user_ca").path)
        RevokedKeys \(dir.appendingPathComponent("revoked.krl").path)
        PermitRootLogin prohibit-password
        LogLevel VERBOSE
        """
        let configPath = dir.appendingPathComponent("sshd_config")
        try writeText(config + "\n", to: configPath)
        try runTool("/usr/sbin/sshd", ["-t", "-f", configPath.path])
        sshd = try Daemon("/usr/sbin/sshd", ["-D", "-e", "-f", configPath.path])
        // Wait, with a deadline, until the port accepts connections.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
            close(fd)
            if ok { return }
            usleep(20_000)
        }
        XCTFail("sshd did not start listening on \(port)")
    }

    /// Logs in with `key` and `cert`, runs `echo`, returns whether it succeeded.
    func login(key: SSHPrivateKey, cert: SSHCertificate, name: String) throws -> Bool {
        let keyPath = dir.appendingPathComponent(name)
        try writeText(OpenSSHPrivateKeyFile.serialize(key), to: keyPath)
        try writeText(cert.openSSHLine + "\n", to: URL(fileURLWithPath: keyPath.path + "-cert.pub"))
        let user = ProcessInfo.processInfo.environment["USER"] ?? "root"
        let r = try runTool("ssh", ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                    "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "LogLevel=ERROR", "-i", keyPath.path,
                                    "-o", "CertificateFile=\(keyPath.path)-cert.pub", "-p", String(port), "\(user)@127.0.0.1", "echo", "logged-in-\(name)"],
                           check: false)
        return r.status == 0 && r.stdout == "logged-in-\(name)\n"
    }

    func testOpenSSHAcceptsValidAndRefusesExpiredAndRevokedCertificates() throws {
        let user = ProcessInfo.processInfo.environment["USER"] ?? "root"
        for caAlgorithm in [SSHKeyAlgorithm.ed25519, .ecdsaP384, .rsa] {
            let ca = try SSHPrivateKey.generate(caAlgorithm, rsaBits: 2048)
            var krl = KeyRevocationList()
            krl.revoke(serials: 66...66, ca: ca.publicKey)
            krl.revoke(keyID: "revoked-agent", ca: nil)
            try startSSHD(trusted: ca.publicKey, krl: krl)
            defer { sshd?.stop(); sshd = nil }
            let now = nowSeconds
            func cert(_ key: SSHPrivateKey, serial: UInt64, id: String, after: UInt64, before: UInt64) throws -> SSHCertificate {
                try CertificateTemplate(key: key.publicKey, type: .user, serial: serial, keyID: id, principals: [user],
                                        validAfter: after, validBefore: before, extensions: CertificateTemplate.defaultUserExtensions).sign(with: ca)
            }
            for subject in [SSHKeyAlgorithm.ed25519, .ecdsaP256, .rsa] {
                let key = try SSHPrivateKey.generate(subject, rsaBits: 2048)
                let tag = "\(caAlgorithm.shortName)-\(subject.shortName)"
                XCTAssertTrue(try login(key: key, cert: try cert(key, serial: 1, id: "ok", after: now - 120, before: now + 300), name: "valid-\(tag)"), "valid \(tag)")
                XCTAssertFalse(try login(key: key, cert: try cert(key, serial: 2, id: "old", after: now - 600, before: now - 60), name: "expired-\(tag)"), "expired \(tag)")
                XCTAssertFalse(try login(key: key, cert: try cert(key, serial: 3, id: "future", after: now + 600, before: now + 900), name: "future-\(tag)"), "future \(tag)")
                XCTAssertFalse(try login(key: key, cert: try cert(key, serial: 66, id: "ok", after: now - 120, before: now + 300), name: "serial-\(tag)"), "revoked serial \(tag)")
                XCTAssertFalse(try login(key: key, cert: try cert(key, serial: 4, id: "revoked-agent", after: now - 120, before: now + 300), name: "id-\(tag)"), "revoked id \(tag)")
            }
        }
    }
}
