import Audit
import CLibSSH
import Foundation
import Logging
import Policy
import Recording

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

    public init(configuration: BastionConfiguration, logger: Logger, observer: (any SessionObserver)? = nil) throws {
        context = try ServerContext(configuration: configuration, logger: logger, observer: observer)
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
        return bind
    }

    public var listenAddresses: [ListenAddress] { binds.map(\.address) }

    /// Starts one accept thread per address and returns.
    public func start() {
        for listener in binds {
            let thread = Thread { [self] in acceptLoop(listener) }
            thread.name = "accept \(listener.address)"
            thread.start()
        }
    }

    private func acceptLoop(_ listener: BoundListener) {
        while true {
            guard let session = ssh_new() else { continue }
            guard ssh_bind_accept(listener.bind, session) == SSH_OK else {
                context.logger.error("accept failed", metadata: ["error": "\(LibSSHError("accept", handle: UnsafeMutableRawPointer(listener.bind)))"])
                ssh_free(session)
                continue
            }
            guard context.startups.tryAcquire() else {
                let (host, port) = PeerAddress.of(fd: ssh_get_fd(session))
                context.record(AuditEvent(actor: "peer:\(host):\(port)", action: "ssh.connection", object: "connection from \(host):\(port)", outcome: .refused,
                                          details: ["reason": "too many unauthenticated connections (limit \(context.configuration.limits.maxUnauthenticated))"]))
                ssh_disconnect(session)
                ssh_free(session)
                continue
            }
            let context = self.context
            let connection = SendableSession(session: session)
            let thread = Thread {
                FrontConnection(session: connection.session, context: context).run()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
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

/// A freshly accepted session handed to the thread that will own it from then on.
struct SendableSession: @unchecked Sendable {
    let session: ssh_session
}
