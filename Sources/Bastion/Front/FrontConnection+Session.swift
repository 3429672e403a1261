import Audit
import CLibSSH
import Foundation
import Policy
import Recording
import SSHCertificates

extension FrontConnection {
    func runSession(start: SessionStart, channel: ssh_channel, event: ssh_event) {
        guard let plan, let agent else { return }
        switch plan {
        case .refuse(let message, let exitStatus):
            finishFront(channel, event: event, stderr: message, exitStatus: exitStatus)
        case .proceed(let targetConfiguration, let login, let start, let scope):
            let began = Date()
            let certificate = agent.certificate
            let summary = SessionSummary(sessionID: sessionID, peer: peer, target: targetConfiguration.name, login: login, keyID: certificate.keyID,
                                         serial: certificate.serial, principals: certificate.principals, scopes: scopes,
                                         context: agent.permissions.context, request: start.auditText, terminal: pty?.term, startedAt: began)
            // No recording, no session: the recorder exists before the target is contacted.
            let recordsInput = configuration.policy.recordsInput(scopes: scopes, target: targetConfiguration.descriptor)
            let recorder: RecordingWriter
            do {
                var command: String?
                switch start {
                case .exec(let c): command = c
                case .shell: command = nil
                case .subsystem(let name): command = "subsystem \(name)"
                }
                let header = SessionHeader(sessionID: sessionID, certificateKeyID: certificate.keyID, certificateSerial: certificate.serial,
                                           scopes: scopes, context: agent.permissions.context ?? "", subject: certificate.principals.joined(separator: ","),
                                           sourceAddress: peer, target: targetConfiguration.name, login: login, command: command,
                                           terminalType: pty?.term, columns: Int(pty?.columns ?? 0), rows: Int(pty?.rows ?? 0), inputRecorded: recordsInput)
                context.authorities.refresh()
                recorder = try RecordingWriter(directory: configuration.recordingDirectory, header: header, signer: context.authorities.signingKey(.recording))
            } catch {
                audit("session.recording", "target \"\(targetConfiguration.name)\"", .failure, ["reason": "\(error)", "request": start.auditText])
                logger.error("recording could not start; session refused", metadata: ["error": "\(error)"])
                finishFront(channel, event: event, stderr: "gatehouse: the session cannot be recorded (\(error)), so it is refused.\n", exitStatus: 255)
                return
            }
            self.recorder = recorder
            self.recordsInput = recordsInput
            let target: TargetConnection
            do {
                target = try openTarget(targetConfiguration, login: login, start: start, event: event)
            } catch {
                audit("session.target", "target \"\(targetConfiguration.name)\"", .failure, ["reason": error.description, "code": error.code, "request": start.auditText])
                logger.warning("target session failed", metadata: ["target": "\(targetConfiguration.name)", "error": "\(error)"])
                finishRecording(exitStatus: nil, exitSignal: nil, marker: "target failed: \(error)")
                finishFront(channel, event: event, stderr: "gatehouse: \(error).\n", exitStatus: 255)
                return
            }
            self.target = target
            audit("session.start", "target \"\(targetConfiguration.name)\"", .success, [
                "login": login, "scope": scope, "request": start.auditText, "pty": pty.map { "\($0.term) \($0.columns)x\($0.rows)" } ?? "none",
                "scopes": scopes.joined(separator: ","), "context": agent.permissions.context ?? "",
            ])
            context.connections.sessionStarted()
            context.observer?.sessionStarted(summary)
            let limits = configuration.policy.applicable(scopes, to: targetConfiguration.descriptor).scopes
            let ending = relay(front: channel, event: event, target: target,
                               maxDuration: limits.compactMap(\.maxDuration).min(), idleTimeout: limits.compactMap(\.idleTimeout).min())
            let recording = finishRecording(exitStatus: ending.exitStatus, exitSignal: ending.exitSignal, marker: ending.clean ? nil : ending.reason)
            let outcome = SessionOutcome(exitStatus: ending.exitStatus, exitSignal: ending.exitSignal, reason: ending.reason,
                                         bytesIn: bytesIn, bytesOut: bytesOut, bytesErr: bytesErr, duration: Date().timeIntervalSince(began))
            context.connections.sessionEnded()
            context.observer?.sessionEnded(summary, outcome: outcome)
            audit("session.end", "target \"\(targetConfiguration.name)\"", ending.clean ? .success : .failure, [
                "reason": ending.reason, "exit_status": ending.exitStatus.map { String($0) } ?? "", "exit_signal": ending.exitSignal ?? "",
                "bytes_stdin": String(bytesIn), "bytes_stdout": String(bytesOut), "bytes_stderr": String(bytesErr),
                "duration_ms": String(Int(outcome.duration * 1000)),
                "recording": recording?.path ?? "", "recording_hash": recording?.finalHash ?? "", "input_recorded": String(recordsInput),
            ])
            logger.info("session ended", metadata: ["reason": "\(ending.reason)", "exit": "\(ending.exitStatus.map { String($0) } ?? ending.exitSignal ?? "-")"])
        }
    }

    /// Closes the recording with the session's outcome; a failure here is audited (the bytes
    /// written so far stay verifiable up to the last flush).
    @discardableResult
    func finishRecording(exitStatus: Int32?, exitSignal: String?, marker: String?) -> RecordingOutcome? {
        guard let recorder else { return nil }
        self.recorder = nil
        do {
            if let marker { try recorder.marker(marker) }
            if let exitSignal { try recorder.exit(signal: exitSignal) } else if let exitStatus { try recorder.exit(status: UInt32(bitPattern: exitStatus)) }
            return try recorder.finish()
        } catch {
            audit("session.recording", "recording \(recorder.recordingID)", .failure, ["reason": "\(error)", "path": recorder.path])
            return nil
        }
    }

    /// Connects, verifies the host key, mints the per-session certificate and replays the
    /// agent's requests on a new channel.
    func openTarget(_ configuration: TargetConfiguration, login: String, start: SessionStart, event: ssh_event) throws(TargetFailure) -> TargetConnection {
        let connection = try connectedTarget(configuration)
        attachTarget(to: event)
        try connection.open(pty: pty, environment: environment, agentForwarding: agentForwarding, x11: x11, start: start, callbacks: targetChannelCallbacks)
        return connection
    }

    /// The connection's one SSH connection to its target, made on first need (the session or
    /// a forward) and shared by every channel after it.
    func connectedTarget(_ configuration: TargetConfiguration) throws(TargetFailure) -> TargetConnection {
        if let target { return target }
        let limits = self.configuration.limits
        let login = self.configuration.policy.login(scopes: scopes, target: configuration.descriptor) ?? configuration.login
        let connection = try TargetConnection(target: configuration, algorithms: self.configuration.algorithms,
                                              timeoutSeconds: limits.targetConnectTimeoutSeconds, login: login)
        let authorities = context.authorities
        let verifier = HostKeyVerifier(check: configuration.hostKey, target: configuration, storeHostCAs: { authorities.trusted(.host) })
        try connection.connect(verifier: verifier, now: UInt64(Date().timeIntervalSince1970))

        let ephemeral: SSHPrivateKey, certificate: SSHCertificate
        do {
            ephemeral = try SSHPrivateKey.generate(.ed25519, comment: sessionID)
            let (validAfter, validBefore) = CertificateTemplate.validFor(UInt64(limits.targetCertificateSeconds), from: UInt64(Date().timeIntervalSince1970))
            let agent = self.agent!.certificate
            // The key id ties the target's own sshd log line back to this session and agent.
            let keyID = "gatehouse session=\(sessionID) agent=\(agent.keyID) agent_serial=\(agent.serial) target=\(configuration.name)"
            let template = CertificateTemplate(key: ephemeral.publicKey, type: .user, serial: 0, keyID: keyID, principals: [login],
                                               validAfter: validAfter, validBefore: validBefore,
                                               extensions: targetExtensions(for: configuration).map { .flag($0) })
            authorities.refresh()
            certificate = try authorities.issue(.target, template, actor: "gatehouse:\(sessionID)")
        } catch {
            throw .certificate(target: configuration.name, reason: "\(error)")
        }
        let key: ssh_key
        do { key = try LibSSHKeys.certifiedPrivateKey(ephemeral, certificate: certificate) } catch { throw .certificate(target: configuration.name, reason: "\(error)") }
        defer { ssh_key_free(key) }
        try connection.authenticate(with: key, login: login)
        target = connection
        return connection
    }

    /// Puts the target's socket in the connection's poll context, once. Never called from inside
    /// a libssh callback: the context must not change while libssh is polling it.
    func attachTarget(to event: ssh_event) {
        guard let target, !targetAttached else { return }
        ssh_event_add_session(event, target.session)
        targetAttached = true
    }

    /// The target certificate carries only what this connection can use: permit-pty when a pty
    /// was asked for, agent and X11 forwarding when granted and requested, port forwarding when
    /// the scopes grant it and the agent's own certificate permits it. The target's sshd then
    /// refuses anything else on its own, whatever the bastion does.
    func targetExtensions(for target: TargetConfiguration) -> [String] {
        guard let agent else { return [] }
        let rights = Set(configuration.policy.applicable(scopes, to: target.descriptor).scopes.flatMap(\.rights))
        var extensions: [String] = []
        let ptyPossible = pty != nil || (start == nil && rights.contains(.pty) && agent.permissions.pty)
        if ptyPossible { extensions.append(CertificateExtension.permitPTY) }
        if agent.permissions.portForwarding, rights.contains(.forwardLocal) || rights.contains(.forwardRemote) {
            extensions.append(CertificateExtension.permitPortForwarding)
        }
        if agentForwarding { extensions.append(CertificateExtension.permitAgentForwarding) }
        if x11 != nil { extensions.append(CertificateExtension.permitX11Forwarding) }
        return extensions
    }

    /// Ends the agent's channel: an optional message on stderr, the exit status or signal, EOF
    /// and close; then waits briefly for the client to hang up so everything queued is sent.
    func finishFront(_ channel: ssh_channel, event: ssh_event, stderr: String? = nil, exitStatus: Int32? = nil,
                     exitSignal: (signal: String, core: Bool, message: String, language: String)? = nil) {
        if let stderr, !stderr.isEmpty {
            let text = pty != nil ? stderr.replacingOccurrences(of: "\n", with: "\r\n") : stderr
            var bytes = Array(text.utf8)
            bytes.withUnsafeMutableBytes { _ = ssh_channel_write_stderr(channel, $0.baseAddress, UInt32($0.count)) }
        }
        if let exitSignal {
            ssh_channel_request_send_exit_signal(channel, exitSignal.signal, exitSignal.core ? 1 : 0, exitSignal.message, exitSignal.language)
        } else if let exitStatus {
            ssh_channel_request_send_exit_status(channel, exitStatus)
        }
        ssh_channel_send_eof(channel)
        ssh_channel_close(channel)
        // Forwards still open keep the connection (serviceForwardsUntilDone runs them).
        let until = Date().addingTimeInterval(2)
        while Date() < until, ssh_is_connected(session) != 0, forwards.isEmpty, remoteListeners.isEmpty {
            if ssh_event_dopoll(event, 100) == SSH_ERROR { break }
            serviceForwards(event: event)
        }
    }
}
