import CLibSSH
import Foundation
import Policy
import Recording
import Refusals
import SSHCertificates

/// Port forwarding (`-L`, `-D`, `-W`, `-R`), agent forwarding (`-A`) and X11 (`-X`), and every
/// other message of an authenticated connection. Each forward is its own policy decision, needs
/// the matching `permit-*` extension on the agent's certificate (as sshd would require), is
/// carried out by the target's sshd (never by the bastion's own network stack), and every byte
/// of every forwarded channel goes through the same pump and recorder as a session's.
///
/// The agent's requests arrive through libssh's message callback and are answered there, after
/// the target has answered (the forward is opened there first, so a refusal from the target
/// reaches the agent's client as a refused channel). The target's own channel opens are queued
/// by libssh (a client session has no server callbacks) and answered from the connection's turn.
extension AuthenticatedConnection {
    /// A message of the authenticated phase: decided, answered, and audited when refused.
    func handle(_ message: ssh_message, type: Int32, subtype: Int32) {
        switch type {
        case Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue):
            switch subtype {
            case Int32(SSH_CHANNEL_DIRECT_TCPIP.rawValue): return openLocalForward(message)
            case Int32(SSH_CHANNEL_X11.rawValue): refuse("x11 channel opened by the agent", kind: "x11", code: "not-allowed")
            default: refuse("channel type \(subtype)", kind: "channel", code: "unknown-channel-type")
            }
        case Int32(SSH_REQUEST_GLOBAL.rawValue):
            switch subtype {
            case Int32(SSH_GLOBAL_REQUEST_TCPIP_FORWARD.rawValue): return openRemoteListener(message)
            case Int32(SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD.rawValue): return cancelRemoteListener(message)
            default: break  // keepalives and OpenSSH's informational requests: the default reply is right
            }
        case Int32(SSH_REQUEST_CHANNEL.rawValue):
            let channel = ssh_message_channel_request_channel(message)
            guard let session = session(for: channel) else {
                refuse("channel request (type \(subtype)) on a channel that is not a session", kind: "channel-request", code: "not-a-session")
                break
            }
            let request: SessionRequest
            if subtype == Int32(SSH_CHANNEL_REQUEST_X11.rawValue) {
                request = .x11(X11Request(singleConnection: gatehouse_x11_single_connection(message) != 0,
                                          authProtocol: gatehouse_x11_auth_protocol(message).map { String(cString: $0) } ?? "",
                                          authCookie: gatehouse_x11_auth_cookie(message).map { String(cString: $0) } ?? "",
                                          screen: gatehouse_x11_screen_number(message)))
            } else {
                request = .unknown
            }
            if session.handle(request) == .success {
                ssh_message_channel_request_reply_success(message)
                return
            }
        case Int32(SSH_REQUEST_AUTH.rawValue):
            break  // already logged in: libssh's default reply refuses
        default:
            refuse("message type \(type)", kind: "message", code: "unknown-message")
        }
        ssh_message_reply_default(message)
    }

    private func refuse(_ detail: String, kind: String, code: String) {
        front.audit("session.request", kind, refused: Refusal(code: code, rule: "channel-request", reason: "not allowed through Gatehouse"),
                    ["request": detail, "target": targetName])
    }

    // MARK: Decisions

    /// The policy decision and the certificate's own extension, together. Refusals are audited
    /// with the rule that refused.
    func decideForward(_ kind: ForwardedChannel.Kind, _ request: ChannelRequest, detail: String, channel: Int? = nil) -> (TargetConfiguration, scope: String)? {
        var base = ["request": detail, "target": targetName]
        if let channel { base["channel"] = String(channel) }
        func refused(_ refusal: Refusal, _ extra: [String: String] = [:]) -> (TargetConfiguration, scope: String)? {
            front.audit("session.request", kind.rawValue, refused: refusal, base.merging(extra) { $1 })
            return nil
        }
        if kind == .local || kind == .remote, forwards.count + remoteListeners.count >= configuration.limits.maxForwards {
            return refused(Refusal(code: "limit", rule: "limits.max_forwards",
                                   reason: "\(configuration.limits.maxForwards) forwards already open on this connection (limits.max_forwards)"))
        }
        guard let target = targetConfiguration else { return refused(Refusal(code: "unknown-target", rule: "targets", reason: "unknown target")) }
        let permits: Bool, extensionName: String
        switch kind {
        case .local, .remote: (permits, extensionName) = (agent.permissions.portForwarding, CertificateExtension.permitPortForwarding)
        case .agent: (permits, extensionName) = (agent.permissions.agentForwarding, CertificateExtension.permitAgentForwarding)
        case .x11: (permits, extensionName) = (agent.permissions.x11Forwarding, CertificateExtension.permitX11Forwarding)
        }
        switch configuration.policy.decide(entitlement, target: target.descriptor, request: request) {
        case .deny(let denial):
            front.logger.info("request refused", metadata: ["kind": "\(kind.rawValue)", "reason": "\(denial.reason)"])
            return refused(denial.refusal, ["scopes": scopes.joined(separator: ",")])
        case .review:
            // Only exec is ever reviewed: a forward that came back as review is refused.
            return refused(Refusal(code: "not-allowed", rule: "forwards", reason: "forwards are never released by approval"))
        case .allow(let scope, _):
            guard permits else { return refused(Refusal(code: "certificate", rule: extensionName, reason: "the certificate has no \(extensionName) extension")) }
            return (target, scope)
        }
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
            audit("session.target", ForwardedChannel.Kind.local.rawValue, .failure, error.refusal.auditFields(["request": summary, "target": targetConfiguration.name]))
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
            lastActivity = .now
            audit("policy.decision", ForwardedChannel.Kind.remote.rawValue, .success, ["request": summary, "target": targetConfiguration.name,
                                                                                       "scope": scope, "bound_port": String(bound)])
        } catch {
            audit("session.target", ForwardedChannel.Kind.remote.rawValue, .failure, error.refusal.auditFields(["request": summary, "target": targetConfiguration.name]))
            ssh_message_reply_default(message)
        }
    }

    private func cancelRemoteListener(_ message: ssh_message) {
        let address = ssh_message_global_request_address(message).map { String(cString: $0) } ?? ""
        let port = Int(ssh_message_global_request_port(message))
        guard let index = remoteListeners.firstIndex(where: { $0.address == address && $0.clientPort == port }), let target else {
            refuse("cancel-tcpip-forward \(address):\(port) for a forward that is not open", kind: ForwardedChannel.Kind.remote.rawValue, code: "not-open")
            ssh_message_reply_default(message)
            return
        }
        target.cancelForward(address: address, port: remoteListeners[index].boundPort)
        remoteListeners.remove(at: index)
        ssh_message_global_request_reply_success(message, 0)
        audit("forward.cancel", ForwardedChannel.Kind.remote.rawValue, .success, ["request": "cancel-tcpip-forward \(address):\(port)", "target": targetName])
    }

    // MARK: Target → agent

    /// Answers every message the target queued: channels it opens towards the agent (a remote
    /// forward's connections, the forwarded agent, the forwarded X11 display).
    func serviceTargetMessages() {
        guard let target else { return }
        while let message = ssh_message_get(target.session) {
            handleTargetMessage(message)
            ssh_message_free(message)
        }
    }

    /// Each was granted when it was set up; each is opened on the agent's side first and
    /// accepted on the target's only if that worked.
    private func handleTargetMessage(_ message: ssh_message) {
        guard ssh_message_type(message) == Int32(SSH_REQUEST_CHANNEL_OPEN.rawValue) else {
            ssh_message_reply_default(message)
            return
        }
        let origin = ssh_message_channel_request_open_originator(message).map { String(cString: $0) } ?? ""
        let originPort = Int(ssh_message_channel_request_open_originator_port(message))
        guard forwards.count + remoteListeners.count < configuration.limits.maxForwards else {
            front.audit("session.request", "target-channel",
                        refused: Refusal(code: "limit", rule: "limits.max_forwards",
                                         reason: "\(configuration.limits.maxForwards) forwards already open on this connection (limits.max_forwards)"),
                        ["target": targetName, "from": "\(origin):\(originPort)"])
            ssh_message_reply_default(message)
            return
        }
        guard let front = ssh_channel_new(self.front.session) else {
            ssh_message_reply_default(message)
            return
        }
        let session = self.front.session
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
        case Int32(SSH_CHANNEL_AUTH_AGENT.rawValue) where agentForwardingGranted:
            kind = .agent
            summary = "auth-agent@openssh.com from the target"
            rc = TargetConnection.blocking(session) { ssh_channel_open_auth_agent(front) }
        case Int32(SSH_CHANNEL_X11.rawValue) where x11Granted:
            kind = .x11
            summary = "x11 from the target's \(origin):\(originPort)"
            rc = TargetConnection.blocking(session) { ssh_channel_open_x11(front, origin, Int32(originPort)) }
        default:
            ssh_channel_free(front)
            self.front.audit("session.request", "target-channel",
                        refused: Refusal(code: "not-granted", rule: "target-channel", reason: "the target opened a channel nothing was granted for"),
                        ["target": targetName, "channel_type": String(ssh_message_subtype(message))])
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
        let number = takeChannelNumber()
        let login = configuration.policy.login(entitlement, target: target.descriptor) ?? target.login
        let recorder: RecordingWriter
        do {
            guard recordingFailure == nil else { throw RecordingUnavailable() }
            recorder = try startRecording(channel: number, target: target, login: login, command: summary, pty: nil, inputRecorded: true, session: false)
        } catch {
            audit("session.recording", summary, .failure, Refusal(code: "recording-unavailable", rule: "recorder", reason: "\(error)").auditFields(["target": target.name]))
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
        let forward = ForwardedChannel(kind: kind, number: number, summary: summary, front: front, back: back, recorder: recorder)
        forwards.append(forward)
        lastActivity = .now
        var details = ["request": forward.summary, "target": targetName, "recording": forward.recorder.path, "channel": String(forward.number)]
        if let scope { details["scope"] = scope }
        audit("forward.start", forward.kind.rawValue, .success, details)
    }

    private struct RecordingUnavailable: Error, CustomStringConvertible {
        var description: String { "an earlier recording on this connection failed" }
    }

    // MARK: Bookkeeping

    /// Moves forwarded bytes; returns whether anything moved.
    func serviceForwards() -> Bool {
        guard !forwards.isEmpty else { return false }
        var progressed = false
        var finished: [(ForwardedChannel, String, Bool)] = []
        for forward in forwards {
            switch forward.step(scratch: scratch) {
            case .running(let moved): progressed = progressed || moved
            case .finished(let reason, let clean): finished.append((forward, reason, clean))
            case .recordingFailed(let error):
                recordingFailure = "\(error)"
                finished.append((forward, "recording failed: \(error)", false))
            }
        }
        for (forward, reason, clean) in finished { closeForward(forward, reason: reason, clean: clean) }
        if progressed { lastActivity = .now }
        return progressed || !finished.isEmpty
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
            "request": forward.summary, "target": targetName, "reason": reason, "channel": String(forward.number),
            "bytes_from_agent": String(forward.fromAgent), "bytes_to_agent": String(forward.toAgent),
            "duration_ms": String((ContinuousClock.now - forward.opened).milliseconds),
            "recording": outcome?.path ?? forward.recorder.path, "recording_hash": outcome?.finalHash ?? "",
        ])
    }

    /// Ends every forward still open, with the connection.
    func closeAllForwards(reason: String) {
        for forward in forwards { closeForward(forward, reason: reason, clean: false) }
        if let target, ssh_is_connected(target.session) != 0 {
            for listener in remoteListeners { target.cancelForward(address: listener.address, port: listener.boundPort) }
        }
        remoteListeners.removeAll()
    }

    func forwardLimits() -> (maxDuration: Int?, idleTimeout: Int?) {
        guard let target = targetConfiguration else { return (nil, nil) }
        let applicable = configuration.policy.applicable(entitlement, to: target.descriptor).scopes
        return (applicable.compactMap(\.maxDuration).min(), applicable.compactMap(\.idleTimeout).min())
    }
}
