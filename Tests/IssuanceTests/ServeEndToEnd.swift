import CertificateAuthority
import Foundation
import SSHCertificates
import XCTest

/// The whole path as an operator runs it: a real OpenSSH sshd target on 127.0.0.1 trusting the
/// target CA, the `gatehouse serve` executable with an `issuance:` section in front of it,
/// `gatehouse login` trading a token for a certificate, and the stock `ssh` client using it.
final class ServeEndToEnd: @unchecked Sendable {
    let directory: URL
    let bastionPort: Int
    let issuancePort: Int
    let targetPort: Int
    let targetPid: pid_t
    let serve: Child
    var serveOutput = ""
    let login = String(cString: getpwuid(getuid())!.pointee.pw_name)
    var auditPath: String { directory.appendingPathComponent("state/audit.log").path }

    /// `issuers` is the YAML list under `issuance.issuers`, indented by 4 spaces.
    init(issuers: String, groupsClaim: String = "groups") throws {
        guard FileManager.default.isExecutableFile(atPath: gatehouseBinary) else { throw XCTSkip("\(gatehouseBinary) not built") }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-e2e-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let d = directory.path
        let store = try CAStore.initialize(at: "\(d)/state", actor: "test")
        try (store.trustedPublicKeys(.target).map(\.openSSHLine).joined(separator: "\n") + "\n").write(toFile: "\(d)/target_ca.pub", atomically: true, encoding: .utf8)
        try runChecked("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", "\(d)/host_key"])
        targetPort = try freePort()
        bastionPort = try freePort()
        issuancePort = try freePort()
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
        LogLevel VERBOSE
        """.write(toFile: "\(d)/sshd_config", atomically: true, encoding: .utf8)
        _ = Foundation.mkdir("/run/sshd", 0o755)
        targetPid = try spawnDaemon("/usr/sbin/sshd", ["-D", "-f", "\(d)/sshd_config", "-E", "\(d)/sshd.log"])
        _ = try waitForPidFile("\(d)/sshd.pid")
        let hostKey = try String(contentsOfFile: "\(d)/host_key.pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        try """
        listen: ["127.0.0.1:\(bastionPort)"]
        state: \(d)/state
        host_keys: \(d)/hostkeys
        recordings: \(d)/recordings
        log: {level: error}
        targets:
          web-01:
            address: 127.0.0.1
            port: \(targetPort)
            login: \(login)
            host_key: "\(hostKey)"
        scopes:
          ops:
            targets: ["web-*"]
            rights: [exec]
            commands: ["echo {words...}"]
          dev-read:
            targets: ["web-*"]
            rights: [exec]
            commands: ["true"]
        issuance:
          listen: 127.0.0.1:\(issuancePort)
          rate_limit: {per_minute: 600, burst: 100}
          mapping:
            key_id: "oidc:{sub}"
            principals: ["{sub}"]
            groups_claim: \(groupsClaim)
            group_scopes: {ops: [ops], dev: [dev-read], admin: [ops, dev-read]}
          issuers:
        \(issuers)
        """.write(toFile: "\(d)/gatehouse.yaml", atomically: true, encoding: .utf8)
        serve = try Child(gatehouseBinary, ["serve", "--config", "\(d)/gatehouse.yaml"])
        // Its "gatehouse: listening" line comes after both listeners are bound.
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("gatehouse: listening on") {
            let chunk = serve.stdout.availableData
            if chunk.isEmpty { break }
            seen.append(chunk)
        }
        serveOutput = String(decoding: seen, as: UTF8.self)
        guard serveOutput.contains("gatehouse: listening on") else {
            let err = String(decoding: serve.stderr.availableData, as: UTF8.self)
            stop()
            throw NSError(domain: "serve", code: 1, userInfo: [NSLocalizedDescriptionKey: "gatehouse serve did not start: \(serveOutput) \(err)"])
        }
    }

    /// `gatehouse login` with the token in an environment variable.
    func loginWith(token: String, key: String = "agent", extra: [String] = []) throws -> BinaryResult {
        var environment = ProcessInfo.processInfo.environment
        environment["GATEHOUSE_TOKEN"] = token
        return try runBinary(gatehouseBinary, ["login", "--server", "http://127.0.0.1:\(issuancePort)", "--token-env", "GATEHOUSE_TOKEN",
                                               "--key", directory.appendingPathComponent(key).path, "--bastion", "127.0.0.1:\(bastionPort)"] + extra,
                             environment: environment)
    }

    func ssh(key: String = "agent", _ command: [String]) throws -> BinaryResult {
        let k = directory.appendingPathComponent(key).path
        return try runBinary("/usr/bin/ssh", ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                                              "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20", "-i", k,
                                              "-o", "CertificateFile=\(k)-cert.pub", "-p", String(bastionPort), "web-01@127.0.0.1", "--"] + command)
    }

    /// SIGTERM, and the exit status (nil if it had to be killed).
    func terminate() -> Int32? {
        kill(serve.pid, SIGTERM)
        return serve.wait(timeout: 20)
    }

    func stop() {
        kill(serve.pid, SIGKILL)
        _ = serve.wait(timeout: 10)
        kill(targetPid, SIGTERM)
        var status: Int32 = 0
        waitpid(targetPid, &status, 0)
        try? FileManager.default.removeItem(at: directory)
    }
}
