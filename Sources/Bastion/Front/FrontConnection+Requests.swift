import CLibSSH
import Foundation
import Policy
import SSHCertificates

/// What will happen to the session, decided once, when its start request arrives.
enum SessionPlan {
    case proceed(target: TargetConfiguration, login: String, start: SessionStart, scope: String)
    /// Refused before anything reaches a target: the message goes to the agent's stderr.
    case refuse(message: String, exitStatus: Int32)
}

extension FrontConnection {
    static let accepted: Int32 = 0
    static let refused: Int32 = -1

    /// Only one session channel per connection, and only after login.
    func openSessionChannel() -> ssh_channel? {
        guard agent != nil else { return nil }
        guard channel == nil else {
            refuseRequest(kind: "session", detail: "a second session channel on one connection (multiplexing is not supported)")
            return nil
        }
        guard let channel = ssh_channel_new(session) else { return nil }
        ssh_set_channel_callbacks(channel, frontChannelCallbacksPointer)
        self.channel = channel
        return channel
    }

    var scopes: [String] { agent?.permissions.scopes ?? [] }

    func ptyRequest(_ request: PTYRequest) -> Int32 {
        guard let agent, start == nil else { return Self.refused }
        guard agent.permissions.pty else {
            audit("session.request", "pty", .refused, ["reason": "the certificate has no permit-pty extension", "target": targetName])
            return Self.refused
        }
        if let target = configuration.targets[targetName],
           case .deny(let denial) = configuration.policy.decide(scopes: scopes, target: target.descriptor, request: .pty(term: request.term)) {
            audit("session.request", "pty", .refused, ["reason": denial.reason, "target": targetName])
            return Self.refused
        }
        guard request.columns >= 0, request.rows >= 0, request.columns < 10_000, request.rows < 10_000, request.term.utf8.count < 256 else {
            audit("session.request", "pty", .refused, ["reason": "terminal size or type out of range", "target": targetName])
            return Self.refused
        }
        pty = request
        return Self.accepted
    }

    func envRequest(name: String, value: String) -> Int32 {
        guard start == nil, let target = configuration.targets[targetName] else { return Self.refused }
        switch configuration.policy.decide(scopes: scopes, target: target.descriptor, request: .env(name: name)) {
        case .allow:
            environment.append((name, value))
            return Self.accepted
        case .deny(let denial):
            audit("session.request", "env", .refused, ["variable": String(name.prefix(128)), "reason": denial.reason, "target": targetName])
            return Self.refused
        }
    }

    func windowChange(columns: Int32, rows: Int32, pixelWidth: Int32, pixelHeight: Int32) -> Int32 {
        guard columns >= 0, rows >= 0, columns < 10_000, rows < 10_000 else { return Self.refused }
        pty?.columns = columns
        pty?.rows = rows
        if let recorder, (try? recorder.resize(cols: Int(columns), rows: Int(rows))) == nil { recordingFailed = true }
        if let channel = target?.channel { ssh_channel_change_pty_size(channel, columns, rows) }
        return Self.accepted
    }

    func signalRequest(_ name: String) {
        // Names as RFC 4254 gives them (no SIG prefix); anything else is dropped.
        guard name.count <= 16, name.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber) }) else { return }
        if let channel = target?.channel { ssh_channel_request_send_signal(channel, name) }
    }

    func targetExited(status: Int32) { targetExitStatus = status }

    func targetKilled(signal: String, core: Bool, message: String, language: String) {
        targetExitSignal = (signal, core, message, language)
    }

    /// An exec request's bytes. libssh hands the command over as a C string, so a command with
    /// an embedded NUL arrives cut at the NUL: what is checked and sent is that prefix, never
    /// the tail (docs/bastion.md). Bytes that are not UTF-8 are refused here with the splitter's
    /// rule, before any repair could change them.
    func execRequest(_ bytes: [UInt8]) -> Int32 {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            guard start == nil, agent != nil else { return Self.refused }
            let target = configuration.targets[targetName]
            guard let target else { return startRequest(.exec(String(decoding: bytes, as: UTF8.self))) }
            if case .deny(let denial) = configuration.policy.decide(scopes: scopes, target: target.descriptor, execBytes: bytes) {
                audit("policy.decision", "exec", .refused, ["target": target.name, "request": String(decoding: bytes, as: UTF8.self), "code": denial.code.rawValue,
                                                            "reason": denial.reason, "rule": denial.rule ?? "", "scopes": scopes.joined(separator: ",")])
                plan = .refuse(message: denial.message, exitStatus: PolicyDenial.exitStatus)
                start = .exec(String(decoding: bytes, as: UTF8.self))
                return Self.accepted
            }
            return Self.refused
        }
        return startRequest(.exec(text))
    }

    /// exec, shell or subsystem: decided here, against the target and the certificate's scopes.
    /// A refused exec or shell is accepted at the SSH level and answered with the reason on
    /// stderr and exit status 77 (255 for an unknown target), so the agent learns why; a refused
    /// subsystem gets the SSH failure reply its client expects.
    func startRequest(_ requested: SessionStart) -> Int32 {
        guard start == nil, let agent else { return Self.refused }
        var request = requested
        if let forced = agent.permissions.forceCommand {
            if case .subsystem = requested {
                audit("session.request", "subsystem", .refused, ["reason": "the certificate has a force-command", "target": targetName])
                return Self.refused
            }
            request = .exec(forced)
        }
        guard let target = configuration.targets[targetName] else {
            audit("session.target", "target \"\(targetName)\"", .refused, ["reason": "unknown target", "request": request.auditText])
            plan = .refuse(message: "gatehouse: no target named \"\(targetName)\" is configured on this bastion.\n", exitStatus: 255)
            start = request
            return Self.accepted
        }
        let policyRequest: ChannelRequest
        switch request {
        case .exec(let command): policyRequest = .exec(command)
        case .shell: policyRequest = .shell
        case .subsystem(let name): policyRequest = .subsystem(name)
        }
        let login = configuration.policy.login(scopes: scopes, target: target.descriptor) ?? target.login
        switch configuration.policy.decide(scopes: scopes, target: target.descriptor, request: policyRequest) {
        case .allow(let scope, let command):
            var details = ["scope": scope, "target": target.name, "login": login, "request": request.auditText]
            if case .exec = request, let command {
                details["command"] = command
                request = .exec(command)
            }
            audit("policy.decision", kindName(of: request), .success, details)
            plan = .proceed(target: target, login: login, start: request, scope: scope)
            start = request
            return Self.accepted
        case .deny(let denial):
            audit("policy.decision", kindName(of: request), .refused, ["target": target.name, "request": request.auditText, "code": denial.code.rawValue,
                                                                       "reason": denial.reason, "rule": denial.rule ?? "", "scopes": scopes.joined(separator: ",")])
            if case .subsystem = request { return Self.refused }
            plan = .refuse(message: denial.message, exitStatus: PolicyDenial.exitStatus)
            start = request
            return Self.accepted
        }
    }

    func kindName(of request: SessionStart) -> String {
        switch request {
        case .exec: return "exec"
        case .shell: return "shell"
        case .subsystem(let s): return "subsystem \(s)"
        }
    }
}
