import Audit
import Foundation
import SSHCertificates
import Synchronization

/// The certificate authorities on disk:
///
///     STATE/ (0700)
///       audit.log
///       revocations.json
///       ca/<name>/state.json          phase and keys (atomic, durable replace)
///       ca/<name>/keys/<id>.key       openssh-key-v1 private keys, 0600
///
/// Key files are written before the state that references them and deleted after the state
/// that drops them, so a kill -9 at any point leaves a store that loads in a consistent phase
/// (an orphan key file is ignored). The store refuses to load when anything holding a private
/// key is readable by group or others.
///
/// Safe to share across threads: what was read from disk is one immutable `Snapshot`, swapped
/// whole under a lock by `reload`, and every reader works from one snapshot (so it never sees
/// the states of one load with the keys of another).
public final class CAStore: Sendable {
    public let root: String
    /// The chain the store's changes and signatures are audited in: the state directory's
    /// `audit.log`, or the database's chain when replicas share one.
    public let audit: any AuditSink
    /// Where `issue` takes a serial: random 64-bit numbers on a single machine, the shared
    /// sequence when replicas must never hand out one serial twice.
    public let serials: SerialSource

    /// Everything read from disk by one load.
    struct Snapshot: Sendable {
        var states: [AuthorityName: AuthorityState]
        var privateKeys: [String: SSHPrivateKey]
        var revocations: RevocationsFile
        /// The recording authority's state.json modification time when read (see `signingKey`).
        var recordingStateTime: timespec
    }

    private let current: Mutex<Snapshot>
    private var snapshot: Snapshot { current.withLock { $0 } }

    /// The grace period before retiring a rotated-out key: no shorter than the longest
    /// certificate lifetime the CA signs.
    public static let defaultGracePeriod: [AuthorityName: TimeInterval] = [.user: 24 * 3600, .target: 3600, .host: 30 * 86400, .recording: 0]

    private init(root: String, audit: any AuditSink, serials: SerialSource, states: [AuthorityName: AuthorityState], keys: [String: SSHPrivateKey],
                 revocations: RevocationsFile) {
        self.root = root
        self.audit = audit
        self.serials = serials
        current = Mutex(Snapshot(states: states, privateKeys: keys, revocations: revocations,
                                 recordingStateTime: Self.modificationTime("\(Self.authorityDir(root, .recording))/state.json")))
    }

    static func modificationTime(_ path: String) -> timespec {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mtim : timespec(tv_sec: -1, tv_nsec: 0)
    }

    static func authorityDir(_ root: String, _ name: AuthorityName) -> String { "\(root)/ca/\(name.rawValue)" }
    static func keyPath(_ root: String, _ name: AuthorityName, _ id: String) -> String { "\(authorityDir(root, name))/keys/\(id).key" }

    // MARK: Creating and opening

    /// Creates the store's keys and states under `root`. `audit` defaults to `root/audit.log`.
    public static func initialize(at root: String, algorithm: SSHKeyAlgorithm = .ed25519, actor: String, audit sink: (any AuditSink)? = nil,
                                  serials: SerialSource = .random) throws -> CAStore {
        if FileManager.default.fileExists(atPath: "\(root)/ca/user/state.json") {
            throw CAStoreError("\(root) already holds a CA store; use `gatehouse ca status` to see it")
        }
        for dir in [root, "\(root)/ca"] + AuthorityName.allCases.flatMap({ [authorityDir(root, $0), "\(authorityDir(root, $0))/keys"] }) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            chmod(dir, 0o700)
        }
        let audit = try sink ?? AuditLog(path: "\(root)/audit.log")
        for name in AuthorityName.allCases {
            let key = try SSHPrivateKey.generate(name == .recording ? .ed25519 : algorithm, comment: "gatehouse-\(name.rawValue)-ca")
            let stored = try writeKey(key, root: root, name: name, role: .active, activeFromMicros: Date().micros)
            let state = AuthorityState(phase: .standby, keys: [stored], updateStarted: nil, gracePeriod: defaultGracePeriod[name]!, changed: Date())
            try writeState(state, root: root, name: name)
            try audit.append(AuditEvent(actor: actor, action: "ca.init", object: name.rawValue, outcome: .success,
                                        details: ["fingerprint": stored.fingerprint, "algorithm": stored.algorithm]))
        }
        return try open(at: root, audit: audit, serials: serials)
    }

    /// Opens the store under `root`. `audit` defaults to `root/audit.log`.
    public static func open(at root: String, audit sink: (any AuditSink)? = nil, serials: SerialSource = .random) throws -> CAStore {
        guard FileManager.default.fileExists(atPath: "\(root)/ca/user/state.json") else {
            throw CAStoreError("no CA store at \(root); create one with `gatehouse ca init --state \(root)`")
        }
        try checkPrivate(root, isDirectory: true)
        var states: [AuthorityName: AuthorityState] = [:]
        var keys: [String: SSHPrivateKey] = [:]
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        // snake_case since key history; camelCase files from before read the same (a key
        // without underscores passes through the conversion unchanged).
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        for name in AuthorityName.allCases {
            let dir = authorityDir(root, name)
            try checkPrivate(dir, isDirectory: true)
            try checkPrivate("\(dir)/keys", isDirectory: true)
            let statePath = "\(dir)/state.json"
            guard let data = FileManager.default.contents(atPath: statePath) else { throw CAStoreError("\(statePath) is missing") }
            let state: AuthorityState
            do { state = try decoder.decode(AuthorityState.self, from: data) } catch { throw CAStoreError("\(statePath) is not a valid state file: \(error)") }
            if let problem = state.checkConsistency() { throw CAStoreError("\(statePath): \(problem)") }
            for stored in state.keys {
                let path = keyPath(root, name, stored.id)
                try checkPrivate(path, isDirectory: false)
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw CAStoreError("\(path) is missing or unreadable (referenced by \(statePath))") }
                let key: SSHPrivateKey
                do { key = try OpenSSHPrivateKeyFile.parse(text) } catch { throw CAStoreError("\(path): \(error)") }
                guard key.publicKey.fingerprint == stored.fingerprint else { throw CAStoreError("\(path) does not match the fingerprint \(stored.fingerprint) in \(statePath)") }
                keys[stored.id] = key
            }
            states[name] = state
        }
        let revocations = try RevocationsFile.load("\(root)/revocations.json")
        return CAStore(root: root, audit: try sink ?? AuditLog(path: "\(root)/audit.log"), serials: serials, states: states, keys: keys,
                       revocations: revocations)
    }

    static func checkPrivate(_ path: String, isDirectory: Bool) throws {
        var st = stat()
        guard stat(path, &st) == 0 else { throw CAStoreError("\(path) is missing") }
        let mode = st.st_mode & 0o777
        if mode & 0o077 != 0 {
            throw CAStoreError("\(path) has mode \(String(mode, radix: 8)), readable by group or others; fix it with `chmod \(isDirectory ? "700" : "600") \(path)`")
        }
    }

    static func writeKey(_ key: SSHPrivateKey, root: String, name: AuthorityName, role: KeyRole, activeFromMicros: UInt64?) throws -> StoredKey {
        let id = "\(name.rawValue)-\(Int(Date().timeIntervalSince1970))-\(String(UInt32.random(in: 0 ... .max), radix: 16))"
        try DurableFile.write(Array(OpenSSHPrivateKeyFile.serialize(key).utf8), to: keyPath(root, name, id), mode: 0o600)
        return StoredKey(id: id, algorithm: key.algorithm.keyTypeName, fingerprint: key.publicKey.fingerprint,
                         publicKey: key.publicKey.openSSHLine, role: role, created: Date(), activeFromMicros: activeFromMicros)
    }

    static func writeState(_ state: AuthorityState, root: String, name: AuthorityName) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        encoder.keyEncodingStrategy = .convertToSnakeCase
        try DurableFile.write(Array(try encoder.encode(state)), to: "\(authorityDir(root, name))/state.json", mode: 0o600)
    }

    // MARK: Reading

    public func status() -> [AuthorityStatus] {
        let states = snapshot.states
        return AuthorityName.allCases.map { name in
            let s = states[name]!
            return AuthorityStatus(name: name, phase: s.phase,
                                   keys: s.keys.map { .init(id: $0.id, role: $0.role, algorithm: $0.algorithm, fingerprint: $0.fingerprint,
                                                            created: $0.created, activeFromMicros: $0.activeFrom) },
                                   retireAllowedAt: s.updateStarted.map { $0.addingTimeInterval(s.gracePeriod) },
                                   retired: s.history.map { .init(id: $0.id, algorithm: $0.algorithm, fingerprint: $0.fingerprint,
                                                                  activeFromMicros: $0.activeFromMicros, retiredMicros: $0.retiredMicros, how: $0.how) })
        }
    }

    /// Every key that may have signed something still around, with the interval it was active:
    /// the current keys that have signed (open-ended) and the verify-only keys (bounded by their
    /// retirement). A key that never signed (a `next` key, one rolled back from init) is not
    /// listed. This is what recordings are verified against; it never authorizes anything new
    /// (logins and certificates use `trustedPublicKeys`).
    public func verificationKeys(_ name: AuthorityName) -> [TrustedKey] {
        let snapshot = snapshot
        let s = snapshot.states[name]!
        let retired = s.history.compactMap { key -> TrustedKey? in
            guard let from = key.activeFromMicros, let publicKey = try? SSHPublicKey(openSSHLine: key.publicKey) else { return nil }
            return TrustedKey(key: publicKey, activeFromMicros: from, activeUntilMicros: key.retiredMicros)
        }
        let current = s.keys.compactMap { key -> TrustedKey? in
            guard let from = key.activeFrom, let publicKey = snapshot.privateKeys[key.id]?.publicKey else { return nil }
            return TrustedKey(key: publicKey, activeFromMicros: from)
        }
        return retired + current
    }

    public func phase(_ name: AuthorityName) -> RotationPhase { snapshot.states[name]!.phase }

    /// Every key that may verify in the current phase: what validators trust and `ca export` prints.
    public func trustedPublicKeys(_ name: AuthorityName) -> [SSHPublicKey] {
        let snapshot = snapshot
        return snapshot.states[name]!.trusted.compactMap { snapshot.privateKeys[$0.id]?.publicKey }
    }

    /// The key that signs for `name` now. For the recording key the store first re-reads itself
    /// if a rotation changed it on disk (one stat): a server whose store was loaded before a
    /// `ca rotate recording` must not go on signing new recordings with a key that was retired
    /// meanwhile, which would date them outside that key's interval and fail verification. (The
    /// server refreshes the store before each login, but a connection may open a session
    /// channel long after its login.)
    public func signingKey(_ name: AuthorityName) -> SSHPrivateKey {
        if name == .recording {
            let now = Self.modificationTime("\(Self.authorityDir(root, .recording))/state.json")
            let seen = snapshot.recordingStateTime
            if now.tv_sec != seen.tv_sec || now.tv_nsec != seen.tv_nsec {
                // A store that fails to load (mid-edit) keeps the last good one in force.
                try? reload()
            }
        }
        let snapshot = snapshot
        return snapshot.privateKeys[snapshot.states[name]!.signing!.id]!
    }

    func stateOf(_ name: AuthorityName) -> AuthorityState { snapshot.states[name]! }
    var currentRevocations: RevocationsFile { snapshot.revocations }

    /// Re-reads the store from disk (after a rotation here or by another process), so trust
    /// follows rotation without a restart.
    public func reload() throws {
        let fresh = try CAStore.open(at: root, audit: audit, serials: serials).snapshot
        current.withLock { $0 = fresh }
    }

    func reloadRevocations() throws {
        let revocations = try RevocationsFile.load("\(root)/revocations.json")
        current.withLock { $0.revocations = revocations }
    }
}
