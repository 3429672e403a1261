import Audit
import CLibSSH
import Foundation
import Logging
import Policy
import Recording
import SSHCertificates

/// One agent connection, from TCP accept to the end of its session, on its own thread. libssh
/// sessions are not thread-safe, so this object and both of its sessions (the agent's and the
/// target's) are only ever touched from that thread.
final class FrontConnection {
    let context: ServerContext
    let configuration: BastionConfiguration
    let session: ssh_session
    let sessionID: String
    let peerAddress: String
    let peerPort: Int
    let logger: Logger
    private var serverCallbacks: UnsafeMutablePointer<ssh_server_callbacks_struct>!
    private var frontChannelCallbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>!
    var frontChannelCallbacksPointer: UnsafeMutablePointer<ssh_channel_callbacks_struct> { frontChannelCallbacks }
    var targetChannelCallbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>!

    // Login state.
    private var holdsStartupSlot = true
    var failedAuthentications = 0
    var probeRefusals: [[String: String]] = []
    static let maxAuthenticationAttempts = 6
    var agent: ValidatedCertificate?
    var targetName = ""

    // Session channel state, filled by the callbacks before the session starts.
    var channel: ssh_channel?
    var pty: PTYRequest?
    var environment: [(String, String)] = []
    var start: SessionStart?
    var plan: SessionPlan?

    // Relay state.
    var target: TargetConnection?
    var targetExitStatus: Int32?
    var targetExitSignal: (signal: String, core: Bool, message: String, language: String)?
    var bytesIn: UInt64 = 0, bytesOut: UInt64 = 0, bytesErr: UInt64 = 0
    var recorder: RecordingWriter?
    var recordsInput = true
    /// Set when the recorder failed outside the relay loop (a resize); the loop ends the session.
    var recordingFailed = false

    // Forwarding state (FrontConnection+Forwarding).
    var forwards: [ForwardedChannel] = []
    var remoteListeners: [RemoteListener] = []
    var agentForwarding = false
    var x11: X11Request?
    /// Recording channel numbers: the session channel is 0, forwarded channels count up.
    var nextChannelNumber = 0
    var lastForwardActivity = Date()
    let connectionStarted = Date()
    var deadline: LoginDeadline?
    var targetAttached = false
    static let chunk = 64 * 1024
    /// Scratch space for moving forwarded bytes, one per connection.
    let scratch = UnsafeMutableRawPointer.allocate(byteCount: FrontConnection.chunk, alignment: 16)

    init(session: ssh_session, context: ServerContext) {
        self.session = session
        self.context = context
        configuration = context.configuration
        sessionID = SessionID.make()
        (peerAddress, peerPort) = PeerAddress.of(fd: ssh_get_fd(session))
        var logger = context.logger
        logger[metadataKey: "session"] = "\(sessionID)"
        logger[metadataKey: "peer"] = "\(peerAddress):\(peerPort)"
        self.logger = logger
    }

    deinit {
        scratch.deallocate()
        serverCallbacks?.deallocate()
        frontChannelCallbacks?.deallocate()
        targetChannelCallbacks?.deallocate()
    }

    var peer: String { peerAddress.contains(":") ? "[\(peerAddress)]:\(peerPort)" : "\(peerAddress):\(peerPort)" }

    /// The actor named in audit events: the agent's key id once known, else the peer.
    var actor: String { agent.map { "agent:\($0.certificate.keyID)" } ?? "peer:\(peer)" }

    func audit(_ action: String, _ object: String, _ outcome: AuditEvent.Outcome, _ details: [String: String] = [:]) {
        var d = details
        d["session"] = sessionID
        d["peer"] = peer
        if let agent {
            d["key_id"] = agent.certificate.keyID
            d["serial"] = String(agent.certificate.serial)
        }
        context.record(AuditEvent(actor: actor, action: action, object: object, outcome: outcome, details: d))
    }

    /// Runs the connection to its end. Whatever happens, every libssh object is freed and the
    /// startup slot is returned.
    func run() {
        context.connections.connectionOpened()
        defer {
            releaseStartupSlot()
            context.connections.connectionClosed()
        }
        let fd = ssh_get_fd(session)
        let deadline = LoginDeadline(fd: fd, seconds: configuration.limits.loginGraceSeconds)
        self.deadline = deadline
        defer {
            deadline.disarm()
            ssh_disconnect(session)
            ssh_free(session)
        }
        serverCallbacks = FrontCallbacks.server(for: self)
        frontChannelCallbacks = FrontCallbacks.frontChannel(for: self)
        targetChannelCallbacks = FrontCallbacks.targetChannel(for: self)
        ssh_set_server_callbacks(session, serverCallbacks)
        ssh_set_auth_methods(session, Int32(SSH_AUTH_METHOD_PUBLICKEY))
        ssh_set_message_callback(session, FrontCallbacks.unhandledMessage, Unmanaged.passUnretained(self).toOpaque())

        guard ssh_handle_key_exchange(session) == SSH_OK else {
            let reason = deadline.fired ? "key exchange not finished within \(configuration.limits.loginGraceSeconds)s" : LibSSHError("key exchange", handle: UnsafeMutableRawPointer(session)).detail
            audit("ssh.handshake", "connection from \(peer)", .refused, ["reason": reason])
            return
        }
        guard let event = ssh_event_new() else { return }
        defer { ssh_event_free(event) }
        ssh_event_add_session(event, session)
        defer { ssh_event_remove_session(event, session) }
        defer { if let target, targetAttached { ssh_event_remove_session(event, target.session) } }

        // Authentication, the session channel and its first start request, under the deadline.
        // Forwards granted meanwhile run from here too.
        var forwardOnly = false
        while start == nil {
            if ssh_event_dopoll(event, 200) == SSH_ERROR || ssh_is_connected(session) == 0 { break }
            serviceForwards(event: event)
            if failedAuthentications >= Self.maxAuthenticationAttempts { break }
            if deadline.fired { break }
            // `ssh -N -L …`: logged in to forward ports, perhaps never a session.
            if !forwardOnly, mayForwardPorts {
                forwardOnly = true
                deadline.disarm()
                break
            }
        }
        deadline.disarm()
        if agent == nil { auditLoginRefusal(target: targetName.isEmpty ? "(none)" : targetName) }
        if start == nil, forwardOnly {
            releaseStartupSlot()
            runForwardsOrSession(event: event)
            return
        }
        guard let start, let channel else {
            let reason: String
            if deadline.fired { reason = agent == nil ? "not authenticated within \(configuration.limits.loginGraceSeconds)s" : "no session started within \(configuration.limits.loginGraceSeconds)s" }
            else if failedAuthentications >= Self.maxAuthenticationAttempts { reason = "too many authentication failures" }
            else { reason = "client disconnected before starting a session" }
            audit("ssh.connection", "connection from \(peer)", agent == nil || deadline.fired ? .refused : .success, ["reason": reason])
            return
        }
        releaseStartupSlot()
        runSession(start: start, channel: channel, event: event)
        serviceForwardsUntilDone(event: event, sessionStarted: true)
    }

    /// A connection allowed to forward ports: forwards run until the agent hangs up, and a
    /// session, if one starts, runs as usual with the forwards beside it.
    private func runForwardsOrSession(event: ssh_event) {
        let limits = forwardLimits()
        while start == nil, ssh_is_connected(session) != 0 {
            if ssh_event_dopoll(event, 250) == SSH_ERROR { break }
            serviceForwards(event: event)
            if recordingFailed || targetLost { break }
            let now = Date()
            if let max = limits.maxDuration, now.timeIntervalSince(connectionStarted) > TimeInterval(max) { break }
            if let idle = limits.idleTimeout, now.timeIntervalSince(lastForwardActivity) > TimeInterval(idle) { break }
        }
        if let start, let channel {
            runSession(start: start, channel: channel, event: event)
            serviceForwardsUntilDone(event: event, sessionStarted: true)
            return
        }
        serviceForwardsUntilDone(event: event, sessionStarted: false)
        audit("ssh.connection", "connection from \(peer)", .success, ["reason": "forwarding connection ended", "recording_failed": String(recordingFailed)])
    }

    func releaseStartupSlot() {
        if holdsStartupSlot {
            holdsStartupSlot = false
            context.startups.release()
        }
    }
}

/// Session ids are random and unguessable: they name recordings and appear in target logs.
enum SessionID {
    static func make() -> String {
        var bytes = [UInt8](repeating: 0, count: 10)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        return "gs-" + bytes.map { String(format: "%02x", $0) }.joined()
    }
}

enum PeerAddress {
    static func of(fd: Int32) -> (String, Int) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
        }
        guard ok else { return ("unknown", 0) }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return ("unknown", 0) }
        var address = String(cString: host)
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d; source-address rules want a.b.c.d.
        if address.hasPrefix("::ffff:"), address.contains(".") { address = String(address.dropFirst(7)) }
        return (address, Int(String(cString: service)) ?? 0)
    }
}
