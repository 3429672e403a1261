import Approvals
import ArgumentParser
import Audit
import Foundation
import StateStore
import JSONWriting

/// `gatehouse approvals`: an operator's view of the approval requests in a state directory,
/// and the decisions. It opens the state directory's store directly (the running server sees
/// the change within its poll interval) and audits into the same `audit.log` as the server.
struct ApprovalsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "approvals", abstract: "List, show, approve and deny approval requests.",
                                                    subcommands: [ApprovalsList.self, ApprovalsShow.self, ApprovalsApprove.self, ApprovalsDeny.self])
}

extension StateOptions {
    /// The state directory's approval store (`STATE/approvals/`), auditing into the chain of the
    /// store (`STATE/audit.log`, or the database's with `--config` on a PostgreSQL store).
    func openApprovals() throws -> any ApprovalStore {
        do {
            if let config, case .postgres(let database) = try StoreConfiguration.load(file: config) {
                // The replicas' requests: a decision here wakes the agent on whichever replica it waits.
                let audit = try auditSink()
                return try PostgresApprovalStore(configuration: database, audit: { try audit.append(contentsOf: $0) })
            }
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            let audit = try auditSink()
            return try FileApprovalStore(stateDirectory: state, audit: { try audit.append(contentsOf: $0) })
        } catch { throw CLIError("\(error)") }
    }
}

struct ApprovalsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List approval requests, oldest first.")
    @OptionGroup var store: StateOptions
    @Option(help: "Only requests in this status: pending, approved, denied, expired, consumed.") var status: String?
    @Flag(help: "One JSON object per line instead of a table.") var json = false

    func run() throws {
        let approvals = try store.openApprovals()
        if let status, ApprovalStatus(rawValue: status) == nil {
            throw CLIError("--status \"\(status)\" is not one of \(ApprovalStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let now = approvals.now()
        let records = try approvals.list().filter { status == nil || $0.status(at: now).rawValue == status }
        if json {
            for record in records { print(record.json) }
            return
        }
        printTable(["ID", "REQUESTED", "STATUS", "REQUESTER", "TASK", "TARGET", "COMMAND"], records.map {
            [$0.id, ApprovalTime.iso($0.requestedAt), $0.status(at: now).rawValue, TerminalText.safe($0.requester.keyID, keepNewlines: false),
             TerminalText.safe($0.requester.taskID ?? "-", keepNewlines: false), "\($0.key.login)@\($0.key.target)", TerminalText.safe($0.key.command, keepNewlines: false)]
        })
    }
}

struct ApprovalsShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one request: who asked, for what, under which rule, and its decision.")
    @OptionGroup var store: StateOptions
    @Argument(help: "The approval id (apr-…).") var id: String

    func run() throws {
        let approvals = try store.openApprovals()
        guard let r = try approvals.get(id) else { throw CLIError("no approval request \(id) in \(store.state)") }
        let now = approvals.now()
        var lines: [(String, String)] = [
            ("approval", r.id), ("status", r.status(at: now).rawValue),
            ("requester", "key id \"\(r.requester.keyID)\", serial \(r.requester.serial)"),
            ("task", r.requester.taskID ?? "-"), ("prompt sha256", r.requester.promptSHA256 ?? "-"),
            ("target", r.key.target), ("login", r.key.login),
            // JSON-quoted: every byte shows, control characters included.
            ("command", JSONWriter.quoted(r.key.command)), ("command sha256", r.key.commandSHA256),
            ("scope rule", "scope \(r.rule.scope), review pattern \(JSONWriter.quoted(r.rule.pattern))"),
            ("approvers", r.rule.approvers.isEmpty ? "anyone but the requester" : r.rule.approvers.joined(separator: ", ")),
            ("approval ttl", "\(Int(r.rule.approvalTTL)) s"), ("requested", ApprovalTime.iso(r.requestedAt)), ("expires", ApprovalTime.iso(r.expiresAt)),
        ]
        if let d = r.decision {
            let groups = d.approverGroups.isEmpty ? "" : " (groups \(d.approverGroups.joined(separator: ",")))"
            lines.append(("decision", "\(d.approved ? "approved" : "denied") by \(d.approver)\(groups) at \(ApprovalTime.iso(d.at))"))
            lines.append(("reason", d.reason.isEmpty ? "-" : d.reason))
        } else {
            lines.append(("decision", "-"))
        }
        if let at = r.consumedAt { lines.append(("released", "\(ApprovalTime.iso(at))\(r.consumedBy.map { " to session \($0)" } ?? "")")) }
        // Who asked and why, as the issuer recorded it: the prompt, when it was sent.
        let auditPath = "\(store.state)/audit.log"
        if let records = try? AuditLog.records(path: auditPath),
           let issued = CertificateTrail.issuance(of: r.requester.serial, keyID: r.requester.keyID, in: records) {
            lines += CertificateTrail.request(issued).filter { $0.0 != "task" }
        }
        let width = lines.map(\.0.count).max() ?? 0
        for (key, value) in lines { print(CertificateTrail.field(key, value, width: width)) }
    }
}

/// Who decides from this shell, shared by approve and deny.
struct ApproverOptions: ParsableArguments {
    @Option(help: "The approver's identity (default: local:$USER).") var approver: String?
    @Option(name: .customLong("group"), help: "A group the approver acts as, matched against the scope's approvers (asserted by you, audited).")
    var groups: [String] = []

    var identity: ApproverIdentity {
        let user = ProcessInfo.processInfo.environment["USER"] ?? "uid-\(getuid())"
        return ApproverIdentity(id: approver ?? "local:\(user)", groups: groups)
    }

    /// Decides, printing the outcome; a refusal is printed with its code and exits 77.
    func decide(_ id: String, approve: Bool, reason: String, state: StateOptions) throws {
        let approvals = try state.openApprovals()
        do {
            let record = try approvals.decide(id, approve: approve, by: identity, reason: reason)
            print(approve ? "Approved \(record.id): the agent may resend the identical command once before \(ApprovalTime.iso(record.expiresAt))."
                          : "Denied \(record.id); the waiting agent is told: \(reason)")
        } catch let refusal as ApprovalRefusal {
            FileHandle.standardError.write(Data("gatehouse: refused: \(refusal.description) (code \(refusal.code), rule \(refusal.rule))\n".utf8))
            throw ExitCode(77)
        }
    }
}

struct ApprovalsApprove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "approve", abstract: "Approve a pending request: its exact command may run once.")
    @OptionGroup var store: StateOptions
    @OptionGroup var approver: ApproverOptions
    @Option(help: "Why (recorded in the audit log).") var reason: String = ""
    @Argument(help: "The approval id (apr-…).") var id: String

    func run() throws { try approver.decide(id, approve: true, reason: reason, state: store) }
}

struct ApprovalsDeny: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deny", abstract: "Deny a pending request, with a reason the agent can act on.")
    @OptionGroup var store: StateOptions
    @OptionGroup var approver: ApproverOptions
    @Option(help: "Why: told to the waiting agent and recorded.") var reason: String
    @Argument(help: "The approval id (apr-…).") var id: String

    func run() throws { try approver.decide(id, approve: false, reason: reason, state: store) }
}
