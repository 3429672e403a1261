import Approvals
import ArgumentParser
import Audit
import Bastion
import CertificateAuthority
import ConfigurationSupport
import CoreMetrics
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Issuance
import Logging
import MetricsExporter
import Policy
import RecordingShipping
import StateStore

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the SSH bastion.",
        discussion: """
        With no --config, runs on embedded defaults: 127.0.0.1:2222, state in ./var/gatehouse, host keys \
        in ./hostkeys, no targets. A CA store is created on first start if there is none. SIGHUP reloads \
        targets, scopes and CA trust without dropping live sessions; SIGTERM stops.
        """)

    @Option(name: .long, help: "Configuration file (YAML).") var config: String?
    @Option(name: .long, help: "Listen address host:port or [v6]:port (repeatable; replaces the file's list).") var listen: [String] = []
    @Option(name: .long, help: "State directory (CA store, audit log).") var state: String?
    @Option(name: .customLong("host-keys"), help: "Host key directory.") var hostKeys: String?
    @Option(name: .customLong("log-format"), help: "text or json.") var logFormat: String?
    @Flag(name: .long, help: "Validate the configuration and exit.") var check = false

    func run() throws {
        if !check { StackCacheTunable.reexecIfNeeded() }
        var configuration: BastionConfiguration
        if let config { configuration = try BastionConfiguration.load(file: config) } else { configuration = BastionConfiguration() }
        if !listen.isEmpty {
            configuration.listen = try listen.map {
                guard let address = ListenAddress($0) else { throw CLIError("--listen \($0): expected host:port or [v6]:port") }
                return address
            }
        }
        if let state { configuration.stateDirectory = state }
        if let hostKeys { configuration.hostKeyDirectory = hostKeys }
        if let logFormat {
            guard let format = LogSettings.Format(rawValue: logFormat) else { throw CLIError("--log-format must be text or json") }
            configuration.log.format = format
        }
        // The issuance section is parsed by its own component from the same file; its mappings
        // may only name scopes the file defines.
        var issuance: IssuanceConfiguration? = nil
        if let config {
            issuance = try IssuanceConfiguration.load(file: config, knownScopes: Set(configuration.policy.scopes.keys))
        }
        // So is the store section (`store:`, parsed by StateStore); local when there is none.
        let store = try config.map { try StoreConfiguration.load(file: $0) } ?? .local
        if check {
            // The check reads the file only; `gatehouse store status` contacts the database.
            print("configuration OK: \(configuration.targets.count) targets, \(configuration.policy.scopes.count) scopes, listening on \(configuration.listen.map(\.description).joined(separator: ", "))"
                  + (issuance.map { "; issuance on \($0.listenHost):\($0.listenPort) for \($0.issuers.count) issuer(s)" } ?? "")
                  + "; store \(store)")
            return
        }
        // A replica runs only on the schema it was built for: checked before anything is
        // created or bound, so a refused start leaves no trace and never listens.
        if case .postgres(let database) = store {
            let version = try StoreAssembly.checkAtStart(database)
            print("store: \(database), schema version \(version)")
        }
        let format = configuration.log.format
        let level = Logger.Level(rawValue: configuration.log.level) ?? .info
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = format == .json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "gatehouse")
        // With a shared store, the CA store, the audit chain, serials, budgets and the jti cache
        // are the replicas' (approvals stay in the state directory in this build).
        var shared: SharedStateAssembly?
        if case .postgres(let database) = store {
            let assembly = try SharedStateAssembly(configuration: database, stateDirectory: configuration.stateDirectory,
                                                   replica: "replica \(ProcessInfo.processInfo.hostName) pid \(getpid())", logger: logger)
            try assembly.prepareAuthorities(actor: "gatehouse serve (first replica)")
            shared = assembly
        } else if !FileManager.default.fileExists(atPath: "\(configuration.stateDirectory)/ca/user/state.json") {
            _ = try CAStore.initialize(at: configuration.stateDirectory, actor: "gatehouse serve (first start)")
            logger.notice("created a new CA store", metadata: ["state": "\(configuration.stateDirectory)"])
        }
        // One exporter for the process: every module counts through swift-metrics' global factory.
        let exporter = PrometheusExporter(timerBuckets: BastionMetrics.timerBuckets.merging(IssuanceMetrics.timerBuckets) { $1 }
            .merging(ApprovalMetrics.timerBuckets) { $1 })
        MetricsSystem.bootstrap(exporter.factory)
        let bastionMetrics = BastionMetrics()
        // With `recordings_store: {kind: s3}`, recordings are written locally as always (into this
        // replica's spool) and shipped to the bucket once finished.
        var shipping: ShipperAssembly?
        if let config, case .s3(let bucket) = try RecordingsStoreConfiguration.load(file: config) {
            let assembly = try ShipperAssembly(store: bucket, recordingsRoot: configuration.recordingDirectory,
                                               catalog: shared.map { RecordingCatalog(store: $0.pool) }, logger: logger)
            configuration.recordingDirectory = assembly.spoolDirectory
            shipping = assembly
        }
        var state = try shared?.serverState ?? ServerState.local(stateDirectory: configuration.stateDirectory)
        if let shipper = shipping?.shipper {
            // Past the bound of unshipped recordings, new sessions are refused (the bucket is down).
            let storeGate = state.loginGate
            state.loginGate = { storeGate() ?? shipper.refusalReason }
        }
        let server = try BastionServer(configuration: configuration, logger: logger, observer: shipping?.observer, metrics: bastionMetrics, state: state)
        shared?.start(authorities: server.context.authorities)
        do { try shipping?.attach(server.context) } catch { throw CLIError("recordings store: the first heartbeat failed: \(error); refusing to start") }
        server.context.record(AuditEvent(actor: "gatehouse", action: "server.start", object: "bastion", outcome: .success,
                                         details: ["listen": server.listenAddresses.map(\.description).joined(separator: ","),
                                                   "config": configuration.sourceFile ?? "(embedded defaults)", "pid": String(getpid())]))
        for entry in server.hostKeys.entries {
            print("host key \(entry.publicKey.fingerprint) \(entry.publicKey.algorithm.keyTypeName)")
        }
        for address in server.listenAddresses {
            let name = address.port == 22 ? address.host : "[\(address.host)]:\(address.port)"
            for entry in server.hostKeys.entries { print("known_hosts: \(name) \(entry.publicKey.openSSHLine)") }
        }
        // Signals are wired before "listening" is printed: a supervisor may signal at once.
        for sig: Int32 in [SIGHUP, SIGTERM, SIGINT] { _ = signal(sig, SIG_IGN) }
        let queue = DispatchQueue(label: "signals")
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: queue)
        // The file as last loaded, so a reload's audit record can say what changed. Only the
        // signal queue touches it.
        let configFile = configuration.sourceFile
        nonisolated(unsafe) var loadedBytes = configFile.flatMap { FileManager.default.contents(atPath: $0) }.map(Array.init) ?? []
        hangup.setEventHandler {
            do {
                try server.reload()
                logger.notice("configuration reloaded")
                var details: [String: String] = [:]
                if let configFile {
                    let fresh = FileManager.default.contents(atPath: configFile).map(Array.init) ?? []
                    details = ConfigurationDiff(old: loadedBytes, new: fresh).auditDetails
                    loadedBytes = fresh
                }
                server.context.record(AuditEvent(actor: "gatehouse", action: "server.reload", object: "configuration", outcome: .success, details: details))
            } catch {
                logger.error("reload failed; the previous configuration stays in force", metadata: ["error": "\(error)"])
                server.context.record(AuditEvent(actor: "gatehouse", action: "server.reload", object: "configuration", outcome: .failure, details: ["reason": "\(error)"]))
            }
        }
        hangup.resume()
        let stopSources = [Int32(SIGTERM), Int32(SIGINT)].map { (sig: Int32) -> any DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler {
                server.context.record(AuditEvent(actor: "gatehouse", action: "server.stop", object: "bastion", outcome: .success,
                                                 details: ["signal": sig == SIGTERM ? "TERM" : "INT", "live_sessions": String(server.context.connections.sessions)]))
                // _exit, not exit: exit(3) runs atexit handlers and static destructors while
                // other threads (sessions, the HTTP event loops) still run, and under load it
                // once hung past a supervisor's 10 s stop timeout. The audit record above is
                // already fsynced; stdout is flushed by hand.
                fflush(nil)
                _exit(0)
            }
            source.resume()
            return source
        }
        SignalSources.awaitInstalled([SIGHUP, SIGTERM, SIGINT])
        server.start()
        // Expiries of approval requests are written to the audit chain on time, even for
        // requests nobody resends or waits for.
        Task.detached { [store = server.context.approvalStore] in await store.sweepExpired() }
        if var issuance {
            // Agents are told where the SSH front is; by default where it listens.
            if issuance.bastionAddresses.isEmpty { issuance.bastionAddresses = server.listenAddresses.map(\.description) }
            do {
                let page = MetricsPage(contentType: PrometheusExporter.contentType) {
                    bastionMetrics.sample()
                    return exporter.render()
                }
                let url = try IssuanceAssembly.start(configuration: issuance, authorities: server.context.authorities, audit: server.context.audit,
                                                     metrics: page, taskPolicy: { [context = server.context] in
                                                         // The live configuration: a SIGHUP reload changes what tasks may narrow to.
                                                         let live = context.configuration
                                                         return TaskPolicyView(policy: live.policy, targets: live.targets.values.map(\.descriptor))
                                                     }, approvals: server.context.approvalStore,
                                                     shared: shared, health: { [shared, shipping, recordings = configuration.recordingDirectory] in
                                                         ReplicaHealth.report(store: shared?.health, recordingDirectory: recordings,
                                                                              shipping: shipping.map { $0.shipper.health.problem })
                                                     }, logger: logger)
                print("issuance: listening on \(url)")
            } catch {
                throw CLIError("issuance listener on \(issuance.listenHost):\(issuance.listenPort): \(error)")
            }
        }
        print("gatehouse: listening on \(server.listenAddresses.map(\.description).joined(separator: ", ")) (pid \(getpid()))")
        fflush(nil)

        withExtendedLifetime((hangup, stopSources)) { dispatchMain() }
    }
}
