import Audit
import CertificateAuthority
import Foundation
import Logging
import SSHCertificates
import XCTest
@testable import Bastion
@_exported import ProcessSupport

/// A real OpenSSH sshd target on 127.0.0.1, trusting Gatehouse's target CA, and a Gatehouse
/// bastion in this process in front of it. Clients are the stock `ssh` and asyncssh.
final class BastionFixture: @unchecked Sendable {
    let directory: URL
    let store: CAStore
    let server: BastionServer
    let bastionPort: Int
    let targetPort: Int
    let targetPid: pid_t
    let agentKey: URL
    var sshdLog: URL { directory.appendingPathComponent("sshd.log") }
    var auditPath: String { directory.appendingPathComponent("state/audit.log").path }
    let login = String(cString: getpwuid(getuid())!.pointee.pw_name)

    /// `extraScopes` go under `scopes:` (indented two spaces); `extraSections` at the top level.
    init(loginGrace: Int = 3, maxUnauthenticated: Int? = 300, maxForwards: Int = 32, extraScopes: String = "", extraSections: String = "") throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-bastion-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let state = directory.appendingPathComponent("state").path
        store = try CAStore.initialize(at: state, actor: "test")
        let targetCA = store.trustedPublicKeys(.target).map(\.openSSHLine).joined(separator: "\n") + "\n"
        try targetCA.write(to: directory.appendingPathComponent("target_ca.pub"), atomically: true, encoding: .utf8)
        _ = try runChecked("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", directory.appendingPathComponent("host_key").path])
        _ = try runChecked("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", directory.appendingPathComponent("other_host_key").path])
        targetPort = try freePort()
        bastionPort = try freePort()
        let d = directory.path
        try """
        ListenAddress 127.0.0.1:\(targetPort)
        HostKey \(d)/host_key
        PidFile \(d)/sshd.pid
        UsePAM no
        StrictModes no
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        AuthorizedKeysFile none
        TrustedUserCAKeys \(d)/target_ca.pub
        MaxStartups 1000:30:1000
        MaxSessions 50
        SetEnv SHLVL=1
        LogLevel VERBOSE
        AcceptEnv GATEHOUSE_TEST LD_PRELOAD
        Subsystem sftp internal-sftp
        X11Forwarding yes
        X11UseLocalhost yes
        """.write(to: directory.appendingPathComponent("sshd_config"), atomically: true, encoding: .utf8)
        // SetEnv SHLVL=1: bash started by sshd otherwise sources ~/.bashrc, which on some machines
        // runs slow start-up (pyenv init: 0.2 s per session); that is the account's set-up, not
        // what the tests exercise.
        _ = Foundation.mkdir("/run/sshd", 0o755)
        targetPid = try spawnDaemon("/usr/sbin/sshd", ["-D", "-f", "\(d)/sshd_config", "-E", "\(d)/sshd.log"])
        _ = try waitForPidFile("\(d)/sshd.pid")

        let hostKey = try String(contentsOf: directory.appendingPathComponent("host_key.pub"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let otherHostKey = try String(contentsOf: directory.appendingPathComponent("other_host_key.pub"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try "[127.0.0.1]:\(targetPort) \(hostKey)\n".write(to: directory.appendingPathComponent("known_hosts"), atomically: true, encoding: .utf8)
        // Prints the argv it received, as Python's repr of the list: the target-side witness.
        try "#!/usr/bin/env python3\nimport sys\nsys.stdout.buffer.write(repr(sys.argv[1:]).encode())\n".write(to: directory.appendingPathComponent("argv-dump"), atomically: true, encoding: .utf8)
        chmod(directory.appendingPathComponent("argv-dump").path, 0o755)
        let downPort = try freePort()
        let yaml = """
        listen: ["127.0.0.1:\(bastionPort)"]
        state: \(state)
        host_keys: \(d)/hostkeys
        recordings: \(d)/recordings
        limits:
          login_grace: \(loginGrace)s
        \(maxUnauthenticated.map { "  max_unauthenticated: \($0)" } ?? "")
          max_forwards: \(maxForwards)
        targets:
          web-01:
            address: 127.0.0.1
            port: \(targetPort)
            login: \(login)
            labels: {env: test}
            host_key: "\(hostKey)"
          web-kh:
            address: 127.0.0.1
            port: \(targetPort)
            login: \(login)
            known_hosts: \(d)/known_hosts
          web-wrongkey:
            address: 127.0.0.1
            port: \(targetPort)
            login: \(login)
            host_key: "\(otherHostKey)"
          web-down:
            address: 127.0.0.1
            port: \(downPort)
            login: \(login)
            host_key: "\(hostKey)"
          web-nologin:
            address: 127.0.0.1
            port: \(targetPort)
            login: no-such-user-here
            host_key: "\(hostKey)"
        scopes:
          ops:
            targets: ["web-*"]
            rights: [exec, shell, pty, env]
            env: [GATEHOUSE_TEST]
            commands:
              - "echo {words...}"
              - "cat"
              - "cat {file: path under \(d)}"
              - "sha256sum"
              - "true"
              - "env"
              - "sleep {n: 1..600}"
              - "sh -c {script}"
              - "head -c {n: 1..2000000000} /dev/zero"
        \(extraScopes.replacingOccurrences(of: "@DIR@", with: d))
        \(extraSections.replacingOccurrences(of: "@DIR@", with: d))
        """
        try yaml.write(to: directory.appendingPathComponent("gatehouse.yaml"), atomically: true, encoding: .utf8)
        var configuration = try BastionConfiguration.load(file: directory.appendingPathComponent("gatehouse.yaml").path)
        configuration.log.level = "error"
        var logger = Logger(label: "test")
        logger.logLevel = .error
        server = try BastionServer(configuration: configuration, logger: logger)
        server.start()

        agentKey = directory.appendingPathComponent("agent")
        _ = try runChecked("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "agent", "-f", agentKey.path])
        try issueAgentCertificate(scopes: ["ops"])
    }

    func stop() {
        kill(targetPid, SIGTERM)
        var status: Int32 = 0
        waitpid(targetPid, &status, 0)
        try? FileManager.default.removeItem(at: directory)
    }

    /// Signs the agent key with the store's user CA and writes `agent-cert.pub`.
    @discardableResult
    func issueAgentCertificate(scopes: [String], keyID: String = "agent:test", validity: (UInt64, UInt64)? = nil,
                               criticalOptions: [CertificateOption] = [], extensions: [CertificateOption] = CertificateTemplate.defaultUserExtensions,
                               ca: SSHPrivateKey? = nil, output: String = "agent-cert.pub") throws -> SSHCertificate {
        let publicKey = try SSHPublicKey(openSSHLine: try String(contentsOf: directory.appendingPathComponent("agent.pub"), encoding: .utf8))
        let now = UInt64(Date().timeIntervalSince1970)
        let (after, before) = validity ?? CertificateTemplate.validFor(600, from: now)
        var exts = extensions
        exts.append(CertificateOption(name: CertificateExtension.scopes, value: scopes.joined(separator: ",")))
        exts.append(CertificateOption(name: CertificateExtension.context, value: "task=fixture"))
        let template = CertificateTemplate(key: publicKey, type: .user, serial: 0, keyID: keyID, principals: ["agent"], validAfter: after, validBefore: before,
                                           criticalOptions: criticalOptions, extensions: exts)
        let certificate: SSHCertificate
        if let ca {
            var t = template
            t.serial = UInt64.random(in: 1 ... .max)
            certificate = try t.sign(with: ca)
        } else {
            certificate = try store.issue(.user, template, actor: "test")
        }
        try (certificate.openSSHLine + "\n").write(to: directory.appendingPathComponent(output), atomically: true, encoding: .utf8)
        return certificate
    }

    /// The stock OpenSSH client through the bastion.
    func ssh(_ target: String, _ command: [String], options: [String] = [], identity: String? = nil, certificate: String? = "agent-cert.pub",
             stdin: Data = Data()) throws -> BinaryResult {
        var arguments = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                         "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20", "-i", identity ?? agentKey.path, "-p", String(bastionPort)]
        if let certificate { arguments += ["-o", "CertificateFile=\(directory.appendingPathComponent(certificate).path)"] }
        arguments += options + ["\(target)@127.0.0.1", "--"] + command
        return try runBinary("/usr/bin/ssh", arguments, stdin: stdin)
    }

    func auditRecords() throws -> [AuditRecord] { try AuditLog.records(path: auditPath) }

    /// The newest audit record matching `predicate`, waiting for it with a deadline: the server
    /// writes a session's end after the client has already gone.
    func awaitAudit(timeout: TimeInterval = 10, _ predicate: (AuditRecord) -> Bool) -> AuditRecord? {
        let until = Date().addingTimeInterval(timeout)
        repeat {
            if let found = (try? auditRecords())?.last(where: predicate) { return found }
            usleep(20_000)
        } while Date() < until
        return nil
    }

    /// Lines the target's sshd logged about incoming connections: "the target saw nothing" is
    /// this count not changing.
    func targetConnectionCount() -> Int {
        ((try? String(contentsOf: sshdLog, encoding: .utf8)) ?? "").components(separatedBy: "\n").filter { $0.contains("Connection from") }.count
    }

    /// Waits (with a deadline) until every connection to the bastion has ended.
    func waitForIdle(timeout: TimeInterval = 15) -> Bool {
        let until = Date().addingTimeInterval(timeout)
        while Date() < until {
            if server.context.connections.connections == 0 { return true }
            usleep(20_000)
        }
        return false
    }
}



/// Test classes that share one fixture (a target sshd and a bastion) across their tests. A
/// subclass may override `makeFixture()` for extra scopes or limits.
class SharedFixtureTestCase: XCTestCase {
    nonisolated(unsafe) static var shared: BastionFixture!
    var f: BastionFixture { Self.shared }

    class func makeFixture() throws -> BastionFixture { try BastionFixture() }

    override class func setUp() {
        super.setUp()
        shared = try! makeFixture()
    }

    override class func tearDown() {
        shared.stop()
        shared = nil
        super.tearDown()
    }
}

/// Test classes that need a fixture of their own for every test (they rotate CAs, fill disks, kill servers).
class FreshFixtureTestCase: XCTestCase {
    var f: BastionFixture!

    override func setUp() {
        super.setUp()
        f = try! BastionFixture()
    }

    override func tearDown() {
        f.stop()
        super.tearDown()
    }
}

/// What each open descriptor points at, for a leak report.
func openFileDescriptorTargets() -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return names.compactMap { try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)") }.sorted()
}
