import Audit
import Foundation
import SSHCertificates
import Synchronization

/// The CA store as the running server sees it. `gatehouse ca rotate` and `cert revoke` run in
/// other processes and change files on disk; before each login and each target certificate the
/// store is reloaded if any of its state files changed, so trust follows rotation and
/// revocation without a restart. The lock keeps a reload and the file times it was made from
/// together, so two threads never both reload for one change. (It lives next to the store so
/// the issuance assembly needs the store, not the bastion.)
public final class LiveAuthorities: Sendable {
    struct State {
        var store: CAStore
        var fingerprint: [String: timespec]
        var revocations: KeyRevocationList
    }

    private let state: Mutex<State>
    public let root: String

    public init(root: String, audit: (any AuditSink)? = nil, serials: SerialSource = .random) throws {
        self.root = root
        let store = try CAStore.open(at: root, audit: audit, serials: serials)
        state = Mutex(State(store: store, fingerprint: Self.fileTimes(root), revocations: store.revocationList()))
    }

    /// Paths whose change means the store must be reloaded.
    static func watchedFiles(_ root: String) -> [String] {
        AuthorityName.allCases.map { "\(root)/ca/\($0.rawValue)/state.json" } + ["\(root)/revocations.json"]
    }

    static func fileTimes(_ root: String) -> [String: timespec] {
        var result: [String: timespec] = [:]
        for path in watchedFiles(root) {
            var info = stat()
            if stat(path, &info) == 0 { result[path] = info.st_mtim } else { result[path] = timespec(tv_sec: -1, tv_nsec: 0) }
        }
        return result
    }

    /// Reloads the store when its files changed. A store that fails to load keeps the last good
    /// one in force and reports why (an admin mid-edit must not open the door or lock everyone out).
    @discardableResult
    public func refresh() -> Error? {
        state.withLock { s in
            let now = Self.fileTimes(root)
            let changed = now.contains { path, time in
                guard let old = s.fingerprint[path] else { return true }
                return old.tv_sec != time.tv_sec || old.tv_nsec != time.tv_nsec
            }
            guard changed else { return nil }
            do {
                try s.store.reload()
                s.revocations = s.store.revocationList()
                s.fingerprint = now
                return nil
            } catch {
                return error
            }
        }
    }

    public func trusted(_ name: AuthorityName) -> [SSHPublicKey] {
        state.withLock { $0.store.trustedPublicKeys(name) }
    }

    public var revocations: KeyRevocationList { state.withLock { $0.revocations } }

    /// Signs with the authority's current signing key (audited by the store).
    public func issue(_ name: AuthorityName, _ template: CertificateTemplate, actor: String) throws -> SSHCertificate {
        try state.withLock { try $0.store.issue(name, template, actor: actor) }
    }

    /// The key that signs recordings' checkpoints and trailers.
    public func signingKey(_ name: AuthorityName) -> SSHPrivateKey {
        state.withLock { $0.store.signingKey(name) }
    }

    /// The chain the store audits into.
    public var audit: any AuditSink { state.withLock { $0.store.audit } }
}
