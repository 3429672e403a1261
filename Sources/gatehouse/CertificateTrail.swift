import ArgumentParser
import Audit
import Foundation
import SSHCertificates

/// Everything the audit log holds about one certificate or one task: its issuance (who asked,
/// the task, the reason, the prompt), then the logins, decisions and sessions that used it.
enum CertificateTrail {
    /// The issuance record of the certificate with this serial (and key id, since serials of
    /// certificates minted elsewhere may repeat).
    static func issuance(of serial: UInt64, keyID: String?, in records: [AuditRecord]) -> AuditRecord? {
        records.last { r in
            r.event.action == "cert.issue" && r.event.outcome == .success && r.event.details["serial"] == String(serial)
                && (keyID == nil || r.event.details["key_id"] == keyID)
        }
    }

    /// Who asked, for which task, why, narrowed how, and the prompt — as the issuer recorded it.
    static func request(_ issued: AuditRecord) -> [(String, String)] {
        let d = issued.event.details
        var lines: [(String, String)] = [("asked by", issued.event.actor), ("issued", issued.time)]
        if let task = CertificateContext.field("task_id", of: d["context"]) { lines.append(("task", task)) }
        if let reason = CertificateContext.field("reason", of: d["context"]) { lines.append(("reason", reason)) }
        if let targets = d["task_targets"] { lines.append(("task targets", targets)) }
        if let commands = d["task_commands"] { lines.append(("task commands", commands)) }
        if let budget = d["task_max_sessions"] { lines.append(("task sessions", budget)) }
        if let prompt = d["prompt"] {
            lines.append(("prompt", prompt + (d["prompt_truncated"].map { "\n[truncated: \($0)]" } ?? "")))
        } else if let hash = CertificateContext.field("prompt_sha256", of: d["context"]) {
            lines.append(("prompt", "(text not recorded; sha256 \(hash))"))
        }
        return lines
    }

    /// `key  value`, continuation lines of a multi-line value indented under the value.
    static func field(_ key: String, _ value: String, width: Int) -> String {
        let indent = String(repeating: " ", count: width + 2)
        let body = TerminalText.safe(value).split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\n" + indent)
        return key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + body
    }

    /// One audit record on one line; long values (a prompt) are cut so the trail stays readable.
    static func line(_ r: AuditRecord) -> String {
        let details = r.event.details.sorted { $0.key < $1.key }.map { key, value -> String in
            let flat = TerminalText.safe(value, keepNewlines: false)
            return "\(key)=\(flat.count > 160 ? flat.prefix(160) + "…" : flat)"
        }
        return "  #\(r.seq) \(r.time) \(r.event.action) \(r.event.outcome.rawValue) \(r.event.object) \(details.joined(separator: " "))"
    }

    /// Whether the record belongs to the certificate (`serial`) or the task (`task`).
    static func concerns(_ r: AuditRecord, serial: UInt64?, task: String?) -> Bool {
        let d = r.event.details
        if let serial, d["serial"] == String(serial) || d["cert_serial"] == String(serial) { return true }
        if let task, d["task_id"] == task || CertificateContext.taskID(d["context"]) == task { return true }
        return false
    }
}

struct AuditShow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print the audit trail of one certificate or one task: issued (with its prompt), logins, decisions, sessions.")
    @OptionGroup var store: StateOptions
    @Option(help: "Audit log path (default: STATE/audit.log).") var log: String?
    @Option(help: "The certificate's serial.") var serial: UInt64?
    @Option(help: "The task id: every certificate issued for it and everything they did.") var task: String?

    func validate() throws {
        guard serial != nil || task != nil else { throw ValidationError("give --serial or --task") }
    }

    func run() throws {
        let path = log ?? "\(store.state)/audit.log"
        let records: [AuditRecord]
        let verification: AuditVerification
        do {
            verification = try AuditLog.verify(path: path)
            records = try AuditLog.records(path: path)
        } catch { throw CLIError("\(error)") }
        let trail = records.filter { CertificateTrail.concerns($0, serial: serial, task: task) }
        guard !trail.isEmpty else { throw CLIError("no audit record of \(serial.map { "serial \($0)" } ?? "task \"\(task!)\"") in \(path)") }
        for issued in trail where issued.event.action == "cert.issue" && issued.event.outcome == .success {
            let lines = [("serial", issued.event.details["serial"] ?? "?")] + CertificateTrail.request(issued)
            let width = lines.map(\.0.count).max() ?? 0
            for (key, value) in lines { print(CertificateTrail.field(key, value, width: width)) }
            print("")
        }
        print("audit records (\(trail.count)):")
        for r in trail { print(CertificateTrail.line(r)) }
        print("\n\(verification)")
        if case .broken = verification { throw ExitCode(1) }
    }
}
