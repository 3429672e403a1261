import Approvals
import Audit
import Bastion
import CertificateAuthority
import Foundation
import Issuance
import Logging
import StateStore
import Synchronization

/// `serve` with `store: {kind: postgres}`: the bastion's and the issuer's state in the shared
/// store. Built here, where the modules meet; the bastion sees only `ServerState`.
///
/// Connections: the audit chain has its own (appends never wait behind anything else), the CA
/// files their own, budgets and target serials one, the health probe one, plus the LISTEN
/// connection and a small pool for the issuer's asynchronous calls (jti claims, serials).
final class SharedStateAssembly: Sendable {
    let configuration: PostgresStoreConfiguration
    let stateDirectory: String
    let audit: SharedAuditLog
    let files: SharedAuthorityFiles
    let state: BlockingConnection
    let health: StoreHealth
    let pool: PostgresStore
    let logger: Logger

    init(configuration: PostgresStoreConfiguration, stateDirectory: String, replica: String, logger: Logger) throws {
        guard let key = configuration.keyEncryptionKey else {
            throw CLIError("store: kind postgres needs the key-encryption key the replicas seal their CA keys with: set store.key_encryption_key_file (or key_encryption_key_env) to 64 hex characters (`openssl rand -hex 32`), the same on every replica")
        }
        self.configuration = configuration
        self.stateDirectory = stateDirectory
        self.logger = logger
        var quiet = logger
        quiet.logLevel = .critical
        do {
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            audit = SharedAuditLog(connection: try BlockingConnection(store: configuration, logger: quiet),
                                   spool: AuditSpool(path: "\(stateDirectory)/audit-spool.jsonl"))
            files = SharedAuthorityFiles(connection: try BlockingConnection(store: configuration, logger: quiet), key: key,
                                         stateDirectory: stateDirectory, actor: replica)
            state = try BlockingConnection(store: configuration, logger: quiet)
            health = StoreHealth(probe: try BlockingConnection(store: configuration, timeout: .seconds(2), logger: quiet), audit: audit, logger: logger)
            pool = try PostgresStore(configuration: configuration, maximumConnections: 4, logger: quiet)
        } catch let error as StateStoreError {
            throw CLIError("state store: \(error); refusing to start")
        }
    }

    /// Before the CA store is opened: adopt the database's CA store, or, on the first replica,
    /// publish this state directory's (created now if there is none). Two replicas starting at
    /// once publish one store: the second finds the first's under the publish lock.
    func prepareAuthorities(actor: String) throws {
        do {
            if try files.databaseHoldsStore() {
                let written = try files.pull()
                logger.notice("adopted the shared CA store", metadata: ["files": "\(written.count)", "generation": "\(files.appliedGeneration)"])
                return
            }
            let created = try files.publish("shared CA store initialisation") { () throws -> Bool in
                guard !FileManager.default.fileExists(atPath: "\(stateDirectory)/ca/user/state.json") else { return false }
                _ = try CAStore.initialize(at: stateDirectory, actor: actor, audit: audit, serials: serials)
                return true
            }
            logger.notice(created ? "created the CA store and published it to the shared store" : "published this state directory's CA store to the shared store",
                          metadata: ["generation": "\(files.appliedGeneration)"])
        } catch {
            throw CLIError("state store: the shared CA store could not be prepared: \(error); refusing to start")
        }
    }

    var serials: SerialSource { SerialSource { [state] in try state.nextSerial() } }

    var serverState: ServerState {
        ServerState(audit: audit, sessionBudgets: SharedSessionBudgets(connection: state), serials: serials,
                    loginGate: { [health] in health.problem },
                    approvals: { [configuration, logger] sink in
                        // Decisions made on any replica wake agents waiting on this one (LISTEN).
                        let store = try PostgresApprovalStore(configuration: configuration, audit: sink, metrics: ApprovalMetrics(), logger: logger)
                        store.start()
                        return store
                    })
    }

    /// Keeps the CA files current (NOTIFY and a half-second re-read) and probes the store.
    func start(authorities: LiveAuthorities) {
        let watcher = SharedFilesWatcher(files: files, configuration: configuration, logger: logger, onChange: { [logger] paths in
            if let problem = authorities.refresh() {
                logger.error("shared CA files changed but the store does not load; keeping the last good trust", metadata: ["error": "\(problem)"])
            } else {
                logger.notice("shared CA files applied", metadata: ["files": "\(paths.joined(separator: ","))"])
            }
        }, onError: { [logger] error in
            logger.error("shared CA files could not be pulled", metadata: ["error": "\(error)"])
        })
        watcher.start()
        health.start()
    }

    /// `jti` claims in the shared table.
    var replayGuard: any TokenReplayGuard { SharedReplayGuard(cache: TokenReplayCache(store: pool)) }

    /// Issuance rate limits counted in the shared table.
    func rateLimit(_ limit: IssuanceConfiguration.RateLimit) -> any IssuanceRateLimit {
        SharedIssuanceRateLimit(limits: SharedRateLimits(store: pool, perMinute: limit.perMinute, burst: limit.burst))
    }

    /// Serials for the issuer, from the pool (the issuer runs on Swift's concurrency pool).
    var asyncSerials: @Sendable () async throws -> UInt64 { { [pool] in try await pool.nextSerial() } }
}

/// Session budgets in `session_budgets`.
struct SharedSessionBudgets: SessionBudgetStore {
    let connection: BlockingConnection

    func take(key: String, limit: Int, validBefore: UInt64) -> SessionBudgetOutcome {
        do {
            switch try connection.takeSessionBudget(key: key, max: limit, expiresAt: Date(timeIntervalSince1970: TimeInterval(validBefore))) {
            case .granted(let used): return .granted(used: used)
            case .exhausted(let used): return .exhausted(used: used)
            case .expired: return .exhausted(used: limit)
            }
        } catch {
            return .failed("\(error)")
        }
    }

    func prune(now: UInt64) {
        try? connection.pruneSessionBudgets(now: Date(timeIntervalSince1970: TimeInterval(now)))
    }
}

/// Issuance rate limits in `issuance_rate_limits`.
struct SharedIssuanceRateLimit: IssuanceRateLimit {
    let limits: SharedRateLimits
    func take(_ subject: String, now: Double) async throws -> Int? { try await limits.take(subject) }
}

/// `jti` claims in `token_jti`.
struct SharedReplayGuard: TokenReplayGuard {
    let cache: TokenReplayCache

    func claim(issuer: String, jti: String, expiry: UInt64, now: UInt64) async -> ReplayClaim {
        do {
            return try await cache.claim(issuer: issuer, jti: jti, expiresAt: Date(timeIntervalSince1970: TimeInterval(expiry)),
                                         now: Date(timeIntervalSince1970: TimeInterval(now))) ? .first : .replayed
        } catch {
            return .unavailable("\(error)")
        }
    }
}

/// Whether the store answers, probed every second on a connection of its own; and the audit
/// spool drained into the chain as soon as it does again.
final class StoreHealth: Sendable {
    let probe: BlockingConnection
    let audit: SharedAuditLog
    let logger: Logger
    private let current = Mutex<String?>(nil)

    init(probe: BlockingConnection, audit: SharedAuditLog, logger: Logger) {
        self.probe = probe
        self.audit = audit
        self.logger = logger
    }

    /// Why the store cannot be used now, or nil.
    var problem: String? { current.withLock { $0 } }

    func start() {
        let thread = Thread { [self] in
            while true {
                check()
                Thread.sleep(forTimeInterval: 1)
            }
        }
        thread.name = "gatehouse-store-health"
        thread.start()
    }

    func check() {
        var problem: String?
        do throws(StateStoreError) { try probe.probe() } catch { problem = "\(error)" }
        let before = current.withLock { c -> String? in
            defer { c = problem }
            return c
        }
        if let problem, before == nil {
            logger.critical("state store unreachable: new logins are refused until it returns; live sessions go on, their audit records kept in the local spool", metadata: ["error": "\(problem)"])
        } else if problem == nil, before != nil {
            logger.notice("state store reachable again: logins accepted")
        }
        if problem == nil, audit.spooledEvents > 0 {
            do { try audit.drainSpool(); logger.notice("audit spool appended to the shared chain") } catch {
                logger.error("audit spool could not be drained yet", metadata: ["error": "\(error)"])
            }
        }
    }
}
