import Approvals
import AsyncHTTPClient
import Audit
import CertificateAuthority
import Dispatch
import Foundation
import Issuance
import Logging
import SSHCertificates
import Synchronization

/// The live CA store as the issuance service sees it: the same store the bastion logs in
/// against, re-read (at most once a second) when `gatehouse ca rotate` or `cert revoke` changed
/// it from another process, so a rotation takes effect for new certificates without a restart.
final class LiveSigningAuthority: SigningAuthority {
    let live: LiveAuthorities
    private let lastRefresh = Mutex(0.0)

    init(_ live: LiveAuthorities) { self.live = live }

    private func refreshIfDue() {
        let now = Date().timeIntervalSince1970
        let due = lastRefresh.withLock { last -> Bool in
            guard now - last >= 1 else { return false }
            last = now
            return true
        }
        if due { live.refresh() }
    }

    func userSigningKey() throws -> SSHPrivateKey { refreshIfDue(); return live.signingKey(.user) }
    func trustedKeys(_ name: AuthorityName) -> [SSHPublicKey] { refreshIfDue(); return live.trusted(name) }
    func revocationList() -> KeyRevocationList { refreshIfDue(); return live.revocations }
}

enum IssuanceAssembly {
    /// Starts the issuance listener next to the bastion and returns once it is bound (or throws
    /// why it could not be), so "listening" is only printed when both listeners answer.
    /// `authorities` and `audit` are the bastion's own (one CA store, one audit chain per process);
    /// `metrics` is what `/metrics` serves.
    /// `shared`: the replicas' store, for `jti` claims and serials (nil: this process's memory,
    /// random serials).
    static func start(configuration: IssuanceConfiguration, authorities: LiveAuthorities, audit: any AuditSink, metrics: MetricsPage,
                      taskPolicy: @escaping @Sendable () -> TaskPolicyView?, approvals: (any ApprovalStore)?,
                      shared: SharedStateAssembly? = nil, health: @escaping HealthSource, logger: Logger) throws -> String {
        let verifier = TokenVerifier(issuers: configuration.issuers, source: { DiscoveryKeySource(issuer: $0, client: HTTPClient.shared) }, logger: logger,
                                     replay: shared?.replayGuard)
        let issuer = CertificateIssuer(configuration: configuration, verifier: verifier, authority: LiveSigningAuthority(authorities),
                                       audit: AuditBatcher(log: audit), taskPolicy: taskPolicy,
                                       serials: shared?.asyncSerials ?? { @Sendable in UInt64.random(in: 1 ... .max) },
                                       rateLimit: shared?.rateLimit(configuration.rateLimit))
        let bound = Mutex<Result<Int, any Error>?>(nil)
        let ready = DispatchSemaphore(value: 0)
        let decisions = approvals.map { ApprovalDecisions(issuer: issuer, store: $0) }
        let app = try IssuanceServer.make(issuer: issuer, metrics: metrics, approvals: decisions, health: health, logger: logger) { port in
            bound.withLock { $0 = .success(port) }
            ready.signal()
        }
        Task.detached {
            do {
                // Signals stay with `serve`'s own handlers: the process ends by _exit after its
                // final audit record, not by a graceful drain of this listener.
                try await app.runService(gracefulShutdownSignals: [])
            } catch {
                bound.withLock { if $0 == nil { $0 = .failure(error) } }
                ready.signal()
                logger.critical("issuance listener stopped", metadata: ["error": "\(error)"])
            }
        }
        ready.wait()
        let port = try bound.withLock { $0! }.get()
        let scheme = configuration.tls == nil ? "http" : "https"
        let host = configuration.listenHost.contains(":") ? "[\(configuration.listenHost)]" : configuration.listenHost
        return "\(scheme)://\(host):\(port)"
    }
}
