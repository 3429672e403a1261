import ConfigurationSupport
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
    public var approvals = ApprovalSettings()
    public var masking = MaskingSettings()
    /// The file this was read from, for SIGHUP reloads; nil when running on the defaults.
    public var sourceFile: String?

    public init() {}
}

/// `approvals:`: where requests for a person's approval are announced. The state lives in
/// `STATE/approvals`; who may decide is each scope's `approvers`.
public struct ApprovalSettings: Sendable {
    /// Every new request is POSTed here as JSON, signed with HMAC-SHA256 (retried with backoff,
    /// never delaying the agent).
    public var webhookURL: String?
    public var webhookSecretFile: String?
}

public struct LogSettings: Sendable {
    public enum Format: String, Sendable { case text, json }
    public var format: Format = .text
    public var level = "info"
}

/// Bounds that keep one misbehaving client from hurting the others.
public struct Limits: Sendable {
    /// Key exchange and authentication must finish within this, counted from accept. It never
    /// applies once the agent has logged in.
    public var loginGraceSeconds = 10
    /// Connections still negotiating or authenticating at once (sshd's MaxStartups "full").
    /// Past it a new connection waits in the queue, or takes the slot of the oldest connection
    /// of the source that holds the most, so a flood from some sources cannot starve the others.
    public var maxUnauthenticated = 128
    /// Unauthenticated connections one source (an address; a /64 for IPv6) may hold at once;
    /// more from it wait in the queue.
    public var maxUnauthenticatedPerSource = 32
    /// Past this many unauthenticated connections, sources with a standing penalty are dropped
    /// at random, more often as the count nears `maxUnauthenticated` (sshd's MaxStartups start:rate:full).
    public var earlyDropStart = 64
    /// Accepted connections that wait for an unauthenticated slot (beyond the kernel's listen
    /// backlog of 512); past this, and after 120 s (or twice the login grace) of waiting, a clean refusal.
    public var maxQueued = 1024
    /// Penalties for sources that fail or never authenticate (OpenSSH 9.8's PerSourcePenalties).
    public var penalties = PenaltySettings()
    /// Session channels open at once on one connection (sshd's MaxSessions).
    public var maxSessions = 10
    /// An authenticated connection with no channel open for this long is closed (a
    /// ControlPersist master keeps its connection while it is used).
    public var idleConnectionSeconds = 600
    /// Keepalives to both sides of a live session; 0 turns them off.
    public var keepaliveSeconds = 30
    public var targetConnectTimeoutSeconds = 10
    /// Lifetime of the per-session certificate presented to the target.
    public var targetCertificateSeconds = 300
    /// Forwarded channels (and `-R` listeners) open at once on one connection: each holds a
    /// recording and a target channel, so a client opening thousands is refused past this.
    public var maxForwards = 32
}

/// What a source earns by failing: seconds added to its penalty. A source whose penalty stands
/// at `minimum` or more is refused at accept until it has decayed below; penalties never exceed
/// `maximum`. Exempt sources are never penalised (a monitoring host, a known NAT).
public struct PenaltySettings: Sendable {
    /// Garbage instead of SSH, or a key exchange that failed.
    public var handshakeFailed = 2
    /// Held a slot for the whole login grace without logging in.
    public var graceExceeded = 10
    /// Offered keys or methods and was refused every time.
    public var authenticationFailed = 0
    /// Connected and left without trying to log in (port scanners, ssh-keyscan).
    public var disconnected = 0
    public var minimum = 15
    public var maximum = 600
    public var exempt: [CIDRBlock] = []
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
