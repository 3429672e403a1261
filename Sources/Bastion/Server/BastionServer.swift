import Audit
import CLibSSH
import CSystemCalls
import ConfigurationSupport
import Foundation
import Logging
import Policy
import Recording
import Synchronization

/// The SSH front: one libssh bind per listen address, one accept thread per bind, one thread
/// per connection (libssh sessions must not be shared between threads).
public final class BastionServer: Sendable {
    public let context: ServerContext
    public let hostKeys: HostKeys
    private let binds: [BoundListener]

    struct BoundListener: @unchecked Sendable {
        let address: ListenAddress
        let bind: ssh_bind
    }

    public init(configuration: BastionConfiguration, logger: Logger, observer: (any SessionObserver)? = nil,
                metrics: BastionMetrics = BastionMetrics(), state: ServerState? = nil) throws {
        context = try ServerContext(configuration: configuration, logger: logger, observer: observer, metrics: metrics, state: state)
        hostKeys = try HostKeys.loadOrGenerate(directory: configuration.hostKeyDirectory)
        try FileManager.default.createDirectory(atPath: configuration.recordingDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        // Recordings left unfinished by a crash are closed before anything new starts: a torn tail
        // is cut back to the last good record and the end marked as a crash (never repaired silently).
        // Finished recordings are in the session index; only the others are scanned.
        let finished = Set(((try? SessionIndex.load(directory: configuration.recordingDirectory))?.list() ?? []).filter { $0.state != "live" && $0.state != "unfinished" }.map(\.recordingID))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: configuration.recordingDirectory)) ?? []
        for name in names.sorted() {
            guard let id = RecordingFiles.recordingID(ofPath: name), !finished.contains(id) else { continue }
            let path = "\(configuration.recordingDirectory)/\(name)"
            do {
                let outcome = try RecordingRecovery.recover(path: path, signer: context.authorities.signingKey(.recording))
                if case .closed = outcome {
                    context.record(AuditEvent(actor: "gatehouse", action: "recording.recover", object: path, outcome: .success, details: ["result": "\(outcome)"]))
                }
            } catch {
                context.record(AuditEvent(actor: "gatehouse", action: "recording.recover", object: path, outcome: .failure, details: ["reason": "\(error)"]))
                logger.error("recording could not be recovered", metadata: ["path": "\(path)", "error": "\(error)"])
            }
        }
        // A client that vanishes mid-write must not kill the process.
        signal(SIGPIPE, SIG_IGN)
        MemoryReturn.limitArenas()
        ssh_init()
        var listeners: [BoundListener] = []
        for address in configuration.listen {
            listeners.append(BoundListener(address: address, bind: try Self.listen(on: address, hostKeys: hostKeys, algorithms: configuration.algorithms)))
        }
        binds = listeners
    }

    static func listen(on address: ListenAddress, hostKeys: HostKeys, algorithms: AlgorithmSettings) throws -> ssh_bind {
        guard let bind = ssh_bind_new() else { throw LibSSHError("ssh_bind_new", detail: "out of memory") }
        var noConfig = false
        var verbosity = Int32(SSH_LOG_NOLOG)
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &noConfig)
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_LOG_VERBOSITY, &verbosity)
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_BINDADDR, address.host)
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_BINDPORT_STR, String(address.port))
        for entry in hostKeys.entries {
            guard ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY, entry.path) == SSH_OK else {
                defer { ssh_bind_free(bind) }
                throw LibSSHError("loading host key \(entry.path)", handle: UnsafeMutableRawPointer(bind))
            }
        }
        let settings: [(ssh_bind_options_e, [String])] = [
            (SSH_BIND_OPTIONS_KEY_EXCHANGE, algorithms.keyExchange), (SSH_BIND_OPTIONS_CIPHERS_C_S, algorithms.ciphers),
            (SSH_BIND_OPTIONS_CIPHERS_S_C, algorithms.ciphers), (SSH_BIND_OPTIONS_HMAC_C_S, algorithms.macs),
            (SSH_BIND_OPTIONS_HMAC_S_C, algorithms.macs), (SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS, algorithms.hostKeys),
        ]
        for (option, list) in settings where ssh_bind_options_set(bind, option, list.joined(separator: ",")) != SSH_OK {
            defer { ssh_bind_free(bind) }
            throw LibSSHError("setting algorithms \(list.joined(separator: ","))", handle: UnsafeMutableRawPointer(bind))
        }
        guard ssh_bind_listen(bind) == SSH_OK else {
            defer { ssh_bind_free(bind) }
            throw LibSSHError("listening on \(address)", handle: UnsafeMutableRawPointer(bind))
        }
        // libssh listens with a backlog of 10; a burst of agents must wait in the kernel, not be
        // reset. Calling listen again on a listening socket only changes its backlog.
        _ = Foundation.listen(ssh_bind_get_fd(bind), Self.listenBacklog)
        return bind
    }

    public var listenAddresses: [ListenAddress] { binds.map(\.address) }

    /// sshd's is 128; the kernel caps it at net.core.somaxconn.
    static let listenBacklog: Int32 = 512

    /// Starts one accept thread per address, and the admission housekeeping, and returns.
    public func start() {
        for listener in binds {
            let thread = Thread { [self] in acceptLoop(listener) }
            thread.name = "accept \(listener.address)"
            thread.start()
        }
        let housekeeping = Thread { [context] in
            var ticks = 0
            while true {
                Thread.sleep(forTimeInterval: 1)
                for event in context.admission.maintain() { context.record(event) }
                MemoryReturn.trimIfIdle(connections: context.connections.connections)
                ticks += 1
                if ticks % 600 == 0 { context.sessionBudgets.prune(now: UInt64(Date().timeIntervalSince1970)) }
            }
        }
        housekeeping.name = "admission"
        housekeeping.start()
    }

    /// Accepts TCP connections itself, so admission is decided from the peer address before
    /// libssh allocates anything; admitted connections get a session and a thread of their own.
    private func acceptLoop(_ listener: BoundListener) {
        let listening = ssh_bind_get_fd(listener.bind)
        while true {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let fd = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { gatehouse_accept(listening, $0, &length) }
            }
            guard fd >= 0 else {
                if errno == EMFILE || errno == ENFILE {
                    context.logger.error("accept failed: out of descriptors")
                    Thread.sleep(forTimeInterval: 0.05)
                }
                continue
            }
            // Small packets (a prompt, an exit status) go out at once, as the target leg's do.
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let (address, _) = PeerAddress.of(storage, length: length)
            let context = self.context
            let bind = SendableBind(bind: listener.bind)
            switch context.admission.arrive(fd: fd, address: address, launch: { ticket in Self.launch(fd: fd, bind: bind, ticket: ticket, context: context) }) {
            case .admit(let ticket): Self.launch(fd: fd, bind: bind, ticket: ticket, context: context)
            case .queued: break
            case .refuse(let reason): AdmissionControl.refuse(fd: fd, reason: reason)
            }
        }
    }

    /// One thread per connection (libssh sessions must stay on one thread).
    private static func launch(fd: Int32, bind: SendableBind, ticket: AdmissionTicket, context: ServerContext) {
        let thread = Thread {
            guard let session = Self.session(accepting: fd, bind: bind) else {
                ticket.finish(.disconnected, detail: "the SSH session could not be set up")
                return
            }
            FrontConnection(session: session, context: context, admission: ticket).run()
        }
        thread.stackSize = 512 << 10
        thread.start()
    }

    /// libssh copies the bind's keys and settings into the session; the bind is shared by the
    /// threads, so that copy is serialised.
    private static let bindLock = Mutex(())

    private static func session(accepting fd: Int32, bind: SendableBind) -> ssh_session? {
        guard let session = ssh_new() else {
            close(fd)
            return nil
        }
        let ok = bindLock.withLock { _ in ssh_bind_accept_fd(bind.bind, session, fd) == SSH_OK }
        guard ok else {
            ssh_free(session)
            return nil
        }
        return session
    }

    /// Re-reads the configuration file (targets, scopes, limits) and the CA store. Live sessions
    /// keep running on the configuration they started with.
    public func reload() throws {
        guard let file = context.configuration.sourceFile else {
            context.authorities.refresh()
            return
        }
        let fresh = try BastionConfiguration.load(file: file)
        context.replace(fresh)
        if let problem = context.authorities.refresh() { throw problem }
    }
}

/// The shared bind, handed to connection threads (its use is serialised by `bindLock`).
struct SendableBind: @unchecked Sendable {
    let bind: ssh_bind
}
