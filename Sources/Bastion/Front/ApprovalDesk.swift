import Approvals
import Foundation
import Policy
import Refusals
import SSHCertificates
import Synchronization

/// The bastion's side of approvals. A command a scope's `review:` pattern matched is never run
/// and never refused outright: it is answered at once — `pending` (exit 75 and the
/// `gatehouse-approval:` line) until a person decides, released exactly once after approval, or
/// refused with its own code after a denial, an expiry or a use. An agent waits with what it
/// already has, its certificate, on the reserved target: `ssh gatehouse@BASTION -- approval wait ID`.
struct ApprovalDesk {
    /// The SSH user name that reaches the bastion itself rather than a target.
    static let reservedTarget = "gatehouse"

    let context: ServerContext

    enum Outcome {
        /// Approved for exactly this command: run it (the approval is already consumed).
        case release(ApprovalRecord)
        /// Pending, refused, or the store failed: answered without reaching the target.
        case answer(SessionRefusal)
    }

    /// Who asks: the certificate as verified, with its task (see `ApprovalRequestKey`).
    static func requester(_ agent: ValidatedCertificate, taskID: String?) -> ApprovalRequester {
        ApprovalRequester(keyID: agent.certificate.keyID, serial: agent.certificate.serial, taskID: taskID,
                          promptSHA256: CertificateContext.field("prompt_sha256", of: agent.permissions.context))
    }

    /// A person reads every request: its command is kept short, and one identity may keep only
    /// so many waiting at once (each is a record, a notification and a person's time).
    static let maximumCommandBytes = 4096
    static let maximumPendingPerIdentity = 16

    func admit(_ review: ReviewRequirement, target: String, login: String, requester: ApprovalRequester, session: String) -> Outcome {
        guard review.command.utf8.count <= Self.maximumCommandBytes else {
            return .answer(SessionRefusal.denied(Refusal(code: "approval-command-too-long", rule: "review",
                                               reason: "a command that needs a person's approval may be at most \(Self.maximumCommandBytes) bytes")))
        }
        let key = ApprovalRequestKey(command: review.command, target: target, login: login, requester: requester)
        if let records = try? context.approvalStore.list() {
            let now = context.approvalStore.now()
            let mine = records.filter { $0.key.identity == key.identity && $0.status(at: now) == .pending }
            if mine.count >= Self.maximumPendingPerIdentity, !mine.contains(where: { $0.key == key }) {
                return .answer(SessionRefusal.denied(Refusal(code: "approval-too-many-pending", rule: "review",
                                                   reason: "\(mine.count) requests of this identity already wait for a person's decision; wait for them first")))
            }
        }
        let rule = ApprovalRule(scope: review.scope, pattern: review.pattern, approvers: review.approvers, approvalTTL: TimeInterval(review.approvalTTL))
        let admission: ApprovalGate.Admission
        do { admission = try context.approvals.admit(key, requester: requester, rule: rule, session: session) } catch {
            // The request could not be written (or audited): nothing runs, and the agent is told.
            context.logger.error("approval store unavailable", metadata: ["error": "\(error)"])
            return .answer(SessionRefusal(code: "approval-unavailable", rule: "review", reason: "the approval request could not be recorded: \(error)",
                                          message: "gatehouse: this command needs a person's approval, and the request could not be recorded; try again.\n",
                                          exitStatus: 255))
        }
        let now = context.approvalStore.now()
        switch admission {
        case .release(let record):
            return .release(record)
        case .pending(let record, _):
            let answer = ApprovalAnswer(record, now: now)
            return .answer(SessionRefusal(code: "approval-pending", rule: "review",
                                          reason: "\"\(review.command.prefix(200))\" needs a person's approval (request \(record.id), scope \(review.scope), pattern `\(review.pattern)`)",
                                          message: answer.message(waitCommand: waitCommand), exitStatus: ApprovalAnswer.exitStatus))
        case .refused(let refusal, let record):
            let answer = ApprovalAnswer(record, now: now)
            var denied = SessionRefusal.denied(refusal.refusal)
            denied.message += answer.message(waitCommand: waitCommand)
            return .answer(denied)
        }
    }

    /// How this deployment waits, as the agent is told in every pending answer.
    var waitCommand: String {
        guard let address = context.configuration.listen.first else { return "ssh \(Self.reservedTarget)@BASTION -- approval wait" }
        let host = address.host == "0.0.0.0" || address.host == "::" ? "BASTION" : address.host
        return "ssh -p \(address.port) \(Self.reservedTarget)@\(host) -- approval wait"
    }

    // MARK: The reserved target's commands

    /// `approval wait ID [--timeout SECONDS]` and `approval show ID`: the only commands the
    /// reserved target knows. Parsed strictly, with the same splitter as every exec.
    enum Command: Equatable {
        case wait(id: String, timeout: TimeInterval?)
        case show(id: String)
    }

    static func parse(_ line: String) -> Result<Command, Refusal> {
        let usage = "the bastion itself answers only `approval wait ID [--timeout SECONDS]` and `approval show ID`"
        guard case .success(let words) = ShellWords.split(line), words.count >= 3, words[0] == "approval" else {
            return .failure(Refusal(code: "unknown-command", rule: "reserved-target", reason: usage))
        }
        let id = words[2]
        guard id.utf8.count <= 128, id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            return .failure(Refusal(code: "invalid-request", rule: "reserved-target", reason: "\"\(id.prefix(40))\" is not an approval id"))
        }
        switch (words[1], Array(words.dropFirst(3))) {
        case ("show", []): return .success(.show(id: id))
        case ("wait", []): return .success(.wait(id: id, timeout: nil))
        case ("wait", let rest) where rest.count == 2 && rest[0] == "--timeout":
            guard let seconds = Int(rest[1]), seconds >= 0 else {
                return .failure(Refusal(code: "invalid-request", rule: "reserved-target", reason: "--timeout takes whole seconds (at most \(Int(ApprovalWaiter.maximumTimeout)))"))
            }
            return .success(.wait(id: id, timeout: TimeInterval(seconds)))
        default:
            return .failure(Refusal(code: "unknown-command", rule: "reserved-target", reason: usage))
        }
    }

    /// Runs a wait or a show off the connection's thread; `answer` is filled and the
    /// connection woken when it is done. Only the requester's own requests are found.
    func run(_ command: Command, as requester: ApprovalRequester, into answer: PendingAnswer, wakeup: Wakeup) {
        let waiter = ApprovalWaiter(store: context.approvalStore)
        answer.task = Task.detached {
            do {
                let timeout: TimeInterval?
                let id: String
                switch command {
                case .wait(let waited, let seconds): (id, timeout) = (waited, seconds)
                case .show(let shown): (id, timeout) = (shown, 0)
                }
                answer.fill(stdout: try await waiter.wait(for: id, as: requester, timeout: timeout).json + "\n", stderr: "", exitStatus: 0)
            } catch let refusal as ApprovalRefusal {
                answer.fill(stdout: "", stderr: "gatehouse: \(refusal.refusal.reason).\ngatehouse-denial: \(refusal.refusal.json(extra: [("exit_status", "77")]))\n",
                            exitStatus: PolicyDenial.exitStatus)
            } catch {
                answer.fill(stdout: "", stderr: "gatehouse: the approval store could not be read: \(error).\n", exitStatus: 255)
            }
            wakeup.signal()
        }
    }
}

/// An answer computed off the connection's thread (an approval wait), handed back to it.
final class PendingAnswer: Sendable {
    struct Answer: Sendable {
        var stdout: String
        var stderr: String
        var exitStatus: Int32
    }

    private let value = Mutex<Answer?>(nil)
    private let running = Mutex<Task<Void, Never>?>(nil)

    /// The wait computing the answer, cancelled if the agent leaves first.
    var task: Task<Void, Never>? {
        get { running.withLock { $0 } }
        set { running.withLock { $0 = newValue } }
    }

    func cancel() { task?.cancel() }

    func fill(stdout: String, stderr: String, exitStatus: Int32) { value.withLock { $0 = Answer(stdout: stdout, stderr: stderr, exitStatus: exitStatus) } }
    var ready: Answer? { value.withLock { $0 } }
}
