import Foundation
import SSHCertificates

/// What `sessions list` shows without opening the recording: one line of the session index.
public struct RecordingSummary: Sendable, Equatable, Codable {
    public var recordingID: String
    public var sessionID: String
    public var channel: Int
    public var subject: String
    public var target: String
    public var login: String
    public var command: String?
    public var scopes: [String]
    public var context: String
    public var sourceAddress: String
    public var certificateKeyID: String
    public var certificateSerial: UInt64
    public var inputRecorded: Bool
    public var startTimeMicros: UInt64
    public var durationMicros: UInt64
    /// "normal", "crash", "recorder-failure"; for recordings without an end: "live" (a writer
    /// holds the file) or "unfinished" (needs recovery).
    public var state: String
    public var exitStatus: UInt32?
    public var exitSignal: String?
    public var totals: StreamTotals
    public var recordCount: UInt64
    /// Hex SHA-256 chain hash through the last record.
    public var finalHash: String
    public var fileSize: UInt64

    public var commandDescription: String { command ?? "shell" }

    /// `task_id` of the certificate's context (a JSON object the issuer wrote), if any.
    public var taskID: String? { CertificateContext.taskID(context) }

    /// snake_case on disk and in `sessions list --json`, like every JSON Gatehouse writes.
    enum CodingKeys: String, CodingKey {
        case recordingID = "recording_id", sessionID = "session_id", channel, subject, target, login, command, scopes, context
        case sourceAddress = "source_address", certificateKeyID = "certificate_key_id", certificateSerial = "certificate_serial"
        case inputRecorded = "input_recorded", startTimeMicros = "start_time_micros", durationMicros = "duration_micros"
        case state, exitStatus = "exit_status", exitSignal = "exit_signal", totals, recordCount = "record_count"
        case finalHash = "final_hash", fileSize = "file_size"
    }

    /// The names index lines had before they were snake_case (camelCase, as the Swift
    /// properties): read so an index written by an older Gatehouse still loads.
    static let legacyKeys: [String: String] = [
        "recordingID": "recording_id", "sessionID": "session_id", "sourceAddress": "source_address",
        "certificateKeyID": "certificate_key_id", "certificateSerial": "certificate_serial", "inputRecorded": "input_recorded",
        "startTimeMicros": "start_time_micros", "durationMicros": "duration_micros", "exitStatus": "exit_status",
        "exitSignal": "exit_signal", "recordCount": "record_count", "finalHash": "final_hash", "fileSize": "file_size",
    ]

    /// A decoder for index lines of either vintage.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .custom { path in
            let key = path.last!
            guard key.intValue == nil, let renamed = legacyKeys[key.stringValue] else { return key }
            return CodingKeys(stringValue: renamed) ?? key
        }
        return decoder
    }

    /// The encoder for index lines and `--json`: one line, keys sorted.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    init(header: SessionHeader, recordingID: String, end: RecordingEnd?, state: String? = nil, durationMicros: UInt64,
         exit: ExitOutcome?, totals: StreamTotals, recordCount: UInt64, finalHash: String, fileSize: UInt64) {
        self.recordingID = recordingID; sessionID = header.sessionID; channel = header.channel
        subject = header.subject; target = header.target; login = header.login; command = header.command
        scopes = header.scopes; context = header.context; sourceAddress = header.sourceAddress
        certificateKeyID = header.certificateKeyID; certificateSerial = header.certificateSerial
        inputRecorded = header.inputRecorded
        startTimeMicros = header.startTimeMicros; self.durationMicros = durationMicros
        self.state = state ?? end?.rawValue ?? "unfinished"
        switch exit {
        case .status(let code)?: exitStatus = code
        case .signal(let name, _)?: exitSignal = name
        case nil: break
        }
        self.totals = totals; self.recordCount = recordCount
        self.finalHash = finalHash
        self.fileSize = fileSize
    }
}
