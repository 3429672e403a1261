import ArgumentParser
import AsyncHTTPClient
import Dispatch
import Foundation
import NIOCore
import NIOSSL
import SSHCertificates
import Synchronization

/// `gatehouse login`: trade an OIDC token for a user certificate from a Gatehouse issuance
/// listener, and print how to use it.
struct LoginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login", abstract: "Trade an OIDC token for a short-lived user certificate.",
        discussion: """
        Generates an Ed25519 key at --key if there is none, posts its public key with the token to \
        SERVER/v1/certificates, writes KEY-cert.pub and prints the ssh command and an ssh_config block.
        """)

    @Option(help: "The issuance service, e.g. https://gatehouse.example.com:8022") var server: String
    @Option(name: .customLong("token-file"), help: "Read the bearer token from this file.") var tokenFile: String?
    @Option(name: .customLong("token-env"), help: "Read the bearer token from this environment variable.") var tokenEnv: String?
    @Option(help: "Private key path (created as Ed25519 if missing); the certificate goes to KEY-cert.pub.") var key: String
    @Option(help: "Requested lifetime in seconds or 90s/10m/1h (the server may shorten it).") var ttl: String?
    @Option(name: .customLong("ca-file"), help: "PEM CA bundle to verify the server's TLS certificate.") var caFile: String?
    @Option(name: .customLong("task-id"), help: "Context: the task this certificate is for.") var taskID: String?
    @Option(help: "Context: why the certificate is requested.") var reason: String?
    @Option(help: "Context: the prompt that caused this task (its text goes to the issuance audit record, its SHA-256 into the certificate).") var prompt: String?
    @Option(name: .customLong("scope"), help: "Narrow to this granted scope (repeatable).") var scopes: [String] = []
    @Option(name: .customLong("target"), help: "Narrow to this target name or glob (repeatable).") var targets: [String] = []
    @Option(name: .customLong("command"), help: "Narrow to this command line or pattern (repeatable).") var commands: [String] = []
    @Option(name: .customLong("max-sessions"), help: "The certificate may open at most this many sessions.") var maxSessions: Int?
    @Option(help: "The bastion's SSH address host:port for the printed command (default: the first address the issuance answer names).") var bastion: String?

    func run() throws {
        guard (tokenFile == nil) != (tokenEnv == nil) else { throw CLIError("give exactly one of --token-file FILE or --token-env VAR") }
        let token: String
        if let tokenFile { token = try readFile(tokenFile).trimmingCharacters(in: .whitespacesAndNewlines) } else {
            guard let value = ProcessInfo.processInfo.environment[tokenEnv!], !value.isEmpty else { throw CLIError("environment variable \(tokenEnv!) is not set") }
            token = value.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let base = URL(string: server), let scheme = base.scheme, ["http", "https"].contains(scheme), let host = base.host else {
            throw CLIError("--server \(server): expected an http(s) URL")
        }
        let publicKey = try Self.ensureKey(at: key)
        var body: [String: Any] = ["public_key": publicKey.openSSHLine]
        if let ttl { body["ttl"] = try Duration.parseSeconds(ttl, option: "--ttl") }
        var context: [String: String] = [:]
        if let taskID { context["task_id"] = taskID }
        if let reason { context["reason"] = reason }
        if let prompt { context["prompt"] = prompt }
        if !context.isEmpty { body["context"] = context }
        if !scopes.isEmpty { body["scopes"] = scopes }
        if !targets.isEmpty { body["targets"] = targets }
        if !commands.isEmpty { body["commands"] = commands }
        if let maxSessions { body["max_sessions"] = maxSessions }
        let payload = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        let url = (server.hasSuffix("/") ? String(server.dropLast()) : server) + "/v1/certificates"
        let (status, answer) = try Self.post(url, token: token, body: Array(payload), caFile: caFile)
        guard let object = try? JSONSerialization.jsonObject(with: Data(answer)) as? [String: Any] else {
            throw CLIError("\(url) answered \(status) with a body that is not JSON")
        }
        guard status == 200, let line = object["certificate"] as? String else {
            throw CLIError("refused (\(status) \(object["code"] as? String ?? "?"), rule \(object["rule"] as? String ?? "?")): \(object["reason"] as? String ?? "")")
        }
        let certificate: SSHCertificate
        do { certificate = try SSHCertificate(openSSHLine: line) } catch { throw CLIError("the server's certificate does not parse: \(error)") }
        guard certificate.key == publicKey else { throw CLIError("the server certified a different key than \(key).pub") }
        let certPath = key + "-cert.pub"
        do { try Data((line + "\n").utf8).write(to: URL(fileURLWithPath: certPath)) } catch { throw CLIError("cannot write \(certPath): \(error.localizedDescription)") }
        let scopes = (object["scopes"] as? [String] ?? []).joined(separator: ",")
        // The answer names the bastion's SSH addresses (issuance.bastion_addresses, or where
        // `serve` listens); an older server that names none leaves the server's host, port 2222.
        let offered = object["bastion_addresses"] as? [String] ?? []
        let hostPort = bastion ?? offered.first ?? "\(host):2222"
        var (sshHost, sshPort) = Self.split(hostPort)
        // A wildcard listen address is not somewhere to connect to: the issuance server's host is.
        if sshHost == "0.0.0.0" || sshHost == "::" { sshHost = host }
        print("Wrote \(certPath): key id \"\(certificate.keyID)\", serial \(certificate.serial), scopes \(scopes), valid until \(Timestamps.format(certificate.validBefore))")
        print("")
        print("ssh -i \(key) -o CertificateFile=\(certPath) -o IdentitiesOnly=yes -p \(sshPort) TARGET@\(sshHost) -- COMMAND")
        if bastion == nil && offered.count > 1 { print("# the bastion also answers on: \(offered.dropFirst().joined(separator: ", "))") }
        print("")
        print("""
        Host gatehouse-*
          HostName \(sshHost)
          Port \(sshPort)
          IdentityFile \(key)
          CertificateFile \(certPath)
          IdentitiesOnly yes
        # then: ssh -o User=TARGET gatehouse-1 -- COMMAND
        """)
    }

    static func split(_ hostPort: String) -> (String, Int) {
        if let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]) {
            return (String(hostPort[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
        }
        return (hostPort, 22)
    }

    /// The key at `path`, generated (Ed25519, 0600, with PATH.pub) when missing.
    static func ensureKey(at path: String) throws -> SSHPublicKey {
        if FileManager.default.fileExists(atPath: path) {
            do { return try OpenSSHPrivateKeyFile.parse(try readFile(path)).publicKey } catch let e as CLIError { throw e } catch {
                throw CLIError("\(path): \(error) (an unencrypted OpenSSH private key is needed)")
            }
        }
        let generated = try SSHPrivateKey.generate(.ed25519, comment: "gatehouse-login")
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw CLIError("cannot create \(path): \(String(cString: strerror(errno)))") }
        let bytes = Array(OpenSSHPrivateKeyFile.serialize(generated).utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count else { throw CLIError("cannot write \(path)") }
        try Data((generated.publicKey.openSSHLine + " gatehouse-login\n").utf8).write(to: URL(fileURLWithPath: path + ".pub"))
        print("Generated a new Ed25519 key \(path)")
        return generated.publicKey
    }

    /// One POST through AsyncHTTPClient, waited for from this synchronous command.
    static func post(_ url: String, token: String, body: [UInt8], caFile: String?) throws -> (Int, [UInt8]) {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile { tls.trustRoots = .file(caFile) }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let result = Mutex<Result<(Int, [UInt8]), any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(body)
                let response = try await client.execute(request, timeout: .seconds(30))
                let data = try await response.body.collect(upTo: 1 << 20)
                result.withLock { $0 = .success((Int(response.status.code), Array(buffer: data))) }
            } catch {
                result.withLock { $0 = .failure(error) }
            }
            try? await client.shutdown()
            done.signal()
        }
        done.wait()
        do { return try result.withLock { $0! }.get() } catch { throw CLIError("POST \(url): \(error)") }
    }
}
