import CLibSSH
import Foundation
import Policy
import Recording
import SSHCertificates

/// Port forwarding (`-L`, `-D`, `-W`, `-R`), agent forwarding (`-A`) and X11 (`-X`). Each is its
/// own policy decision, needs the matching `permit-*` extension on the agent's certificate (as
/// sshd would require), is carried out by the target's sshd (never by the bastion's own network
/// stack: the bastion reaches nothing but its configured targets), and every byte of every
/// forwarded channel is recorded like a session's.
///
/// The agent's requests arrive through libssh's message callback and are answered there, after
/// the target has answered (the forward is opened there first, so a refusal from the target
/// reaches the agent's client as a refused channel, not as an accepted channel that closes at
/// once). Waiting on the target inside the callback is safe: libssh locks the agent's socket
/// against re-entrant reads while its callback runs. The target's own channel opens are queued
/// by libssh (a client session has no server callbacks) and answered from the connection's loop.
extension FrontConnection {
    /// Answers every queued message from both sides and moves forwarded bytes. Returns whether
    /// anything moved.
    @discardableResult
    func serviceForwards(event: ssh_event) -> Bool {
        attachTarget(to: event)
        if let target {
            while let message = Self.nextMessage(target.session) {
                handleTargetMessage(message)
                ssh_message_free(message)
            }
        }
        guard !forwards.isEmpty else { return false }
        var progressed = false
        var finished: [(ForwardedChannel, String, Bool)] = []
        for forward in forwards {
            switch forward.pump(buffer: scratch, chunk: Self.chunk) {
            case .running(let moved): progressed = progressed || moved
            case .finished(let reason, let clean): finished.append((forward, reason, clean))
            case .recordingFailed(let error):
                recordingFailed = true
                finished.append((forward, "recording failed: \(error)", false))
            }
        }
        for (forward, reason, clean) in finished { closeForward(forward, reason: reason, clean: clean) }
        if progressed { lastForwardActivity = Date() }
        return progressed
    }

    /// The next queued message, without waiting for one.
    static func nextMessage(_ session: ssh_session) -> ssh_message? {
        let blocking = ssh_is_blocking(session) != 0
        if blocking { ssh_set_blocking(session, 0) }
        defer { if blocking { ssh_set_blocking(session, 1) } }
        return ssh_message_get(session)
    }

    /// Every message libssh has no callback for; each is answered here (refusals with libssh's
    /// default reply), so the C callback always tells libssh it was handled.
    func handleAgentMessage(_ message: ssh_message) {
        let type = ssh_message_type(message), subtype = ssh_message_subtype(message)
        if agent != nil {
            if type == Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue), subtype == Int32(SSH_CHANNEL_DIRECT_TCPIP.rawValue) {
                return openLocalForward(message)
            }
            if type == Int32(SSH_REQUEST_GLOBAL.rawValue), subtype == Int32(SSH_GLOBAL_REQUEST_TCPIP_FORWARD.rawValue) {
                return openRemoteListener(message)
            }
            if type == Int32(SSH_REQUEST_GLOBAL.rawValue), subtype == Int32(SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD.rawValue) {
                return cancelRemoteListener(message)
            }
            if type == Int32(SSH_REQUEST_CHANNEL.rawValue), subtype == Int32(SSH_CHANNEL_REQUEST_X11.rawValue) {
                return x11Request(message)
            }
        }
        unhandled(message)
        ssh_message_reply_default(message)
    }

    // MARK: Decisions

    /// The policy decision and the certificate's own extension, together. Refusals are audited
    /// with the rule that refused.
    private func decideForward(_ kind: ForwardedChannel.Kind, _ request: ChannelRequest, detail: String) -> (TargetConfiguration, scope: String)? {
        guard let agent else { return nil }
        if kind == .local || kind == .remote, forwards.count + remoteListeners.count >= configuration.limits.maxForwards {
            audit("session.request", kind.rawValue, .refused, ["request": detail, "target": targetName, "code": "limit",
                                                               "reason": "\(configuration.limits.maxForwards) forwards already open on this connection (limits.max_forwards)"])
            return nil
        }
        guard let target = configuration.targets[targetName] else {
            audit("session.request", kind.rawValue, .refused, ["request": detail, "target": targetName, "reason": "unknown target"])
            return nil
        }
        let permits: Bool, extensionName: String
        switch kind {
        case .local, .remote: (permits, extensionName) = (agent.permissions.portForwarding, CertificateExtension.permitPortForwarding)
        case .agent: (permits, extensionName) = (agent.permissions.agentForwarding, CertificateExtension.permitAgentForwarding)
        case .x11: (permits, extensionName) = (agent.permissions.x11Forwarding, CertificateExtension.permitX11Forwarding)
        }
        switch configuration.policy.decide(scopes: scopes, target: target.descriptor, request: request) {
        case .deny(let denial):
            audit("session.request", kind.rawValue, .refused, ["request": detail, "target": target.name, "code": denial.code.rawValue,
                                                               "reason": denial.reason, "rule": denial.rule ?? "", "scopes": scopes.joined(separator: ",")])
            logger.info("request refused", metadata: ["kind": "\(kind.rawValue)", "reason": "\(denial.reason)"])
            return nil
        case .allow(let scope, _):
            guard permits else {
                audit("session.request", kind.rawValue, .refused, ["request": detail, "target": target.name, "code": "certificate",
                                                                   "reason": "the certificate has no \(extensionName) extension"])
                return nil
            }
            return (target, scope)
        }
    }

    /// The agent's auth-agent-req on the session channel (OpenSSH sends it without asking for a
    /// reply, and libssh gives none): remembered and passed to the target with the session.
    func agentForwardingRequest() {
        guard start == nil, decideForward(.agent, .agentForwarding, detail: "auth-agent-req@openssh.com") != nil else { return }
        agentForwarding = true
        audit("policy.decision", ForwardedChannel.Kind.agent.rawValue, .success, ["target": targetName, "request": "auth-agent-req@openssh.com"])
    }

    private func x11Request(_ message: ssh_message) {
        let request = X11Request(singleConnection: gatehouse_x11_single_connection(message) != 0,
                                 authProtocol: gatehouse_x11_auth_protocol(message).map { String(cString: $0) } ?? "",
                                 authCookie: gatehouse_x11_auth_cookie(message).map { String(cString: $0) } ?? "",
                                 screen: gatehouse_x11_screen_number(message))
        let detail = "x11-req (\(request.authProtocol), screen \(request.screen))"
        guard start == nil, channel != nil, decideForward(.x11, .x11, detail: detail) != nil else {
            ssh_message_reply_default(message)
            return
        }
        x11 = request
        audit("policy.decision", ForwardedChannel.Kind.x11.rawValue, .success, ["target": targetName, "request": detail])
        ssh_message_channel_request_reply_success(message)
    }

    // MARK: Agent → target

    private func openLocalForward(_ message: ssh_message) {
        let host = ssh_message_channel_request_open_destination(message).map { String(cString: $0) } ?? ""
        let port = Int(ssh_message_channel_request_open_destination_port(message))
        let origin = ssh_message_channel_request_open_originator(message).map { String(cString: $0) } ?? ""
        let originPort = Int(ssh_message_channel_request_open_originator_port(message))
        let summary = "direct-tcpip to \(host):\(port) from the agent's \(origin):\(originPort)"
        guard let (targetConfiguration, scope) = decideForward(.local, .forwardLocal(host: host, port: port), detail: summary) else {
            ssh_message_reply_default(message)
            return
        }
        let back: ssh_channel
        do {
            let target = try connectedTarget(targetConfiguration)
            back = try target.openForward(host: host, port: port, originHost: "127.0.0.1", originPort: 0)
        } catch {
            audit("session.target", ForwardedChannel.Kind.local.rawValue, .failure, ["request": summary, "target": targetConfiguration.name, "reason": error.description, "code": error.code])
            ssh_message_reply_default(message)
            return
        }
        acceptOtherSide(message, opened: back, openedOnTarget: true, kind: .local, summary: summary, target: targetConfiguration, scope: scope)
    }

    private func openRemoteListener(_ message: ssh_message) {
        let address = ssh_message_global_request_address(message).map { String(cString: $0) } ?? ""
        let port = Int(ssh_message_global_request_port(message))
        let summary = "tcpip-forward: the target listens on \(address):\(port)"
        guard let (targetConfiguration, scope) = decideForward(.remote, .forwardRemote(host: address, port: port), detail: summary) else {
            ssh_message_reply_default(message)
            return
        }
        do {
            let target = try connectedTarget(targetConfiguration)
            let bound = try target.listenForward(address: address, port: port)
            remoteListeners.append(RemoteListener(address: address, requestedPort: port, boundPort: bound))
            ssh_message_global_request_reply_success(message, UInt16(truncatingIfNeeded: bound))
            deadline?.disarm()
            audit("policy.decision", ForwardedChannel.Kind.remote.rawValue, .success, ["request": summary, "target": targetConfiguration.name,
                                                                                       "scope": scope, "bound_port": String(bound)])
        } catch {
            audit("session.target", ForwardedChannel.Kind.remote.rawValue, .failure, ["request": summary, "target": targetConfiguration.name, "reason": error.description, "code": error.code])
            ssh_message_reply_default(message)
        }
    }

    private func cancelRemoteListener(_ message: ssh_message) {
        let address = ssh_message_global_request_address(message).map { String(cString: $0) } ?? ""
        let port = Int(ssh_message_global_request_port(message))
        guard let index = remoteListeners.firstIndex(where: { $0.address == address && $0.clientPort == port }), let target else {
            ssh_message_reply_default(message)
            return
        }
        target.cancelForward(address: address, port: remoteListeners[index].boundPort)
        remoteListeners.remove(at: index)
        ssh_message_global_request_reply_success(message, 0)
        audit("forward.cancel", ForwardedChannel.Kind.remote.rawValue, .success, ["request": "cancel-tcpip-forward \(address):\(port)", "target": targetName])
    }

    // MARK: Target → agent

    /// Channels the target opens towards the agent: connections to a remote forward, to the
    /// forwarded agent, to the forwarded X11 display. Each was granted when it was set up; each
    /// is opened on the agent's side first and accepted on the target's only if that worked.
    private func handleTargetMessage(_ message: ssh_message) {
        guard ssh_message_type(message) == Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue) else {
            ssh_message_reply_default(message)
            return
        }
        let origin = ssh_message_channel_request_open_originator(message).map { String(cString: $0) } ?? ""
        let originPort = Int(ssh_message_channel_request_open_originator_port(message))
        guard forwards.count + remoteListeners.count < configuration.limits.maxForwards else {
            audit("session.request", "target-channel", .refused, ["target": targetName, "code": "limit", "from": "\(origin):\(originPort)",
                                                                  "reason": "\(configuration.limits.maxForwards) forwards already open on this connection (limits.max_forwards)"])
            ssh_message_reply_default(message)
            return
        }
        guard let front = ssh_channel_new(session) else {
            ssh_message_reply_default(message)
            return
        }
        let kind: ForwardedChannel.Kind, summary: String, rc: Int32
        switch ssh_message_subtype(message) {
        case Int32(SSH_CHANNEL_FORWARDED_TCPIP.rawValue):
            let port = Int(ssh_message_channel_request_open_destination_port(message))
            guard let listener = remoteListeners.first(where: { $0.boundPort == port }) else {
                ssh_channel_free(front)
                ssh_message_reply_default(message)
                return
            }
            kind = .remote
            summary = "forwarded-tcpip from \(origin):\(originPort) to the target's \(listener.address):\(listener.boundPort)"
            rc = TargetConnection.blocking(session) { ssh_channel_open_reverse_forward(front, listener.address, Int32(listener.clientPort), origin, Int32(originPort)) }
        case Int32(SSH_CHANNEL_AUTH_AGENT.rawValue) where agentForwarding:
            kind = .agent
            summary = "auth-agent@openssh.com from the target"
            rc = TargetConnection.blocking(session) { ssh_channel_open_auth_agent(front) }
        case Int32(SSH_CHANNEL_X11.rawValue) where x11 != nil:
            kind = .x11
            summary = "x11 from the target's \(origin):\(originPort)"
            rc = TargetConnection.blocking(session) { ssh_channel_open_x11(front, origin, Int32(originPort)) }
        default:
            ssh_channel_free(front)
            audit("session.request", "target-channel", .refused, ["target": targetName, "reason": "the target opened a channel nothing was granted for",
                                                                  "channel_type": String(ssh_message_subtype(message))])
            ssh_message_reply_default(message)
            return
        }
        guard rc == SSH_OK else {
            ssh_channel_free(front)
            audit("session.request", kind.rawValue, .failure, ["request": summary, "target": targetName, "reason": "the agent's client refused the channel"])
            ssh_message_reply_default(message)
            return
        }
        guard let targetConfiguration = target?.target else {
            ssh_channel_free(front)
            ssh_message_reply_default(message)
            return
        }
        acceptOtherSide(message, opened: front, openedOnTarget: false, kind: kind, summary: summary, target: targetConfiguration, scope: nil)
    }

    /// One side of a forward is open (`opened`); the recorder starts, then the requesting side's
    /// open is accepted. If either fails, the open side is closed and the request refused.
    private func acceptOtherSide(_ message: ssh_message, opened: ssh_channel, openedOnTarget: Bool, kind: ForwardedChannel.Kind,
                                 summary: String, target: TargetConfiguration, scope: String?) {
        guard let recorder = startForwardRecording(summary, target: target) else {
            ssh_channel_close(opened)
            ssh_channel_free(opened)
            ssh_message_reply_default(message)
            return
        }
        guard let accepted = ssh_message_channel_request_open_reply_accept(message) else {
            ssh_channel_close(opened)
            ssh_channel_free(opened)
            _ = try? recorder.finish()
            return
        }
        let (front, back) = openedOnTarget ? (accepted, opened) : (opened, accepted)
        adopt(ForwardedChannel(kind: kind, number: recorder.header.channel, summary: summary, front: front, back: back, recorder: recorder), scope: scope)
    }

    // MARK: Bookkeeping

    private func adopt(_ forward: ForwardedChannel, scope: String?) {
        forwards.append(forward)
        deadline?.disarm()
        lastForwardActivity = Date()
        var details = ["request": forward.summary, "target": targetName, "recording": forward.recorder.path, "channel": String(forward.number)]
        if let scope { details["scope"] = scope }
        audit("forward.start", forward.kind.rawValue, .success, details)
    }

    /// No recording, no forward: the recorder exists before the agent's side is accepted.
    private func startForwardRecording(_ summary: String, target: TargetConfiguration) -> RecordingWriter? {
        guard let agent, !recordingFailed else { return nil }
        nextChannelNumber += 1
        let certificate = agent.certificate
        let login = configuration.policy.login(scopes: scopes, target: target.descriptor) ?? target.login
        let header = SessionHeader(sessionID: sessionID, channel: nextChannelNumber, certificateKeyID: certificate.keyID, certificateSerial: certificate.serial,
                                   scopes: scopes, context: agent.permissions.context ?? "", subject: certificate.principals.joined(separator: ","),
                                   sourceAddress: peer, target: target.name, login: login, command: summary,
                                   terminalType: nil, columns: 0, rows: 0, inputRecorded: true)
        do {
            context.authorities.refresh()
            return try RecordingWriter(directory: configuration.recordingDirectory, header: header, signer: context.authorities.signingKey(.recording))
        } catch {
            audit("session.recording", summary, .failure, ["reason": "\(error)", "target": target.name])
            logger.error("recording could not start; forward refused", metadata: ["error": "\(error)"])
            return nil
        }
    }

    func closeForward(_ forward: ForwardedChannel, reason: String, clean: Bool) {
        forwards.removeAll { $0 === forward }
        forward.close()
        var outcome: RecordingOutcome?
        do {
            if !clean { try forward.recorder.marker(reason) }
            outcome = try forward.recorder.finish()
        } catch {
            audit("session.recording", "recording \(forward.recorder.recordingID)", .failure, ["reason": "\(error)", "path": forward.recorder.path])
        }
        audit("forward.end", forward.kind.rawValue, clean ? .success : .failure, [
            "request": forward.summary, "target": targetName, "reason": reason,
            "bytes_from_agent": String(forward.fromAgent), "bytes_to_agent": String(forward.toAgent),
            "duration_ms": String(Int(Date().timeIntervalSince(forward.opened) * 1000)),
            "recording": outcome?.path ?? forward.recorder.path, "recording_hash": outcome?.finalHash ?? "",
        ])
    }

    /// Ends every forward still open, with the connection.
    func closeAllForwards(reason: String) {
        for forward in forwards { closeForward(forward, reason: reason, clean: false) }
        if let target { for listener in remoteListeners { target.cancelForward(address: listener.address, port: listener.boundPort) } }
        remoteListeners.removeAll()
    }

    /// After the session ends (or with no session at all: `ssh -N`), forwards run on until the
    /// agent hangs up, the scope's limits are reached, or nothing is left open.
    func serviceForwardsUntilDone(event: ssh_event, sessionStarted: Bool) {
        let limits = forwardLimits()
        while ssh_is_connected(session) != 0 {
            if sessionStarted && forwards.isEmpty && remoteListeners.isEmpty { break }
            if targetLost {
                closeAllForwards(reason: "the connection to the target was lost")
                audit("ssh.connection", "connection from \(peer)", .failure, ["reason": "the connection to target \(targetName) was lost"])
                break
            }
            if recordingFailed {
                closeAllForwards(reason: "recording failed")
                audit("session.recording", "connection", .failure, ["reason": "a forwarded channel could not be recorded; the connection was ended"])
                break
            }
            let now = Date()
            if let max = limits.maxDuration, now.timeIntervalSince(connectionStarted) > TimeInterval(max) {
                closeAllForwards(reason: "maximum duration reached")
                audit("ssh.connection", "connection from \(peer)", .success, ["reason": "the scope's maximum duration of \(max)s was reached"])
                break
            }
            if let idle = limits.idleTimeout, now.timeIntervalSince(lastForwardActivity) > TimeInterval(idle) {
                closeAllForwards(reason: "idle timeout")
                audit("ssh.connection", "connection from \(peer)", .success, ["reason": "idle for \(idle)s"])
                break
            }
            if ssh_event_dopoll(event, 250) == SSH_ERROR { break }
            serviceForwards(event: event)
        }
        closeAllForwards(reason: "the connection ended")
    }

    /// The shared target connection existed and is gone: nothing forwarded can go on.
    var targetLost: Bool { target.map { ssh_is_connected($0.session) == 0 } ?? false }

    func forwardLimits() -> (maxDuration: Int?, idleTimeout: Int?) {
        guard let target = configuration.targets[targetName] else { return (nil, nil) }
        let applicable = configuration.policy.applicable(scopes, to: target.descriptor).scopes
        return (applicable.compactMap(\.maxDuration).min(), applicable.compactMap(\.idleTimeout).min())
    }

    /// Whether this agent may forward ports on its target at all: then an authenticated
    /// connection without a session (`ssh -N -L …`) is not cut off by the login deadline.
    var mayForwardPorts: Bool {
        guard let agent, agent.permissions.portForwarding, let target = configuration.targets[targetName] else { return false }
        return configuration.policy.applicable(scopes, to: target.descriptor).scopes.contains { $0.rights.contains(.forwardLocal) || $0.rights.contains(.forwardRemote) }
    }
}
