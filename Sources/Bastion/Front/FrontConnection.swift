import Audit
import CLibSSH
import Foundation
import Logging
import Policy
import Recording
import Refusals
import SSHCertificates

/// One agent connection, from TCP accept to its end, on its own thread: libssh sessions are not
/// thread-safe, so this object, its channels and its target connection are only ever touched
/// from that thread. Its life is `ConnectionPhase`: this file runs the phases; a request on a
/// session channel is decided in `SessionChannel.handle(_:)`, a forward in `AuthenticatedConnection+Forwarding`.
final class FrontConnection {
    let context: ServerContext
    let configuration: BastionConfiguration
    let session: ssh_session
    /// Names the connection in audit records and recordings (`gs-…`; a channel adds `-chN`).
    let sessionID: String
    let peerAddress: String
    let peerPort: Int
    let logger: Logger
    let admission: AdmissionTicket
    var phase: ConnectionPhase = .handshake
    let accepted = ContinuousClock.now
    /// Woken by recorders when a batch reaches the file, so held bytes go out at once.
    let wakeup = Wakeup()
    private var callbacks: FrontCallbacks.ServerStorage?
    /// auth-agent-req requests libssh reported (through its log) and no channel callback took.
    var unclaimedAgentRequests = 0

    init(session: ssh_session, context: ServerContext, admission: AdmissionTicket) {
        self.session = session
        self.context = context
        self.admission = admission
        configuration = context.configuration
        sessionID = SessionID.make()
        (peerAddress, peerPort) = PeerAddress.of(fd: ssh_get_fd(session))
        var logger = context.logger
        logger[metadataKey: "session"] = "\(sessionID)"
        logger[metadataKey: "peer"] = "\(peerAddress):\(peerPort)"
        self.logger = logger
    }

    var peer: String { peerAddress.contains(":") ? "[\(peerAddress)]:\(peerPort)" : "\(peerAddress):\(peerPort)" }

    var authenticated: AuthenticatedConnection? {
        if case .authenticated(let connection) = phase { return connection }
        return nil
    }

    /// The actor named in audit events: the agent's key id once known, else the peer.
    var actor: String { authenticated.map { "agent:\($0.agent.certificate.keyID)" } ?? "peer:\(peer)" }

    func audit(_ action: String, _ object: String, _ outcome: AuditEvent.Outcome, _ details: [String: String] = [:]) {
        var d = details
        d["session"] = sessionID
        d["peer"] = peer
        if let connection = authenticated {
            d["key_id"] = connection.agent.certificate.keyID
            d["serial"] = String(connection.agent.certificate.serial)
            if let task = connection.taskID { d["task_id"] = task }
        }
        context.record(AuditEvent(actor: actor, action: action, object: object, outcome: outcome, details: d))
    }

    /// A refusal's audit record: the shared shape's `code`, `rule` and `reason`, and its context.
    func audit(_ action: String, _ object: String, refused refusal: Refusal, _ context: [String: String] = [:]) {
        audit(action, object, .refused, refusal.auditFields(context))
    }

    // MARK: The phases

    /// Runs the connection to its end. Whatever happens, every libssh object is freed, the
    /// admission slot is returned, and the end is audited.
    func run() {
        context.connections.connectionOpened()
        defer { context.connections.connectionClosed() }
        defer {
            ssh_disconnect(session)
            ssh_free(session)
        }
        // Runs before the socket is closed above: a slot is never given back for a reused descriptor.
        defer { admission.finish(.disconnected, detail: "connection ended") }
        let storage = FrontCallbacks.server(for: self)
        callbacks = storage
        ssh_set_server_callbacks(session, storage.server)
        ssh_set_auth_methods(session, Int32(SSH_AUTH_METHOD_PUBLICKEY))
        ssh_set_message_callback(session, FrontCallbacks.unhandledMessage, Unmanaged.passUnretained(self).toOpaque())
        FrontCallbacks.watchLibSSHLog(for: self)
        defer { FrontCallbacks.stopWatchingLibSSHLog() }

        // The handshake is bounded by libssh's own timeout: the login deadline, from accept.
        let grace = configuration.limits.loginGraceSeconds
        var timeout = grace
        ssh_options_set(session, SSH_OPTIONS_TIMEOUT, &timeout)
        let deadline = accepted + .seconds(grace)
        guard ssh_handle_key_exchange(session) == SSH_OK else {
            let timedOut = ContinuousClock.now >= deadline - .milliseconds(200)
            let detail = timedOut ? "key exchange not finished within \(grace)s" : LibSSHError("key exchange", handle: UnsafeMutableRawPointer(session)).detail
            admission.finish(timedOut ? .graceExceeded : .handshakeFailed, detail: detail)
            return
        }
        phase = .authenticating(Authenticating(deadline: deadline))

        guard let event = ssh_event_new() else {
            admission.finish(.disconnected, detail: "out of memory")
            return
        }
        defer { ssh_event_free(event) }
        ssh_event_add_session(event, session)
        defer { ssh_event_remove_session(event, session) }
        wakeup.attach(to: event)
        defer { wakeup.detach(from: event) }

        let reason = loop(event: event)
        end(reason: reason, event: event)
    }

    /// Milliseconds to wait for input: 250, or less when something is due sooner (at least 1).
    static func pollTimeout(until wake: ContinuousClock.Instant?) -> Int32 {
        guard let wake else { return 250 }
        let wait = wake - .now
        guard wait > .zero else { return 0 }
        return Int32(min(250, max(1, (wait / .milliseconds(1)).rounded(.up))))
    }

    /// Turns the loop until the connection must end; returns why.
    private func loop(event: ssh_event) -> String {
        var busy = false
        var wake: ContinuousClock.Instant? = nil
        while true {
            switch phase {
            case .handshake:
                return "the handshake did not finish"
            case .authenticating(let state):
                if state.failures >= Authenticating.maxFailures { return "too many authentication failures" }
                if ContinuousClock.now >= state.deadline { return "not authenticated within \(configuration.limits.loginGraceSeconds)s" }
            case .authenticated(let connection):
                switch connection.turn(event: event) {
                case .idle(let due): busy = false; wake = due
                case .busy: busy = true; wake = nil
                case .end(let reason): return reason
                }
            case .closing(let reason):
                return reason
            }
            if unclaimedAgentRequests > 0 { refuseUnclaimedAgentRequests() }
            if ssh_is_connected(session) == 0 { return "client disconnected" }
            if ssh_event_dopoll(event, busy ? 0 : Self.pollTimeout(until: wake)) == SSH_ERROR, ssh_is_connected(session) == 0 {
                return "client disconnected"
            }
        }
    }

    /// Closes whatever the phase holds, audits the connection's end and reports its outcome to
    /// admission control (which penalises sources that never authenticate).
    private func end(reason: String, event: ssh_event) {
        let previous = phase
        phase = .closing(reason: reason)
        switch previous {
        case .authenticated(let connection):
            connection.closeAll(reason: reason, event: event)
            audit("ssh.connection", "connection from \(peer)", connection.endedCleanly(reason) ? .success : .failure,
                  ["reason": reason, "sessions": String(connection.sessionsStarted), "duration_ms": String(connection.age.milliseconds)])
            admission.finish(.authenticated, detail: reason)
        case .authenticating(var state):
            if !state.probeRefusals.isEmpty || state.refusedSignedAttempt {
                auditLoginRefusal(&state, target: state.targetName ?? "(none)", closing: reason)
                admission.finish(.authenticationFailed, detail: reason)
            } else {
                let outcome: AdmissionControl.Outcome = reason.hasPrefix("not authenticated within") ? .graceExceeded
                    : state.failures > 0 ? .authenticationFailed : .disconnected
                // A client that tried to log in gets its own record; one that never did (a scan,
                // a flood) is counted in admission's per-source summary instead.
                if state.attempted {
                    audit("ssh.connection", "connection from \(peer)", refused: Refusal(code: outcome.rawValue, rule: "login", reason: reason))
                }
                admission.finish(outcome, detail: reason)
            }
        case .handshake, .closing:
            admission.finish(.disconnected, detail: reason)
        }
    }

    // MARK: Authentication (phase: authenticating)

    /// libssh's public-key callback. OpenSSH first probes with the key alone
    /// (`SSH_PUBLICKEY_STATE_NONE`, answered with PK_OK on success), then sends the signed
    /// request (`SSH_PUBLICKEY_STATE_VALID`, libssh has checked the signature). Both run the
    /// whole validator against the live CA store: only a certificate OpenSSH itself would accept
    /// gets in.
    func authenticate(user: String, key: ssh_key?, state signatureState: CChar) -> Int32 {
        let denied = Int32(SSH_AUTH_DENIED.rawValue)
        guard case .authenticating(var state) = phase else {
            // Not authenticating: nothing to log in to (already logged in, or closing).
            return denied
        }
        defer { if case .authenticating = phase { phase = .authenticating(state) } }
        state.attempted = true
        let signed = Int32(signatureState) == SSH_PUBLICKEY_STATE_VALID.rawValue
        guard Int32(signatureState) == SSH_PUBLICKEY_STATE_NONE.rawValue || signed else {
            state.failures += 1
            audit("ssh.login", "target \"\(user)\"", refused: Refusal(code: "bad-signature", rule: "login", reason: "bad signature"))
            return denied
        }
        guard TargetName.isValid(user) else {
            state.failures += 1
            audit("ssh.login", "user name", refused: Refusal(code: "invalid-target-name", rule: "login", reason: "user name is not a valid target name"),
                  ["user": String(user.prefix(80))])
            return denied
        }
        state.targetName = user
        guard let key, let blob = LibSSHKeys.blob(of: key) else {
            state.failures += 1
            audit("ssh.login", "target \"\(user)\"", refused: Refusal(code: "unreadable-key", rule: "login", reason: "key could not be read"))
            return denied
        }
        switch validate(blob) {
        case .failure(let refusal):
            state.failures += 1
            var details = refusal.refusal.auditFields(["key": SSHPublicKey.fingerprint(ofBlob: blob)])
            if let certificate = try? SSHCertificate(blob: blob) {
                details["cert_key_id"] = certificate.keyID
                details["cert_serial"] = String(certificate.serial)
            }
            logger.info("key refused", metadata: ["reason": "\(refusal)", "target": "\(user)"])
            state.probeRefusals.append(details)
            if signed {
                state.refusedSignedAttempt = true
                auditLoginRefusal(&state, target: user, closing: nil)
            }
            return denied
        case .success(let credential):
            guard signed else { return Int32(SSH_AUTH_SUCCESS.rawValue) }
            // A replica whose shared store is unreachable could not audit or count what this
            // login would do: it is refused, and the client told why (OpenSSH prints the banner).
            if let reason = context.loginGate() {
                state.failures += 1
                let refusal = Refusal(code: "store-unavailable", rule: "state-store", reason: "new logins are refused: \(reason)")
                sendBanner("gatehouse: \(refusal.reason)\r\n")
                audit("ssh.login", "target \"\(user)\"", refused: refusal,
                      ["cert_key_id": credential.validated.certificate.keyID, "cert_serial": String(credential.validated.certificate.serial)])
                return denied
            }
            let validated = credential.validated
            let c = validated.certificate
            var details = ["principals": c.principals.joined(separator: ","), "scopes": validated.permissions.scopes.joined(separator: ","),
                           "context": validated.permissions.context ?? "", "ca": c.signatureKey.fingerprint,
                           "valid_before": Timestamps.format(c.validBefore)]
            if !state.probeRefusals.isEmpty {
                details["keys_refused_first"] = state.probeRefusals.map { "\($0["key"] ?? "?") (\($0["code"] ?? "?"))" }.joined(separator: ", ")
            }
            let task = credential.entitlement.task
            if let targets = task.targets { details["task_targets"] = targets.joined(separator: ",") }
            if let commands = task.commands { details["task_commands"] = String(commands.map(\.source).joined(separator: " | ").prefix(2048)) }
            if let budget = task.maxSessions { details["task_max_sessions"] = String(budget) }
            phase = .authenticated(AuthenticatedConnection(front: self, credential: credential, certificateBlob: blob, targetName: user))
            audit("ssh.login", "target \"\(user)\"", .success, details)
            logger.info("login accepted", metadata: ["key_id": "\(c.keyID)", "target": "\(user)"])
            admission.authenticated()
            return Int32(SSH_AUTH_SUCCESS.rawValue)
        }
    }

    /// SSH_MSG_USERAUTH_BANNER: text the client shows before authentication ends.
    func sendBanner(_ text: String) {
        guard let banner = ssh_string_from_char(text) else { return }
        defer { ssh_string_free(banner) }
        _ = ssh_send_issue_banner(session, banner)
    }

    /// The whole OpenSSH rule set against the live CA store, now, and the task narrowing compiled.
    func validate(_ blob: [UInt8]) -> Result<AgentCredential, CertificateRefusal> {
        if let problem = context.authorities.refresh() {
            logger.error("CA store reload failed; keeping the last good trust", metadata: ["error": "\(problem)"])
        }
        let validation = ValidationContext(now: UInt64(Date().timeIntervalSince1970), peerAddress: peerAddress,
                                           trustedCAs: context.authorities.trusted(.user), revocations: context.authorities.revocations)
        return CertificateValidator.openSSHUser(signatureCache: context.signatureCache).validate(offeredKeyBlob: blob, in: validation)
            .flatMap(AgentCredential.compile)
    }

    /// One audit event for a login that failed, naming the deciding refusal and every key tried.
    private func auditLoginRefusal(_ state: inout Authenticating, target: String, closing: String?) {
        // The certificate's refusal says more than the plain keys offered beside it.
        guard var details = state.probeRefusals.last(where: { $0["code"] != "not-a-certificate" }) ?? state.probeRefusals.last else { return }
        if state.probeRefusals.count > 1 {
            details["keys_refused"] = state.probeRefusals.map { "\($0["key"] ?? "?") (\($0["code"] ?? "?"))" }.joined(separator: ", ")
        }
        if let closing { details["connection"] = closing }
        state.probeRefusals.removeAll()
        audit("ssh.login", "target \"\(target)\"", .refused, details)
    }

    // MARK: Messages libssh has no callback for

    /// Everything libssh hands over as a message: other authentication methods, forwarding
    /// channels and global requests, X11 and unknown channel requests. Each is decided by the
    /// phase that owns it, answered, and audited when refused.
    func handle(_ message: ssh_message) {
        let type = ssh_message_type(message), subtype = ssh_message_subtype(message)
        switch phase {
        case .authenticated(let connection):
            connection.handle(message, type: type, subtype: subtype)
        case .authenticating(var state):
            if type == Int32(SSH_REQUEST_AUTH.rawValue) {
                state.attempted = true
                phase = .authenticating(state)
                if let method = Self.refusedMethod(subtype) {
                    state.failures += 1
                    phase = .authenticating(state)
                    audit("ssh.login", "\(method) authentication", refused: Refusal(code: "method-not-allowed", rule: "login", reason: "only certificate authentication is accepted"))
                }
            } else if type != Int32(SSH_REQUEST_SERVICE.rawValue) {
                // The "ssh-userauth" service request is how every login begins: libssh's default
                // reply accepts it. Anything else before login is refused and audited.
                refuseBeforeLogin(type: type, subtype: subtype)
            }
            ssh_message_reply_default(message)
        case .handshake, .closing:
            ssh_message_reply_default(message)
        }
    }

    /// The SSH name of an authentication method Gatehouse refuses (nil for "none", which every
    /// client sends first to learn the methods).
    static func refusedMethod(_ subtype: Int32) -> String? {
        switch subtype {
        case Int32(SSH_AUTH_METHOD_NONE): return nil
        case Int32(SSH_AUTH_METHOD_PASSWORD): return "password"
        case Int32(SSH_AUTH_METHOD_INTERACTIVE): return "keyboard-interactive"
        case Int32(SSH_AUTH_METHOD_HOSTBASED): return "hostbased"
        case Int32(SSH_AUTH_METHOD_GSSAPI_MIC): return "gssapi-with-mic"
        default: return "method \(subtype)"
        }
    }

    private func refuseBeforeLogin(type: Int32, subtype: Int32) {
        let what: String
        switch type {
        case Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue): what = "channel open (type \(subtype))"
        case Int32(SSH_REQUEST_GLOBAL.rawValue): what = "global request (type \(subtype))"
        case Int32(SSH_REQUEST_CHANNEL.rawValue): what = "channel request (type \(subtype))"
        default: what = "message type \(type)"
        }
        audit("session.request", what, refused: Refusal(code: "not-authenticated", rule: "connection-phase", reason: "not authenticated"), ["phase": phase.name])
    }

    /// libssh answers auth-agent-req itself: success when a channel callback exists, failure
    /// otherwise, and calls nothing of ours in the second case. The callback is installed only
    /// on channels where forwarding can be granted; a request libssh reported but no callback
    /// claimed was refused by libssh (failure), and is audited here.
    private func refuseUnclaimedAgentRequests() {
        let count = unclaimedAgentRequests
        unclaimedAgentRequests = 0
        for _ in 0..<count {
            audit("session.request", "agent-forwarding",
                  refused: Refusal(code: "not-allowed", rule: "channel-request",
                                   reason: "agent forwarding is not granted on this channel, or the channel has already started"),
                  ["request": "auth-agent-req@openssh.com", "target": authenticated?.targetName ?? ""])
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
        return of(storage, length: length)
    }

    static func of(_ storage: sockaddr_storage, length: socklen_t) -> (String, Int) {
        var storage = storage
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

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
