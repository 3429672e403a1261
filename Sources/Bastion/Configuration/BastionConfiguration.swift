import Foundation
import Policy
import SSHCertificates

/// Everything `gatehouse serve` runs on. Every field has a safe default, so starting with no
/// configuration file gives a bastion on 127.0.0.1:2222 that knows no targets.
public struct BastionConfiguration: Sendable {
    /// Where the SSH front listens. Each entry is `host:port` or `[v6]:port`.
    public var listen: [ListenAddress] = [ListenAddress(host: "127.0.0.1", port: 2222)]
    /// The CA store and the audit log (`gatehouse ca init --state`).
    public var stateDirectory = "./var/gatehouse"
    /// Generated host keys, 0600, never committed.
    public var hostKeyDirectory = "./hostkeys"
    /// Session recordings.
    public var recordingDirectory = "./var/gatehouse/recordings"
    public var log = LogSettings()
    public var limits = Limits()
    public var algorithms = AlgorithmSettings()
    public var targets: [String: TargetConfiguration] = [:]
    public var policy = PolicySet([])
    /// The file this was read from, for SIGHUP reloads; nil when running on the defaults.
    public var sourceFile: String?

    public init() {}
}

public struct LogSettings: Sendable {
    public enum Format: String, Sendable { case text, json }
    public var format: Format = .text
    public var level = "info"
}

/// Bounds that keep one misbehaving client from hurting the others.
public struct Limits: Sendable {
    /// Key exchange, authentication and the first channel request must finish within this.
    public var loginGraceSeconds = 10
    /// Connections still negotiating or authenticating at once (sshd's MaxStartups); more are
    /// dropped at accept so a flood of half-open connections cannot starve real logins.
    public var maxUnauthenticated = 64
    /// Keepalives to both sides of a live session; 0 turns them off.
    public var keepaliveSeconds = 30
    public var targetConnectTimeoutSeconds = 10
    /// Lifetime of the per-session certificate presented to the target.
    public var targetCertificateSeconds = 300
    /// Forwarded channels (and `-R` listeners) open at once on one connection: each holds a
    /// recording and a target channel, so a client opening thousands is refused past this.
    public var maxForwards = 32
}

/// Modern algorithms only: no SHA-1, no CBC, no DSA, no group1/group14-sha1.
public struct AlgorithmSettings: Sendable {
    public var keyExchange = ["curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384",
                              "ecdh-sha2-nistp521", "diffie-hellman-group16-sha512", "diffie-hellman-group18-sha512"]
    public var ciphers = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes256-ctr", "aes128-ctr"]
    public var macs = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512"]
    public var hostKeys = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512", "rsa-sha2-256"]
}

/// A host Gatehouse may open sessions to, named by the SSH user name agents connect with.
public struct TargetConfiguration: Sendable {
    public var name: String
    public var address: String
    public var port: Int
    /// The account on the target; a scope's `login` overrides it.
    public var login: String
    public var labels: [String: String]
    public var hostKey: HostKeyCheck

    public init(name: String, address: String, port: Int = 22, login: String, labels: [String: String] = [:], hostKey: HostKeyCheck) {
        self.name = name
        self.address = address
        self.port = port
        self.login = login
        self.labels = labels
        self.hostKey = hostKey
    }

    public var descriptor: TargetDescriptor { TargetDescriptor(name: name, labels: labels) }
}

/// How a target's host key is verified. There is no "accept anything" mode.
public enum HostKeyCheck: Sendable {
    /// One or more pinned public keys.
    case pinned([SSHPublicKey])
    /// An OpenSSH known_hosts file, looked up by `hostName` (default: the target's address and port).
    case knownHosts(path: String, hostName: String?)
    /// A host certificate signed by one of these CAs, naming `principal` (default: the address).
    case hostCA(keys: [SSHPublicKey]?, principal: String?)
}
