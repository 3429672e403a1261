import Audit
import CLibSSH
import Foundation
import Policy
import Recording
import Refusals
import SSHCertificates

/// What an authenticated connection owns: the agent's certificate, its session channels, its
/// forwards and the one SSH connection to its target that all of them share (one per-session
/// target certificate per agent connection). Lives only in `ConnectionPhase.authenticated`.
final class AuthenticatedConnection {
    unowned let front: FrontConnection
    let agent: ValidatedCertificate
    /// The scopes narrowed by the certificate's task: every policy question is asked of it.
    let entitlement: Entitlement
    let taskID: String?
    let budgetKey: String
    /// The certificate as offered, re-validated before every new session.
    let certificateBlob: [UInt8]
    let targetName: String
    let authenticatedAt = ContinuousClock.now

    var sessions: [SessionChannel] = []
    var forwards: [ForwardedChannel] = []
    var remoteListeners: [RemoteListener] = []
    var target: TargetConnection?
    private var targetAttached = false
    /// Target connections replaced after they were lost, still in the poll context.
    private var lostTargets: [TargetConnection] = []
    private var relaying = false
    /// Recording channel numbers: session channels and forwarded channels count up from 0.
    private var nextChannelNumber = 0
    private(set) var sessionsStarted = 0
    /// Session channels ever opened on this connection.
    private(set) var sessionsOpened = 0
    /// The last moment a channel was open or bytes moved on a forward.
    var lastActivity = ContinuousClock.now
    var lastKeepalive = ContinuousClock.now
    /// A session of this connection asked for (and was granted) agent or X11 forwarding: the
    /// target's auth-agent and x11 channel opens are relayed back only then.
    var agentForwardingGranted = false
    var x11Granted = false
    /// Set when a forward's recorder failed: the connection ends, fail closed.
    var recordingFailure: String?
    /// Scratch space for moving bytes, one per connection (all its channels run on its thread).
    let scratch = UnsafeMutableRawPointer.allocate(byteCount: ChannelPump.chunk, alignment: 16)

    init(front: FrontConnection, credential: AgentCredential, certificateBlob: [UInt8], targetName: String) {
        self.front = front
        agent = credential.validated
        entitlement = credential.entitlement
        taskID = credential.taskID
        budgetKey = credential.budgetKey
        self.certificateBlob = certificateBlob
        self.targetName = targetName
    }

    deinit { scratch.deallocate() }

    var configuration: BastionConfiguration { front.configuration }
    var scopes: [String] { agent.permissions.scopes }
    var targetConfiguration: TargetConfiguration? { configuration.targets[targetName] }
    var age: Duration { ContinuousClock.now - authenticatedAt }

    func audit(_ action: String, _ object: String, _ outcome: AuditEvent.Outcome, _ details: [String: String] = [:]) {
        front.audit(action, object, outcome, details)
    }

    func takeChannelNumber() -> Int {
        defer { nextChannelNumber += 1 }
        return nextChannelNumber
    }

    func sessionStarted() { sessionsStarted += 1 }

    // MARK: The loop's turn

    enum Turn {
        /// Nothing moved; `wake` is when something is due without any input (a masker's quiet tail).
        case idle(wake: ContinuousClock.Instant?)
        /// Something moved: poll again without waiting.
        case busy
        case end(String)
    }

    /// One turn of the connection's loop: starts the sessions whose start was accepted, moves
    /// bytes on every channel, answers the target's channel opens, and enforces the limits.
    func turn(event: ssh_event) -> Turn {
        if !relaying {
            // From here every call on the agent's session must return at once: one thread serves
            // all of the connection's channels.
            ssh_set_blocking(front.session, 0)
            relaying = true
        }
        attachTarget(to: event)
        serviceTargetMessages()
        var progressed = false
        for session in sessions where session.turn(event: event) { progressed = true }
        let finished = sessions.filter(\.isFinished)
        if !finished.isEmpty {
            sessions.removeAll { $0.isFinished }
            for session in finished { session.release() }
            lastActivity = .now
        }
        if serviceForwards() { progressed = true }
        if let failure = recordingFailure {
            return .end("recording failed: \(failure)")
        }
        if let lost = targetLost, !forwards.isEmpty || !remoteListeners.isEmpty {
            return .end(lost)
        }
        if let reason = limitReached() { return .end(reason) }
        keepAlive()
        return progressed ? .busy : .idle(wake: sessions.compactMap(\.maskFlushDue).min())
    }

    /// Connection-wide limits: a connection with nothing open is ended after
    /// `limits.idle_connection`; forwards obey their scopes' duration and idle limits (sessions
    /// enforce their own). The login deadline does not apply here: it ended at authentication.
    private func limitReached() -> String? {
        let now = ContinuousClock.now
        if sessionsOpened == 0, forwards.isEmpty, remoteListeners.isEmpty, !mayForwardPorts,
           now - authenticatedAt > .seconds(configuration.limits.loginGraceSeconds) {
            // Logged in but never asked for anything it may have: a second login grace, from
            // login, for the first channel (a connection with a session is never cut by it).
            return "no session started within \(configuration.limits.loginGraceSeconds)s"
        }
        if sessions.isEmpty, forwards.isEmpty, remoteListeners.isEmpty {
            let idle = configuration.limits.idleConnectionSeconds
            if now - lastActivity > .seconds(idle) { return "no channel open for \(idle)s (limits.idle_connection)" }
            return nil
        }
        guard !forwards.isEmpty || !remoteListeners.isEmpty else { return nil }
        let limits = forwardLimits()
        if let max = limits.maxDuration, now - authenticatedAt > .seconds(max) {
            return "the scope's maximum duration of \(max)s was reached"
        }
        if sessions.isEmpty, let idle = limits.idleTimeout, now - lastActivity > .seconds(idle) {
            return "forwards idle for \(idle)s"
        }
        return nil
    }

    private func keepAlive() {
        let seconds = configuration.limits.keepaliveSeconds
        guard seconds > 0, !sessions.isEmpty || !forwards.isEmpty, ContinuousClock.now - lastKeepalive >= .seconds(seconds) else { return }
        ssh_send_keepalive(front.session)
        if let target { ssh_send_keepalive(target.session) }
        lastKeepalive = .now
    }

    /// Ends everything still open, each with its own audit record, then the target connection.
    func closeAll(reason: String, event: ssh_event) {
        for session in sessions { session.abort(reason: reason) }
        for session in sessions { session.release() }
        sessions.removeAll()
        closeAllForwards(reason: reason)
        if targetAttached, let target {
            ssh_event_remove_session(event, target.session)
            targetAttached = false
        }
        target = nil
    }

    /// Whether this agent may forward ports on its target at all: then a connection without a
    /// session (`ssh -N -L …`) is not held to the login deadline.
    var mayForwardPorts: Bool {
        guard agent.permissions.portForwarding, let target = targetConfiguration else { return false }
        return configuration.policy.applicable(entitlement, to: target.descriptor).scopes.contains { $0.rights.contains(.forwardLocal) || $0.rights.contains(.forwardRemote) }
    }

    func endedCleanly(_ reason: String) -> Bool {
        reason == "client disconnected" || reason.hasPrefix("no channel open")
    }

    // MARK: Session channels

    /// A new session channel: accepted while fewer than `limits.max_sessions` are open. Past the
    /// limit, or when the certificate no longer holds, the channel is still opened so the agent
    /// can be told why (libssh's open failure carries no text), then answered and closed.
    func openSessionChannel() -> ssh_channel? {
        let open = sessions.filter { !$0.isRefusal }.count
        let refusing = sessions.count - open
        let limit = configuration.limits.maxSessions
        var refusal: SessionRefusal?
        if open >= limit {
            refusal = SessionRefusal(code: "max-sessions", rule: "limits.max_sessions", reason: "\(limit) sessions are already open on this connection (limits.max_sessions)",
                                     message: "gatehouse: this connection already has \(limit) open sessions (limits.max_sessions); open another connection or wait for one to end.\n",
                                     exitStatus: 255)
        } else if case .failure(let problem) = front.validate(certificateBlob) {
            refusal = SessionRefusal(code: problem.code, rule: problem.rule, reason: "the certificate no longer holds: \(problem.description)",
                                     message: "gatehouse: your certificate no longer holds (\(problem.description)); log in again.\n",
                                     exitStatus: 255)
        }
        if let refusal {
            front.audit("session.open", "session channel", refused: refusal.refusal, ["target": targetName, "open_sessions": String(open)])
            // A client flooding refused opens gets the plain protocol refusal past this.
            guard refusing < limit else { return nil }
        }
        guard let channel = ssh_channel_new(front.session) else { return nil }
        let session = SessionChannel(connection: self, channel: channel, number: takeChannelNumber(), refusal: refusal)
        sessions.append(session)
        sessionsOpened += 1
        lastActivity = .now
        return channel
    }

    func session(for channel: ssh_channel?) -> SessionChannel? {
        guard let channel else { return nil }
        return sessions.first { $0.channel == channel }
    }

    // MARK: The target connection

    /// The connection's one SSH connection to its target, made on first need (a session or a
    /// forward) and shared by every channel after it.
    func connectedTarget(_ configuration: TargetConfiguration) throws(TargetFailure) -> TargetConnection {
        if let target, ssh_is_connected(target.session) != 0 { return target }
        if let lost = target {
            // Lost since: a new one is made for the new channel. The old one stays alive (its
            // channels end on their own) until the loop's next turn takes it out of the poll
            // context; freeing it while the context still holds its socket would be a use after free.
            if targetAttached { lostTargets.append(lost) }
            target = nil
            targetAttached = false
        }
        let limits = self.configuration.limits
        let login = self.configuration.policy.login(entitlement, target: configuration.descriptor) ?? configuration.login
        let connection = try TargetConnection(target: configuration, algorithms: self.configuration.algorithms,
                                              timeoutSeconds: limits.targetConnectTimeoutSeconds, login: login)
        let authorities = front.context.authorities
        let verifier = HostKeyVerifier(check: configuration.hostKey, target: configuration, storeHostCAs: { authorities.trusted(.host) })
        try connection.connect(verifier: verifier, now: UInt64(Date().timeIntervalSince1970))

        let ephemeral: SSHPrivateKey, certificate: SSHCertificate
        do {
            ephemeral = try SSHPrivateKey.generate(.ed25519, comment: front.sessionID)
            let (validAfter, validBefore) = CertificateTemplate.validFor(UInt64(limits.targetCertificateSeconds), from: UInt64(Date().timeIntervalSince1970))
            let agent = self.agent.certificate
            // The key id ties the target's own sshd log line back to this connection and agent.
            let keyID = "gatehouse session=\(front.sessionID) agent=\(agent.keyID) agent_serial=\(agent.serial) target=\(configuration.name)"
            let template = CertificateTemplate(key: ephemeral.publicKey, type: .user, serial: 0, keyID: keyID, principals: [login],
                                               validAfter: validAfter, validBefore: validBefore,
                                               extensions: targetExtensions(for: configuration).map { .flag($0) })
            authorities.refresh()
            certificate = try authorities.issue(.target, template, actor: "gatehouse:\(front.sessionID)")
        } catch {
            throw .certificate(target: configuration.name, reason: "\(error)")
        }
        let key: ssh_key
        do { key = try LibSSHKeys.certifiedPrivateKey(ephemeral, certificate: certificate) } catch { throw .certificate(target: configuration.name, reason: "\(error)") }
        defer { ssh_key_free(key) }
        try connection.authenticate(with: key, login: login)
        ssh_set_blocking(connection.session, 0)
        front.context.connections.targetConnected()
        target = connection
        return connection
    }

    /// Puts the target's socket in the connection's poll context, once. Never called from inside
    /// a libssh callback: the context must not change while libssh is polling it.
    func attachTarget(to event: ssh_event) {
        for lost in lostTargets { ssh_event_remove_session(event, lost.session) }
        lostTargets.removeAll()
        guard let target, !targetAttached else { return }
        ssh_event_add_session(event, target.session)
        targetAttached = true
    }

    /// The target connection existed and is gone; why, for the audit.
    var targetLost: String? {
        guard let target, ssh_is_connected(target.session) == 0 else { return nil }
        return "the connection to target \(target.target.name) was lost"
    }

    /// The target certificate carries what this connection may use: permit-pty when a pty can
    /// be granted, agent and X11 forwarding when granted, port forwarding when the scopes grant
    /// it and the agent's own certificate permits it. The target's sshd then refuses anything
    /// else on its own, whatever the bastion does. Decided once per connection (the certificate
    /// is shared by its channels), from what the scopes and the agent's certificate allow.
    func targetExtensions(for target: TargetConfiguration) -> [String] {
        let rights = Set(configuration.policy.applicable(entitlement, to: target.descriptor).scopes.flatMap(\.rights))
        var extensions: [String] = []
        if rights.contains(.pty), agent.permissions.pty { extensions.append(CertificateExtension.permitPTY) }
        if agent.permissions.portForwarding, rights.contains(.forwardLocal) || rights.contains(.forwardRemote) {
            extensions.append(CertificateExtension.permitPortForwarding)
        }
        if agent.permissions.agentForwarding, rights.contains(.agentForwarding) { extensions.append(CertificateExtension.permitAgentForwarding) }
        if agent.permissions.x11Forwarding, rights.contains(.x11) { extensions.append(CertificateExtension.permitX11Forwarding) }
        return extensions
    }

    /// Starts a recording for one channel of this connection. No recording, no channel: it
    /// exists (header written and synced) before anything reaches the target.
    func startRecording(channel number: Int, target: TargetConfiguration, login: String, command: String?, pty: PTYRequest?,
                        inputRecorded: Bool, masking: SessionMasking? = nil, session: Bool) throws -> RecordingWriter {
        let certificate = agent.certificate
        let header = SessionHeader(sessionID: front.sessionID, channel: number, certificateKeyID: certificate.keyID, certificateSerial: certificate.serial,
                                   scopes: scopes, context: agent.permissions.context ?? "", subject: certificate.principals.joined(separator: ","),
                                   sourceAddress: front.peer, target: target.name, login: login, command: command,
                                   terminalType: pty?.term, columns: Int(pty?.columns ?? 0), rows: Int(pty?.rows ?? 0), inputRecorded: inputRecorded,
                                   masking: masking.map { HeaderMasking(record: $0.recordsOriginal ? "raw" : "masked", view: $0.mode.rawValue, rules: $0.rules.ruleNames) })
        front.context.authorities.refresh()
        let wakeup = front.wakeup
        var options = RecordingWriter.Options()
        options.recordsFailureNotice = session
        return try RecordingWriter(directory: configuration.recordingDirectory, header: header,
                                   signer: front.context.authorities.signingKey(.recording), options: options, onWritten: { wakeup.signal() })
    }
}

/// Why a session channel is answered with a refusal instead of a session.
struct SessionRefusal {
    var code: String
    var rule: String
    var reason: String
    /// What the agent reads on stderr.
    var message: String
    var exitStatus: Int32

    var refusal: Refusal { Refusal(code: code, rule: rule, reason: reason) }

    /// A refusal as every denial reads: one sentence, then the machine line, exit status 77.
    static func denied(_ refusal: Refusal, advice: String? = nil) -> SessionRefusal {
        SessionRefusal(code: refusal.code, rule: refusal.rule, reason: refusal.reason,
                       message: "gatehouse: denied: \(refusal.reason)\(advice.map { "; \($0)" } ?? "").\ngatehouse-denial: \(refusal.json(extra: [("exit_status", "77")]))\n",
                       exitStatus: PolicyDenial.exitStatus)
    }
}
