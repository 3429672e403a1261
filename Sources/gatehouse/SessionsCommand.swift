import ArgumentParser
import Audit
import Bastion
import Foundation
import Recording
import RecordingShipping
import SSHCertificates

/// `--recordings DIR` and `--config F`, shared by sessions, replay, export and verify.
struct RecordingsOptions: ParsableArguments {
    @Option(help: "The recordings directory.") var recordings: String = "./var/gatehouse/recordings"
    @Option(help: "Configuration file: with `recordings_store: {kind: s3}` recordings not found locally are read from the bucket (listed from the `store:` database, or the bucket itself).")
    var config: String?

    /// The --config file's state directory when it holds a CA store (the recording keys to check
    /// recordings against), or nil.
    var configState: String? {
        guard let directory = config.flatMap({ try? BastionConfiguration.load(file: $0).stateDirectory }),
              FileManager.default.fileExists(atPath: "\(directory)/ca/recording/state.json") else { return nil }
        return directory
    }

    func index() throws -> SessionIndex {
        do { return try SessionIndex.load(directory: recordings) } catch { throw CLIError("\(error)") }
    }

    /// A recording by id ("<session>-ch<n>"), by session id, or by path.
    func resolve(_ id: String) throws -> String {
        if id.contains("/"), FileManager.default.fileExists(atPath: id) { return id }
        for candidate in [id, id + "-ch0"] {
            let path = RecordingFiles.path(directory: recordings, recordingID: candidate)
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        guard let config else {
            if let summary = try index().find(id) { return RecordingFiles.path(directory: recordings, recordingID: summary.recordingID) }
            throw CLIError("no recording \"\(id)\" in \(recordings) (try `gatehouse sessions list --recordings \(recordings)`)")
        }
        if let summary = try? index().find(id), FileManager.default.fileExists(atPath: RecordingFiles.path(directory: recordings, recordingID: summary.recordingID)) {
            return RecordingFiles.path(directory: recordings, recordingID: summary.recordingID)
        }
        if let path = try RecordingsArchiveAccess.fetch(id, configFile: config, recordingsDirectory: recordings) { return path }
        throw CLIError("no recording \"\(id)\" in \(recordings) or the recordings store of \(config) (try `gatehouse sessions list --config \(config)`)")
    }

    /// With `--config` naming an S3 recordings store: every recording its index knows; nil otherwise.
    func archived() throws -> [ArchivedRecording]? {
        guard let config else { return nil }
        return try RecordingsArchiveAccess.withArchive(config) { try await $0.list() }
    }
}

struct SessionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sessions", abstract: "List and show recorded sessions.",
                                                    subcommands: [SessionsList.self, SessionsShow.self])
}

struct SessionsList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List recorded sessions, oldest first.")
    @OptionGroup var store: RecordingsOptions
    @Option(help: "Only sessions of this subject.") var subject: String?
    @Option(help: "Only sessions to this target.") var target: String?
    @Option(help: "Only sessions granted this scope.") var scope: String?
    @Option(help: "Started at or after (ISO 8601, or Unix seconds).") var since: String?
    @Option(help: "Started at or before (ISO 8601, or Unix seconds).") var until: String?
    @Option(name: .customLong("exit-status"), help: "Only sessions that exited with this status.") var exitStatus: UInt32?
    @Option(help: "Only sessions whose command contains this text (\"shell\" for interactive ones).") var command: String?
    @Option(help: "Only sessions in this state: normal, crash, recorder-failure, live, unfinished.") var state: String?
    @Option(help: "Only sessions of this task (the task_id its certificate was issued for).") var task: String?
    @Option(help: "Only sessions of the certificate with this serial.") var serial: UInt64?
    @Flag(help: "One JSON object per line instead of a table.") var json = false

    func run() throws {
        let filter = SessionFilter(subject: subject, target: target, scope: scope, sinceMicros: try since.map(parseTime),
                                   untilMicros: try until.map(parseTime), exitStatus: exitStatus, commandContains: command, state: state,
                                   task: task, serial: serial)
        if let archived = try store.archived() {
            try listArchived(archived.filter { filter.matches($0.summary) })
            return
        }
        let index = try store.index()
        let sessions = index.list(filter)
        if json {
            let encoder = RecordingSummary.encoder()
            for summary in sessions { print(String(decoding: try encoder.encode(summary), as: UTF8.self)) }
            return
        }
        let rows = sessions.map { s -> [String] in
            [s.recordingID, formatTime(s.startTimeMicros), formatDuration(s.durationMicros), s.subject, s.target,
             s.exitStatus.map(String.init) ?? s.exitSignal.map { "SIG\($0)" } ?? "-", s.state,
             "\(s.totals.stdout + s.totals.stderr)", s.commandDescription]
        }
        printTable(["ID", "START", "DURATION", "SUBJECT", "TARGET", "EXIT", "STATE", "OUT BYTES", "COMMAND"], rows)
        if !index.skippedLines.isEmpty {
            FileHandle.standardError.write(Data("warning: \(SessionIndex.fileName) lines \(index.skippedLines) are damaged and were skipped\n".utf8))
        }
    }
}

extension SessionsList {
    /// The archive's listing: the same columns plus where each recording is (local, shipping,
    /// shipped) and, from the database, its replica; with --json the summary line plus
    /// `location`, `replica_id` and `object_key`.
    func listArchived(_ recordings: [ArchivedRecording]) throws {
        if json {
            let encoder = RecordingSummary.encoder()
            for r in recordings {
                guard var object = try JSONSerialization.jsonObject(with: try encoder.encode(r.summary)) as? [String: Any] else { continue }
                object["location"] = r.location
                object["replica_id"] = r.replicaID ?? NSNull()
                object["object_key"] = r.objectKey ?? NSNull()
                let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: line, as: UTF8.self))
            }
            return
        }
        let rows = recordings.map { r -> [String] in
            let s = r.summary
            return [s.recordingID, formatTime(s.startTimeMicros), formatDuration(s.durationMicros), s.subject, s.target,
                    s.exitStatus.map(String.init) ?? s.exitSignal.map { "SIG\($0)" } ?? "-", s.state,
                    "\(s.totals.stdout + s.totals.stderr)", r.location + (r.replicaID.map { "@\($0)" } ?? ""), s.commandDescription]
        }
        printTable(["ID", "START", "DURATION", "SUBJECT", "TARGET", "EXIT", "STATE", "OUT BYTES", "WHERE", "COMMAND"], rows)
    }
}

struct SessionsShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one session: header, outcome and its audit events.")
    @OptionGroup var store: RecordingsOptions
    @Option(help: "The state directory holding the audit log.") var state: String = "./var/gatehouse"
    @Argument(help: "Recording id (<session>-ch<n>) or session id.") var id: String

    func run() throws {
        let path = try store.resolve(id)
        let reader: RecordingReader
        do { reader = try RecordingReader(path: path, allowTornTail: true) } catch { throw CLIError("\(error)") }
        let h = reader.header
        let summary = try store.index().find(h.recordingID)
        var lines: [(String, String)] = [
            ("recording", path), ("session", "\(h.sessionID) channel \(h.channel)"), ("subject", h.subject),
            ("certificate", "key id \"\(h.certificateKeyID)\", serial \(h.certificateSerial)"),
            ("scopes", h.scopes.joined(separator: ",")), ("context", h.context), ("source", h.sourceAddress),
            ("target", "\(h.login)@\(h.target)"), ("command", h.commandDescription),
            ("terminal", "\(h.terminalType ?? "none") \(h.columns)x\(h.rows)"), ("started", formatTime(h.startTimeMicros)),
            ("input recorded", h.inputRecorded ? "yes" : "no"), ("recording key", reader.recordingKey.fingerprint),
            ("masking", h.masking.map { "\($0.view); the recording keeps \($0.keepsOriginal ? "the target's bytes and the masks (replay shows the agent's view; --unmasked the original)" : "only what the agent saw")" } ?? "off"),
        ]
        if let s = summary {
            lines += [("state", s.state), ("duration", formatDuration(s.durationMicros)),
                      ("exit", s.exitStatus.map { "status \($0)" } ?? s.exitSignal.map { "signal \($0)" } ?? "-"),
                      ("bytes", "stdin \(s.totals.stdin), stdout \(s.totals.stdout), stderr \(s.totals.stderr)"),
                      ("records", "\(s.recordCount)"), ("final hash", s.finalHash.isEmpty ? "-" : s.finalHash)]
        }
        let auditPath = state + "/audit.log"
        let records = FileManager.default.fileExists(atPath: auditPath) ? (try? AuditLog.records(path: auditPath)) ?? [] : []
        // Who asked and why: the issuance record of this session's certificate.
        if let issued = CertificateTrail.issuance(of: h.certificateSerial, keyID: h.certificateKeyID, in: records) {
            lines += CertificateTrail.request(issued)
        } else if let task = CertificateContext.taskID(h.context) {
            lines.append(("task", task))
        }
        let width = lines.map(\.0.count).max() ?? 0
        for (key, value) in lines { print(CertificateTrail.field(key, value, width: width)) }
        guard FileManager.default.fileExists(atPath: auditPath) else { print("\naudit: no audit log at \(auditPath)"); return }
        let related = records.filter { r in
            [h.sessionID, h.recordingID].contains { r.event.object == $0 || r.event.details.values.contains($0) }
        }
        print("\naudit events (\(related.count)):")
        for r in related { print(CertificateTrail.line(r)) }
    }
}

/// "2026-11-22T17:00:00Z" or Unix seconds → µs since the epoch.
func parseTime(_ text: String) throws -> UInt64 {
    if let seconds = Double(text), seconds >= 0 { return UInt64(seconds * 1_000_000) }
    let formatter = ISO8601DateFormatter()
    for options: ISO8601DateFormatter.Options in [[.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds], [.withFullDate]] {
        formatter.formatOptions = options
        if let date = formatter.date(from: text) { return UInt64(max(0, date.timeIntervalSince1970) * 1_000_000) }
    }
    throw CLIError("\"\(text)\" is not a time: use ISO 8601 (2026-11-22T17:00:00Z, 2026-11-22) or Unix seconds")
}

/// One formatter for every row: creating one per call dominated listing 10,000 sessions.
nonisolated(unsafe) private let isoFormatter = ISO8601DateFormatter()

func formatTime(_ micros: UInt64) -> String {
    isoFormatter.string(from: Date(timeIntervalSince1970: Double(micros / 1_000_000)))
}

func formatDuration(_ micros: UInt64) -> String {
    let seconds = micros / 1_000_000
    return seconds >= 3600 ? String(format: "%dh%02dm%02ds", seconds / 3600, seconds / 60 % 60, seconds % 60)
        : String(format: "%dm%02d.%01ds", seconds / 60, seconds % 60, micros / 100_000 % 10)
}

/// Left-aligned columns, written in one piece (a print per row is slow for 10,000 rows).
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    var text = ""
    for row in [header] + rows {
        for (i, cell) in row.enumerated() {
            text += cell
            if i < row.count - 1 { text += String(repeating: " ", count: widths[i] - cell.count + 2) }
        }
        text += "\n"
    }
    FileHandle.standardOutput.write(Data(text.utf8))
}
