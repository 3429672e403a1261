import CLibSSH
import Foundation
import Refusals
import SSHCertificates

/// Why a session to a target could not be opened, as one sentence for the agent's stderr.
public enum TargetFailure: RefusalConvertible, CustomStringConvertible {
    case unreachable(target: String, reason: String)
    case hostKey(target: String, HostKeyMismatch)
    case certificate(target: String, reason: String)
    case authenticationRefused(target: String, login: String)
    case channelRefused(target: String, what: String, reason: String)

    public var code: String {
        switch self {
        case .unreachable: return "target_unreachable"
        case .hostKey: return "target_host_key"
        case .certificate: return "target_certificate"
        case .authenticationRefused: return "target_auth_refused"
        case .channelRefused: return "target_channel_refused"
        }
    }

    public var refusal: Refusal { Refusal(code: code, rule: "target-connection", reason: description) }

    public var description: String {
        switch self {
        case .unreachable(let t, let r): return "target \(t) could not be reached: \(r)"
        case .hostKey(let t, let m): return "target \(t) failed host key verification, session refused: \(m)"
        case .certificate(let t, let r): return "no certificate could be issued for target \(t): \(r)"
        case .authenticationRefused(let t, let l): return "target \(t) refused Gatehouse's certificate for login \"\(l)\" (does its sshd trust `gatehouse ca export target`?)"
        case .channelRefused(let t, let w, let r): return "target \(t) refused the \(w) request: \(r)"
        }
    }
}

/// What the agent asked the session to start with.
enum SessionStart: Equatable {
    case exec(String)
    case shell
    case subsystem(String)

    var auditText: String {
        switch self {
        case .exec(let c): return c
        case .shell: return "(shell)"
        case .subsystem(let s): return "(subsystem \(s))"
        }
    }
}

/// An X11 forwarding request as the agent's client sent it; passed to the target unchanged, so
/// the client can recognise its own fake cookie when the X11 connection comes back.
struct X11Request {
    var singleConnection: Bool
    var authProtocol: String
    var authCookie: String
    var screen: Int32
}

struct PTYRequest {
    var term: String
    var columns: Int32
    var rows: Int32
    var pixelWidth: Int32
    var pixelHeight: Int32
}

/// Gatehouse's own SSH client session to a target, authenticated with a fresh key pair and a
/// certificate from the target CA that the agent never sees. One per agent connection: every
/// session channel and forward of that connection is a channel on it.
final class TargetConnection {
    let session: ssh_session
    let target: TargetConfiguration
    private var connected = false

    init(target: TargetConfiguration, algorithms: AlgorithmSettings, timeoutSeconds: Int, login: String) throws(TargetFailure) {
        guard let session = ssh_new() else { throw .unreachable(target: target.name, reason: "out of memory") }
        self.session = session
        self.target = target
        var noConfig = false
        var timeout = Int(timeoutSeconds)
        var port = Int32(target.port)
        var nodelay = Int32(1)
        ssh_options_set(session, SSH_OPTIONS_HOST, target.address)
        ssh_options_set(session, SSH_OPTIONS_PORT, &port)
        ssh_options_set(session, SSH_OPTIONS_USER, login)
        ssh_options_set(session, SSH_OPTIONS_PROCESS_CONFIG, &noConfig)
        ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout)
        ssh_options_set(session, SSH_OPTIONS_NODELAY, &nodelay)
        // No SSH_OPTIONS_LOG_VERBOSITY: libssh applies it to the whole thread's log level, which
        // the connection keeps at the protocol level to see requests libssh answers on its own.
        ssh_options_set(session, SSH_OPTIONS_KEY_EXCHANGE, algorithms.keyExchange.joined(separator: ","))
        ssh_options_set(session, SSH_OPTIONS_CIPHERS_C_S, algorithms.ciphers.joined(separator: ","))
        ssh_options_set(session, SSH_OPTIONS_CIPHERS_S_C, algorithms.ciphers.joined(separator: ","))
        ssh_options_set(session, SSH_OPTIONS_HMAC_C_S, algorithms.macs.joined(separator: ","))
        ssh_options_set(session, SSH_OPTIONS_HMAC_S_C, algorithms.macs.joined(separator: ","))
        // No known_hosts of libssh's own: verification is Gatehouse's, below.
        ssh_options_set(session, SSH_OPTIONS_KNOWNHOSTS, "/dev/null")
        ssh_options_set(session, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null")
    }

    deinit {
        if connected { ssh_disconnect(session) }
        ssh_free(session)
    }

    private func error(_ what: String) -> String {
        let handle = UnsafeMutableRawPointer(session)
        return String(cString: ssh_get_error(handle))
    }

    /// Connects and verifies the host key before anything else is sent.
    func connect(verifier: HostKeyVerifier, now: UInt64) throws(TargetFailure) {
        do {
            ssh_options_set(session, SSH_OPTIONS_HOSTKEYS, try verifier.algorithms())
        } catch let mismatch as HostKeyMismatch { throw .hostKey(target: target.name, mismatch) } catch { throw .hostKey(target: target.name, .noKey) }
        guard ssh_connect(session) == SSH_OK else { throw .unreachable(target: target.name, reason: error("connect")) }
        connected = true
        var key: ssh_key?
        guard ssh_get_server_publickey(session, &key) == SSH_OK, let key else { throw .hostKey(target: target.name, .noKey) }
        defer { ssh_key_free(key) }
        guard let blob = LibSSHKeys.blob(of: key) else { throw .hostKey(target: target.name, .noKey) }
        do { try verifier.verify(presented: blob, now: now) } catch { throw .hostKey(target: target.name, error) }
    }

    func authenticate(with key: ssh_key, login: String) throws(TargetFailure) {
        let rc = ssh_userauth_publickey(session, nil, key)
        guard rc == SSH_AUTH_SUCCESS.rawValue else {
            if rc == SSH_AUTH_ERROR.rawValue { throw .unreachable(target: target.name, reason: error("auth")) }
            throw .authenticationRefused(target: target.name, login: login)
        }
    }

    /// Opens a session channel and replays what the agent asked for, in the agent's order: pty
    /// first, then environment, agent and X11 forwarding, then the command, shell or subsystem.
    /// `callbacks` are installed before any request, so even the exit status of a command that
    /// ends at once is seen. Runs blocking (the relay keeps the session non-blocking otherwise);
    /// on failure the channel is freed and its callbacks removed.
    func openSession(pty: PTYRequest?, environment: [(String, String)], agentForwarding: Bool, x11: X11Request?, start: SessionStart,
                     callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>) throws(TargetFailure) -> ssh_channel {
        guard let channel = ssh_channel_new(session) else { throw .channelRefused(target: target.name, what: "session", reason: error("channel")) }
        ssh_set_channel_callbacks(channel, callbacks)
        do throws(TargetFailure) {
            try Self.blocking(session) { () throws(TargetFailure) in
                try replay(on: channel, pty: pty, environment: environment, agentForwarding: agentForwarding, x11: x11, start: start)
            }
        } catch {
            ssh_remove_channel_callbacks(channel, callbacks)
            ssh_channel_free(channel)
            throw error
        }
        return channel
    }

    private func replay(on channel: ssh_channel, pty: PTYRequest?, environment: [(String, String)], agentForwarding: Bool, x11: X11Request?,
                        start: SessionStart) throws(TargetFailure) {
        guard ssh_channel_open_session(channel) == SSH_OK else { throw .channelRefused(target: target.name, what: "session", reason: error("open")) }
        if let pty {
            guard ssh_channel_request_pty_size(channel, pty.term, pty.columns, pty.rows) == SSH_OK else {
                throw .channelRefused(target: target.name, what: "pty", reason: error("pty"))
            }
        }
        for (name, value) in environment where ssh_channel_request_env(channel, name, value) != SSH_OK {
            throw .channelRefused(target: target.name, what: "env \(name)", reason: "the target's sshd does not accept it (AcceptEnv)")
        }
        if agentForwarding, ssh_channel_request_auth_agent(channel) != SSH_OK {
            throw .channelRefused(target: target.name, what: "agent forwarding", reason: error("auth-agent-req"))
        }
        if let x11, ssh_channel_request_x11(channel, x11.singleConnection ? 1 : 0, x11.authProtocol, x11.authCookie, x11.screen) != SSH_OK {
            throw .channelRefused(target: target.name, what: "X11 forwarding", reason: "the target's sshd refused it (X11Forwarding, xauth)")
        }
        let rc: Int32
        switch start {
        case .exec(let command): rc = ssh_channel_request_exec(channel, command)
        case .shell: rc = ssh_channel_request_shell(channel)
        case .subsystem(let name): rc = ssh_channel_request_subsystem(channel, name)
        }
        guard rc == SSH_OK else { throw .channelRefused(target: target.name, what: start == .shell ? "shell" : "exec", reason: error("request")) }
    }

    /// A direct-tcpip channel from the target host to `host`:`port` (the agent's `-L`, `-D`,
    /// `-W`): the target's sshd connects, under its own AllowTcpForwarding and PermitOpen.
    func openForward(host: String, port: Int, originHost: String, originPort: Int) throws(TargetFailure) -> ssh_channel {
        guard let forward = ssh_channel_new(session) else { throw .channelRefused(target: target.name, what: "forward", reason: error("channel")) }
        let rc = Self.blocking(session) { () -> Int32 in ssh_channel_open_forward(forward, host, Int32(port), originHost, Int32(originPort)) }
        guard rc == SSH_OK else {
            let reason = error("open")
            ssh_channel_free(forward)
            throw .channelRefused(target: target.name, what: "forward to \(host):\(port)", reason: reason)
        }
        return forward
    }

    /// Asks the target's sshd to listen (the agent's `-R`); returns the port it bound.
    func listenForward(address: String, port: Int) throws(TargetFailure) -> Int {
        var bound: Int32 = 0
        let rc = Self.blocking(session) { ssh_channel_listen_forward(session, address, Int32(port), &bound) }
        guard rc == SSH_OK else { throw .channelRefused(target: target.name, what: "listen on \(address):\(port)", reason: error("tcpip-forward")) }
        return port == 0 ? Int(bound) : port
    }

    func cancelForward(address: String, port: Int) {
        _ = Self.blocking(session) { ssh_channel_cancel_forward(session, address, Int32(port)) }
    }

    /// Runs a libssh call that must wait for its answer on a session the relay keeps non-blocking.
    static func blocking<T, E: Error>(_ session: ssh_session, _ body: () throws(E) -> T) throws(E) -> T {
        let was = ssh_is_blocking(session) != 0
        if !was { ssh_set_blocking(session, 1) }
        defer { if !was { ssh_set_blocking(session, 0) } }
        return try body()
    }
}
