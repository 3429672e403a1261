import Audit
import CLibSSH
import Masking
import Foundation
import Policy
import Recording
import Refusals
import SSHCertificates

/// One session channel of an agent connection, with its own requests, policy decision,
/// recording, target channel and audit records. A connection holds up to `limits.max_sessions`
/// of them, all sharing the connection's one target connection.
///
/// Every request the agent sends on the channel is decided in `handle(_:)` — this is where a new
/// channel request type is added — and answered with the decision, in whatever state the
/// channel is: a second exec, a late pty-req or env, an unknown request are refused with a
/// failure reply and an audit record, never silently.
final class SessionChannel {
    enum State {
        /// Open; pty, environment, agent and X11 forwarding are collected until exec/shell/subsystem.
        case setup(SessionSetup)
        /// A start request was decided: the session opens on the target (or is answered with the
        /// refusal) at the connection's next turn, outside libssh's callbacks.
        case starting(SessionSetup, SessionPlan)
        /// Relaying through a channel on the target connection.
        case running(RunningSession)
        /// Waiting for an answer computed off the connection's thread (an approval wait).
        case answering(PendingAnswer, pty: Bool)
        /// Refused and answered (stderr, exit status, EOF); the channel closes once the agent has
        /// sent its own EOF, or at `until` (`answerGrace`): a client that writes its input right
        /// after its exec was accepted (asyncssh's `run(input=…)`) must not find the channel already closed.
        case draining(until: ContinuousClock.Instant)
        /// Answered and closed (or aborted): nothing more is accepted.
        case finished
    }

    /// How long an answered (refused) channel stays open for input the client sent right after
    /// its exec was accepted (asyncssh's `run(input=…)` writes before it reads the answer) when
    /// the client sends no EOF of its own: longer than a round trip on any sane network, short
    /// enough that a client waiting for the close (asyncssh without input) has its answer well
    /// under a second — an agent's pending-approval or denial answer must not cost it seconds.
    static let answerGrace: Duration = .milliseconds(500)

    unowned let connection: AuthenticatedConnection
    let channel: ssh_channel
    /// The recording's channel number within the connection.
    let number: Int
    private(set) var state: State
    /// Opened only to tell the agent why no session can be had here.
    let isRefusal: Bool
    /// The answer such a channel gives to its start request (exec, shell, subsystem): accepted
    /// at the SSH level, so the client reads the reason on stderr instead of a bare failure.
    private let openRefusal: SessionRefusal?
    private let callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>
    let targetCallbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>

    init(connection: AuthenticatedConnection, channel: ssh_channel, number: Int, refusal: SessionRefusal?) {
        self.connection = connection
        self.channel = channel
        self.number = number
        isRefusal = refusal != nil
        openRefusal = refusal
        state = .setup(SessionSetup())
        callbacks = FrontCallbacks.sessionChannel()
        targetCallbacks = FrontCallbacks.targetChannel()
        let me = Unmanaged.passUnretained(self).toOpaque()
        callbacks.pointee.userdata = me
        targetCallbacks.pointee.userdata = me
        // libssh answers auth-agent-req with success whenever the callback exists: it exists only
        // while forwarding could be granted here (FrontConnection audits the others).
        if refusal == nil, agentForwardingGrantable { FrontCallbacks.acceptAgentRequests(callbacks) }
        ssh_set_channel_callbacks(channel, callbacks)
    }

    var isFinished: Bool { if case .finished = state { return true } else { return false } }

    /// When the running session's masker must release its quiet tail.
    var maskFlushDue: ContinuousClock.Instant? { if case .running(let run) = state { run.pump.maskFlushDue } else { nil } }

    private var configuration: BastionConfiguration { connection.configuration }
    private var scopes: [String] { connection.scopes }
    private var entitlement: Entitlement { connection.entitlement }
    private var context: ServerContext { connection.front.context }
    private var targetName: String { connection.targetName }
    private var agent: ValidatedCertificate { connection.agent }

    private func audit(_ action: String, _ object: String, _ outcome: AuditEvent.Outcome, _ details: [String: String] = [:]) {
        var d = details
        d["channel"] = String(number)
        connection.audit(action, object, outcome, d)
    }

    // MARK: Requests — every one decided here

    func handle(_ request: SessionRequest) -> RequestReply {
        if let openRefusal, case .setup(let setup) = state {
            switch request {
            case .exec, .shell, .subsystem:
                state = .starting(setup, .refuse(openRefusal))
                return .success
            case .pty, .env, .windowChange:
                return .success  // harmless: nothing will run
            default:
                return refuse(request, openRefusal.reason, code: openRefusal.code)
            }
        }
        switch (state, request) {
        case (.setup(var setup), .pty(let pty)):
            guard let reply = decidePTY(pty) else { return .failure }
            setup.pty = pty
            state = .setup(setup)
            return reply
        case (.setup(var setup), .env(let name, let value)):
            guard decideEnv(name) else { return .failure }
            setup.environment.append((name, value))
            state = .setup(setup)
            return .success
        case (.setup(var setup), .agentForwarding):
            guard connection.decideForward(.agent, .agentForwarding, detail: "auth-agent-req@openssh.com", channel: number) != nil else { return .failure }
            setup.agentForwarding = true
            state = .setup(setup)
            audit("policy.decision", ForwardedChannel.Kind.agent.rawValue, .success, ["target": targetName, "request": "auth-agent-req@openssh.com"])
            return .success
        case (.setup(var setup), .x11(let x11)):
            let detail = "x11-req (\(x11.authProtocol), screen \(x11.screen))"
            guard connection.decideForward(.x11, .x11, detail: detail, channel: number) != nil else { return .failure }
            setup.x11 = x11
            state = .setup(setup)
            audit("policy.decision", ForwardedChannel.Kind.x11.rawValue, .success, ["target": targetName, "request": detail])
            return .success
        case (.setup(let setup), .exec(let bytes)):
            return decideStart(.exec(bytes), setup: setup)
        case (.setup(let setup), .shell):
            return decideStart(.shell, setup: setup)
        case (.setup(let setup), .subsystem(let name)):
            return decideStart(.subsystem(name), setup: setup)
        case (.setup(var setup), .windowChange(let columns, let rows)):
            guard Self.validSize(columns, rows) else { return refuse(request, "terminal size out of range", code: "invalid-request") }
            setup.pty?.columns = columns
            setup.pty?.rows = rows
            state = .setup(setup)
            return .success
        case (.running(let run), .windowChange(let columns, let rows)):
            guard Self.validSize(columns, rows) else { return refuse(request, "terminal size out of range", code: "invalid-request") }
            run.resize(columns: columns, rows: rows)
            return .success
        case (.running(let run), .signal(let name)):
            // Names as RFC 4254 gives them (no SIG prefix).
            guard name.count <= 16, !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber) }) else {
                return refuse(request, "not a signal name RFC 4254 knows", code: "invalid-request")
            }
            ssh_channel_request_send_signal(run.back, name)
            audit("session.signal", "signal \(name)", .success, ["target": targetName])
            return .success
        case (_, .unknown):
            return refuse(request, "unknown channel request", code: "unknown-request")
        case (.setup, .signal):
            return refuse(request, "no process is running on this channel yet", code: "not-started")
        case (_, let request) where request.beforeStartOnly:
            return refuse(request, "the channel has already started a session; \(request.name) is only accepted before exec, shell or subsystem",
                          code: "channel-already-started")
        default:
            return refuse(request, "the channel is no longer running", code: "channel-finished")
        }
    }

    /// Refuses a request on this channel: the failure reply, and its audit record in the shared
    /// refusal shape (`rule` names what decided: the channel's state, the certificate, policy).
    private func refuse(_ request: SessionRequest, _ reason: String, code: String, rule: String = "channel-request") -> RequestReply {
        refuse(request, Refusal(code: code, rule: rule, reason: reason))
    }

    private func refuse(_ request: SessionRequest, _ refusal: Refusal, _ context: [String: String] = [:]) -> RequestReply {
        var details = context.merging(["request": request.name, "target": targetName, "state": stateName]) { mine, _ in mine }
        if case .exec(let bytes) = request { details["command"] = String(decoding: bytes.prefix(512), as: UTF8.self) }
        audit("session.request", request.auditObject, .refused, refusal.auditFields(details))
        return .failure
    }

    private var stateName: String {
        switch state {
        case .setup: return "setup"
        case .starting: return "starting"
        case .running: return "running"
        case .answering: return "answering"
        case .draining: return "answered"
        case .finished: return "finished"
        }
    }

    static func validSize(_ columns: Int32, _ rows: Int32) -> Bool { columns >= 0 && rows >= 0 && columns < 10_000 && rows < 10_000 }

    /// Whether an auth-agent-req could be granted on this channel (no audit: a probe).
    private var agentForwardingGrantable: Bool {
        guard agent.permissions.agentForwarding, let target = connection.targetConfiguration else { return false }
        if case .allow = configuration.policy.decide(entitlement, target: target.descriptor, request: .agentForwarding) { return true }
        return false
    }

    private func decidePTY(_ request: PTYRequest) -> RequestReply? {
        guard agent.permissions.pty else {
            _ = refuse(.pty(request), "the certificate has no permit-pty extension", code: "certificate", rule: "permit-pty")
            return nil
        }
        if let target = connection.targetConfiguration,
           case .deny(let denial) = configuration.policy.decide(entitlement, target: target.descriptor, request: .pty(term: request.term)) {
            _ = refuse(.pty(request), denial.refusal)
            return nil
        }
        guard Self.validSize(request.columns, request.rows), request.term.utf8.count < 256 else {
            _ = refuse(.pty(request), "terminal size or type out of range", code: "invalid-request")
            return nil
        }
        return .success
    }

    private func decideEnv(_ name: String) -> Bool {
        guard let target = connection.targetConfiguration else {
            _ = refuse(.env(name: name, value: ""), "unknown target", code: "unknown-target", rule: "targets")
            return false
        }
        switch configuration.policy.decide(entitlement, target: target.descriptor, request: .env(name: name)) {
        case .allow:
            return true
        case .review:
            // Only exec is ever reviewed; anything else that came back as review is refused.
            _ = refuse(.env(name: name, value: ""), "environment variables are not reviewed", code: "not-allowed", rule: "env")
            return false
        case .deny(let denial):
            _ = refuse(.env(name: name, value: ""), denial.refusal, ["variable": String(name.prefix(128))])
            return false
        }
    }

    /// exec, shell or subsystem: decided here, against the target and the certificate's scopes.
    /// A refused exec or shell is accepted at the SSH level and answered with the reason on
    /// stderr and exit status 77 (255 for an unknown target), so the agent learns why; a refused
    /// subsystem gets the SSH failure reply its client expects.
    private enum StartRequest {
        case exec([UInt8])
        case shell
        case subsystem(String)
    }

    private func decideStart(_ requested: StartRequest, setup: SessionSetup) -> RequestReply {
        // The certificate must still hold when the session starts, not only when the channel
        // opened: a channel can wait before its exec past expiry or a revocation.
        if case .failure(let problem) = connection.front.validate(connection.certificateBlob) {
            let refusal = SessionRefusal(code: problem.code, rule: problem.rule, reason: "the certificate no longer holds: \(problem.description)",
                                         message: "gatehouse: your certificate no longer holds (\(problem.description)); log in again.\n", exitStatus: 255)
            return plan(.refuse(refusal), setup: setup, audit: ("session.start", "target \"\(targetName)\"", refusal.refusal.auditFields()))
        }
        var request: SessionStart
        switch requested {
        case .exec(let bytes):
            guard let text = String(validating: bytes, as: UTF8.self) else {
                // Not UTF-8: refused by the splitter's rule on the raw bytes, before any repair.
                let shown = String(decoding: bytes, as: UTF8.self)
                if let target = connection.targetConfiguration,
                   case .deny(let denial) = configuration.policy.decide(entitlement, target: target.descriptor, execBytes: bytes) {
                    return plan(.refuse(refusal(denial)), setup: setup, audit: ("policy.decision", "exec", denial.refusal.auditFields([
                        "target": target.name, "request": shown, "scopes": scopes.joined(separator: ","),
                    ])))
                }
                return refuse(.exec(bytes), "the command is not valid UTF-8", code: "invalid-command")
            }
            request = .exec(text)
        case .shell: request = .shell
        case .subsystem(let name): request = .subsystem(name)
        }
        if let forced = agent.permissions.forceCommand {
            if case .subsystem = request {
                return refuse(.subsystem(""), "the certificate has a force-command", code: "certificate", rule: "force-command")
            }
            request = .exec(forced)
        }
        if targetName == ApprovalDesk.reservedTarget, connection.targetConfiguration == nil {
            return decideReserved(request, setup: setup)
        }
        guard let target = connection.targetConfiguration else {
            let refusal = SessionRefusal(code: "unknown-target", rule: "targets", reason: "unknown target",
                                         message: "gatehouse: no target named \"\(targetName)\" is configured on this bastion.\n", exitStatus: 255)
            return plan(.refuse(refusal), setup: setup, audit: ("session.target", "target \"\(targetName)\"", refusal.refusal.auditFields([
                "request": request.auditText,
            ])))
        }
        let policyRequest: ChannelRequest
        switch request {
        case .exec(let command): policyRequest = .exec(command)
        case .shell: policyRequest = .shell
        case .subsystem(let name): policyRequest = .subsystem(name)
        }
        let login = configuration.policy.login(entitlement, target: target.descriptor) ?? target.login
        switch configuration.policy.decide(entitlement, target: target.descriptor, request: policyRequest) {
        case .allow(let scope, let command):
            var details = ["scope": scope, "target": target.name, "login": login, "request": request.auditText]
            if case .exec = request, let command {
                details["command"] = command
                request = .exec(command)
            }
            if let refusal = takeFromSessionBudget(&details) {
                return plan(.refuse(refusal), setup: setup, audit: ("policy.decision", request.kindName, refusal.refusal.auditFields(details)))
            }
            audit("policy.decision", request.kindName, .success, details)
            state = .starting(setup, .proceed(target: target, login: login, start: request, scope: scope))
            return .success
        case .review(let review):
            var details = ["scope": review.scope, "target": target.name, "login": login, "request": request.auditText, "command": review.command,
                           "review_pattern": review.pattern]
            switch ApprovalDesk(context: context).admit(review, target: target.name, login: login,
                                                        requester: ApprovalDesk.requester(agent, taskID: connection.taskID), session: connection.front.sessionID) {
            case .release(let record):
                // Approved for exactly this line, consumed before it runs: it runs once. It is a
                // session like any other: a task's budget counts it (a spent budget refuses it,
                // and the approval stays used: fail closed).
                details["approval_id"] = record.id
                details["approved_by"] = record.decision?.approver ?? ""
                request = .exec(review.command)
                if let refusal = takeFromSessionBudget(&details) {
                    return plan(.refuse(refusal), setup: setup, audit: ("policy.decision", request.kindName, refusal.refusal.auditFields(details)))
                }
                audit("policy.decision", request.kindName, .success, details)
                state = .starting(setup, .proceed(target: target, login: login, start: request, scope: review.scope))
                return .success
            case .answer(let refusal):
                return plan(.refuse(refusal), setup: setup, audit: ("policy.decision", request.kindName, refusal.refusal.auditFields(details)))
            }
        case .deny(let denial):
            let details = denial.refusal.auditFields(["target": target.name, "request": request.auditText, "scopes": scopes.joined(separator: ",")])
            if case .subsystem = request {
                audit("policy.decision", request.kindName, .refused, details)
                return .failure
            }
            return plan(.refuse(refusal(denial)), setup: setup, audit: ("policy.decision", request.kindName, details))
        }
    }

    /// Counts this session against the certificate's `max-sessions@gatehouse` budget, durably,
    /// before anything reaches the target, so no restart or race gives a one-shot certificate a
    /// second session. Returns the refusal when the budget is spent or cannot be counted.
    private func takeFromSessionBudget(_ details: inout [String: String]) -> SessionRefusal? {
        guard let limit = entitlement.task.maxSessions else { return nil }
        switch context.sessionBudgets.take(key: connection.budgetKey, limit: limit, validBefore: agent.certificate.validBefore) {
        case .granted(let used):
            details["task_sessions_used"] = "\(used)/\(limit)"
            return nil
        case .exhausted(let used):
            return SessionRefusal.denied(Refusal(code: "session-budget-spent", rule: "task-max-sessions",
                                                 reason: "this certificate may open \(limit) session\(limit == 1 ? "" : "s") and has opened \(used)"),
                                         advice: "ask for a new certificate")
        case .failed(let problem):
            context.logger.error("session budget unavailable", metadata: ["error": "\(problem)"])
            return SessionRefusal(code: "session-budget-unavailable", rule: "task-max-sessions", reason: "the session budget could not be counted: \(problem)",
                                  message: "gatehouse: this certificate's session budget could not be counted, so the session is refused; try again.\n",
                                  exitStatus: 255)
        }
    }

    /// The reserved target answers only its own commands, to the certificate's own requests.
    private func decideReserved(_ request: SessionStart, setup: SessionSetup) -> RequestReply {
        guard case .exec(let line) = request else {
            let refusal = SessionRefusal(code: "unknown-command", rule: "reserved-target", reason: "the bastion itself runs no shell or subsystem",
                                         message: "gatehouse: \"\(ApprovalDesk.reservedTarget)\" is the bastion itself: it answers only `approval wait ID` and `approval show ID`.\n",
                                         exitStatus: 255)
            return plan(.refuse(refusal), setup: setup, audit: ("session.target", "target \"\(targetName)\"", refusal.refusal.auditFields(["request": request.auditText])))
        }
        switch ApprovalDesk.parse(line) {
        case .failure(let refusal):
            let answer = SessionRefusal(code: refusal.code, rule: refusal.rule, reason: refusal.reason, message: "gatehouse: \(refusal.reason).\n", exitStatus: 255)
            return plan(.refuse(answer), setup: setup, audit: ("session.target", "target \"\(targetName)\"", refusal.auditFields(["request": request.auditText])))
        case .success(let command):
            audit("approval.wait", "approvals", .success, ["request": request.auditText])
            state = .starting(setup, .answerLater(command))
            return .success
        }
    }

    private func refusal(_ denial: PolicyDenial) -> SessionRefusal {
        SessionRefusal(code: denial.code.rawValue, rule: denial.rule, reason: denial.reason, message: denial.message, exitStatus: PolicyDenial.exitStatus)
    }

    private func plan(_ plan: SessionPlan, setup: SessionSetup, audit record: (String, String, [String: String])) -> RequestReply {
        audit(record.0, record.1, .refused, record.2)
        state = .starting(setup, plan)
        return .success
    }

    // MARK: The loop's turn

    /// Starts a decided session, moves its bytes, ends it. Returns whether anything moved.
    func turn(event: ssh_event) -> Bool {
        switch state {
        case .setup, .finished:
            return false
        case .draining(let until):
            // What the agent still sends goes nowhere (no session was started, nothing recorded).
            while ssh_channel_read_nonblocking(channel, connection.scratch, UInt32(ChannelPump.chunk), 0) > 0 {}
            guard ssh_channel_is_closed(channel) != 0 || ssh_channel_is_eof(channel) != 0 || ContinuousClock.now >= until else { return false }
            if ssh_channel_is_closed(channel) == 0 { ssh_channel_close(channel) }
            state = .finished
            return true
        case .starting(let setup, .refuse(let refusal)):
            answer(stderr: refusal.message, exitStatus: refusal.exitStatus, pty: setup.pty != nil, close: false)
            state = .draining(until: .now + Self.answerGrace)
            return true
        case .starting(let setup, .answerLater(let command)):
            let pending = PendingAnswer()
            ApprovalDesk(context: context).run(command, as: ApprovalDesk.requester(agent, taskID: connection.taskID), into: pending, wakeup: connection.front.wakeup)
            state = .answering(pending, pty: setup.pty != nil)
            return true
        case .answering(let pending, let pty):
            guard ssh_channel_is_closed(channel) == 0 else {
                // The agent gave up waiting: the wait is cancelled, answering no one.
                pending.cancel()
                state = .finished
                return true
            }
            guard let ready = pending.ready else { return false }
            if !ready.stdout.isEmpty {
                var bytes = Array((pty ? ready.stdout.replacingOccurrences(of: "\n", with: "\r\n") : ready.stdout).utf8)
                bytes.withUnsafeMutableBytes { _ = ssh_channel_write(channel, $0.baseAddress, UInt32(min($0.count, Int(ssh_channel_window_size(channel))))) }
            }
            // A wait takes no input: closed with its answer, so the agent has it at once.
            answer(stderr: ready.stderr, exitStatus: ready.exitStatus, pty: pty, close: true)
            state = .finished
            return true
        case .starting(let setup, .proceed(let target, let login, let start, let scope)):
            FrontCallbacks.refuseAgentRequests(callbacks)
            state = begin(setup: setup, target: target, login: login, start: start, scope: scope)
            connection.attachTarget(to: event)
            return true
        case .running(let run):
            let (progressed, ending) = run.step(scratch: connection.scratch)
            if let ending {
                end(run, ending)
                return true
            }
            return progressed
        }
    }

    /// Opens the recording, then the target channel; a failure of either answers the agent with
    /// the reason (no recording, no session).
    private func begin(setup: SessionSetup, target: TargetConfiguration, login: String, start: SessionStart, scope: String) -> State {
        let recordsInput = configuration.policy.recordsInput(entitlement, target: target.descriptor)
        let masking = configuration.masking.rules(forScope: scope).map {
            SessionMasking(rules: $0, mode: start.maskingMode(pty: setup.pty != nil), recordsOriginal: configuration.masking.global.record == .raw)
        }
        let recorder: RecordingWriter
        do {
            recorder = try connection.startRecording(channel: number, target: target, login: login, command: start.recordedCommand,
                                                     pty: setup.pty, inputRecorded: recordsInput, masking: masking, session: true)
        } catch {
            audit("session.recording", "target \"\(target.name)\"", .failure,
                  Refusal(code: "recording-unavailable", rule: "recorder", reason: "\(error)").auditFields(["request": start.auditText]))
            connection.front.logger.error("recording could not start; session refused", metadata: ["error": "\(error)"])
            answer(stderr: "gatehouse: the session cannot be recorded (\(error)), so it is refused.\n", exitStatus: 255, pty: setup.pty != nil, close: false)
            return .draining(until: .now + Self.answerGrace)
        }
        let back: ssh_channel
        do {
            let connectionToTarget = try connection.connectedTarget(target)
            back = try connectionToTarget.openSession(pty: setup.pty, environment: setup.environment, agentForwarding: setup.agentForwarding,
                                                      x11: setup.x11, start: start, callbacks: targetCallbacks)
        } catch {
            audit("session.target", "target \"\(target.name)\"", .failure, error.refusal.auditFields(["request": start.auditText]))
            connection.front.logger.warning("target session failed", metadata: ["target": "\(target.name)", "error": "\(error)"])
            _ = try? recorder.marker("target failed: \(error)")
            _ = try? recorder.finish()
            answer(stderr: "gatehouse: \(error).\n", exitStatus: 255, pty: setup.pty != nil, close: false)
            return .draining(until: .now + Self.answerGrace)
        }
        let limits = configuration.policy.applicable(entitlement, to: target.descriptor).scopes
        let certificate = agent.certificate
        let summary = SessionSummary(sessionID: connection.front.sessionID, peer: connection.front.peer, target: target.name, login: login,
                                     keyID: certificate.keyID, serial: certificate.serial, principals: certificate.principals, scopes: scopes,
                                     context: agent.permissions.context, request: start.auditText, terminal: setup.pty?.term, startedAt: Date())
        let run = RunningSession(front: channel, back: back, recorder: recorder, masking: masking, target: target, start: start, scope: scope, pty: setup.pty,
                                 maxDuration: limits.compactMap(\.maxDuration).min(), idleTimeout: limits.compactMap(\.idleTimeout).min(),
                                 summary: summary)
        let metrics = connection.front.context.metrics
        run.pump.onMask = { metrics.masked(rule: $0) }
        run.exitStatus = earlyExitStatus
        run.exitSignal = earlyExitSignal
        relayed = run
        if setup.agentForwarding { connection.agentForwardingGranted = true }
        if setup.x11 != nil { connection.x11Granted = true }
        connection.sessionStarted()
        audit("session.start", "target \"\(target.name)\"", .success, [
            "login": login, "scope": scope, "request": start.auditText, "pty": setup.pty.map { "\($0.term) \($0.columns)x\($0.rows)" } ?? "none",
            "scopes": scopes.joined(separator: ","), "context": agent.permissions.context ?? "", "recording": recorder.path,
            "masking": masking.map { "\($0.mode.rawValue), \($0.rules.ruleNames.count) rules" } ?? "off",
        ])
        connection.front.context.connections.sessionStarted()
        connection.front.context.observer?.sessionStarted(summary)
        return .running(run)
    }

    /// Ends a running session: the recording is finished (its exit and trailer in the file)
    /// before the agent is told the exit status, then the channel is closed.
    private func end(_ run: RunningSession, _ ending: RunningSession.Ending) {
        let recording = run.finishRecording(exitStatus: ending.exitStatus, exitSignal: ending.exitSignal?.signal, marker: ending.clean ? nil : ending.reason)
        if recording == nil, run.recordingError == nil {
            audit("session.recording", "recording \(run.recorder.recordingID)", .failure, ["reason": "the recording could not be finished", "path": run.recorder.path])
        }
        switch ending.kind {
        case .targetEnded:
            if let signal = ending.exitSignal {
                if ssh_channel_is_closed(channel) == 0 {
                    ssh_channel_request_send_exit_signal(channel, signal.signal, signal.core ? 1 : 0, signal.message, signal.language)
                    ssh_channel_send_eof(channel)
                    ssh_channel_close(channel)
                }
            } else {
                answer(stderr: ending.exitStatus == nil ? "gatehouse: \(ending.reason).\n" : nil, exitStatus: ending.exitStatus ?? 255, pty: run.pty != nil)
            }
        case .limit(let message):
            run.hangUpTarget()
            answer(stderr: message, exitStatus: 255, pty: run.pty != nil)
        case .recordingFailed:
            // Fail closed: nothing more crosses but the notice the recording itself holds (written
            // into space reserved ahead), so the agent learns why and its stderr still equals the
            // recorded stderr. Exit status 255; the audit record has the reason too.
            run.pump.deliverWrittenAfterFailure()
            run.hangUpTarget()
            answer(stderr: run.recorder.failureNotice.map { String(decoding: $0, as: UTF8.self) }, exitStatus: 255, pty: false)
        case .agentGone:
            run.hangUpTarget()
        }
        state = .finished
        let outcome = SessionOutcome(exitStatus: ending.exitStatus, exitSignal: ending.exitSignal?.signal, reason: ending.reason,
                                     bytesIn: run.pump.delivered(.stdin), bytesOut: run.pump.delivered(.stdout), bytesErr: run.pump.delivered(.stderr),
                                     duration: Date().timeIntervalSince(run.summary.startedAt))
        connection.front.context.connections.sessionEnded()
        connection.front.context.observer?.sessionEnded(run.summary, outcome: outcome)
        if case .recordingFailed(let reason) = ending.kind {
            audit("session.recording", "target \"\(run.target.name)\"", .failure, Refusal(code: "recording-failed", rule: "recorder", reason: reason).auditFields())
        }
        audit("session.end", "target \"\(run.target.name)\"", ending.clean ? .success : .failure, [
            "reason": ending.reason, "exit_status": ending.exitStatus.map { String($0) } ?? "", "exit_signal": ending.exitSignal?.signal ?? "",
            "bytes_stdin": String(outcome.bytesIn), "bytes_stdout": String(outcome.bytesOut), "bytes_stderr": String(outcome.bytesErr),
            "duration_ms": String(Int(outcome.duration * 1000)),
            "recording": recording?.path ?? run.recorder.path, "recording_hash": recording?.finalHash ?? "", "input_recorded": String(run.recorder.header.inputRecorded),
            "masks": MaskCounts.text(run.pump.maskCounts),
        ])
        connection.front.logger.info("session ended", metadata: ["reason": "\(ending.reason)", "channel": "\(number)"])
    }

    /// The connection is ending: a running session is hung up and recorded as cut short.
    func abort(reason: String) {
        guard case .running(let run) = state else {
            state = .finished
            return
        }
        end(run, RunningSession.Ending(kind: reason == "client disconnected" ? .agentGone : .limit(message: "gatehouse: \(reason).\n"),
                                       reason: reason, clean: false))
    }

    /// Ends the agent's channel: an optional message on stderr, the exit status, EOF and close.
    private func answer(stderr: String?, exitStatus: Int32, pty: Bool, close: Bool = true) {
        guard ssh_channel_is_closed(channel) == 0 else { return }
        if let stderr, !stderr.isEmpty {
            var bytes = Array((pty ? stderr.replacingOccurrences(of: "\n", with: "\r\n") : stderr).utf8)
            bytes.withUnsafeMutableBytes { _ = ssh_channel_write_stderr(channel, $0.baseAddress, UInt32(min($0.count, Int(ssh_channel_window_size(channel))))) }
        }
        ssh_channel_request_send_exit_status(channel, exitStatus)
        ssh_channel_send_eof(channel)
        if close { ssh_channel_close(channel) }
    }

    /// Frees the channel and its target twin, with their callbacks removed first so libssh can
    /// never call into a freed object. Called by the connection, outside libssh's callbacks.
    func release() {
        ssh_remove_channel_callbacks(channel, callbacks)
        if ssh_channel_is_closed(channel) == 0 { ssh_channel_close(channel) }
        ssh_channel_free(channel)
        if case .running(let run) = state { run.hangUpTarget() }
        relayed?.releaseBack(callbacks: targetCallbacks)
        relayed = nil
        state = .finished
        callbacks.deallocate()
        targetCallbacks.deallocate()
    }

    /// The session this channel ran, kept after it ended until its target channel is freed.
    private var relayed: RunningSession?

    // MARK: Target channel callbacks

    /// The target's exit can arrive while the session is still being opened (a command as short
    /// as `true` exits during the blocking exec request): it is kept here until the relay exists.
    private var earlyExitStatus: Int32?
    private var earlyExitSignal: (signal: String, core: Bool, message: String, language: String)?

    func targetExited(status: Int32) {
        if case .running(let run) = state { run.exitStatus = status } else { earlyExitStatus = status }
    }

    func targetKilled(signal: String, core: Bool, message: String, language: String) {
        if case .running(let run) = state { run.exitSignal = (signal, core, message, language) } else { earlyExitSignal = (signal, core, message, language) }
    }

    func agentForwardingRequested() {
        connection.front.unclaimedAgentRequests = max(0, connection.front.unclaimedAgentRequests - 1)
        _ = handle(.agentForwarding)
    }
}

extension SessionStart {
    /// How a masked span is shown in this kind of session: a same-width run in a terminal, a
    /// same-length run in a file transfer (sftp, scp), whose framing counts bytes, and a marker
    /// naming the rule in an exec's byte stream.
    func maskingMode(pty: Bool) -> MaskingMode {
        if pty { return .sameWidth }
        switch self {
        case .subsystem: return .sameLength
        case .exec(let command): return ChannelRequest.exec(command).right == .scp ? .sameLength : .marker
        case .shell: return .marker
        }
    }

    var kindName: String {
        switch self {
        case .exec: return "exec"
        case .shell: return "shell"
        case .subsystem(let s): return "subsystem \(s)"
        }
    }

    /// The command as the recording's header names it.
    var recordedCommand: String? {
        switch self {
        case .exec(let c): return c
        case .shell: return nil
        case .subsystem(let name): return "subsystem \(name)"
        }
    }
}
