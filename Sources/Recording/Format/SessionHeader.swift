import Foundation
import SSHCertificates

/// Who, what and where: the identity of the session, stored as record 0.
///
/// On disk it is UTF-8 JSON (see `HeaderRecord`). JSON because people and tools read the header
/// and it grows optional fields; it is covered by the hash chain like every record, so its exact
/// bytes are what is protected, not a canonical form.
public struct SessionHeader: Sendable, Equatable, Codable {
    public var sessionID: String
    /// SSH channel number within the session: one recording per session channel.
    public var channel: Int
    /// The agent certificate's key id and serial, and what it granted.
    public var certificateKeyID: String
    public var certificateSerial: UInt64
    public var scopes: [String]
    /// The request context from the certificate (`context@gatehouse`): task id, prompt hash.
    public var context: String
    public var subject: String
    /// "address:port" of the agent's connection.
    public var sourceAddress: String
    public var target: String
    /// The login used on the target.
    public var login: String
    /// The exec command, or nil for an interactive shell.
    public var command: String?
    /// Terminal type from the pty request, nil without a pty.
    public var terminalType: String?
    public var columns: Int
    public var rows: Int
    /// Wall-clock start, microseconds since the Unix epoch. Record times are offsets from it.
    public var startTimeMicros: UInt64
    /// Whether stdin is recorded (it may hold typed secrets, so the scope's policy decides).
    public var inputRecorded: Bool
    /// How stdout and stderr were masked for the agent; nil when they were not.
    public var masking: HeaderMasking?

    public init(sessionID: String, channel: Int = 0, certificateKeyID: String, certificateSerial: UInt64,
                scopes: [String], context: String, subject: String, sourceAddress: String, target: String,
                login: String, command: String?, terminalType: String?, columns: Int, rows: Int,
                startTimeMicros: UInt64 = WallClock.microseconds(), inputRecorded: Bool, masking: HeaderMasking? = nil) {
        self.masking = masking
        self.sessionID = sessionID; self.channel = channel
        self.certificateKeyID = certificateKeyID; self.certificateSerial = certificateSerial
        self.scopes = scopes; self.context = context; self.subject = subject
        self.sourceAddress = sourceAddress; self.target = target; self.login = login
        self.command = command; self.terminalType = terminalType
        self.columns = columns; self.rows = rows
        self.startTimeMicros = startTimeMicros; self.inputRecorded = inputRecorded
    }

    /// The recording's id and file stem: "<session>-ch<channel>".
    public var recordingID: String { RecordingFiles.recordingID(sessionID: sessionID, channel: channel) }

    /// "shell" for interactive sessions, otherwise the command.
    public var commandDescription: String { command ?? "shell" }

    public var startDate: Date { Date(timeIntervalSince1970: Double(startTimeMicros) / 1_000_000) }
}

/// The header's account of masking: what the data records hold, how the agent was shown a
/// masked span, and the rules in force.
public struct HeaderMasking: Sendable, Equatable, Codable {
    /// "raw": the data records hold the target's bytes, and mask records say which spans the
    /// agent saw masked. "masked": the data records hold only what the agent saw.
    public var record: String
    /// How a masked span was shown: "marker", "same-width" or "same-length" (`MaskingMode`).
    public var view: String
    public var rules: [String]

    public init(record: String, view: String, rules: [String]) {
        self.record = record
        self.view = view
        self.rules = rules
    }

    /// The data records hold the target's original bytes (and mask records the spans).
    public var keepsOriginal: Bool { record == "raw" }
}

/// The JSON payload of record 0: the session identity plus the key that signs this recording.
struct HeaderRecord: Codable, Equatable {
    var format = "gatehouse-recording"
    var version = Int(FrameLayout.formatVersion)
    var session: SessionHeader
    /// OpenSSH public key line of the recording key that signs the checkpoints and the trailer.
    var recordingKey: String

    func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // A struct of strings, integers and booleans always encodes.
        return Array((try? encoder.encode(self)) ?? Data())
    }

    static func decode(_ payload: [UInt8]) throws(PayloadError) -> HeaderRecord {
        let record: HeaderRecord
        do { record = try JSONDecoder().decode(HeaderRecord.self, from: Data(payload)) } catch {
            throw .invalid("header is not the session JSON (\(Self.reason(error)))")
        }
        guard record.format == "gatehouse-recording" else { throw .invalid("header format is \"\(record.format)\"") }
        guard record.version == Int(FrameLayout.formatVersion) else { throw .invalid("header version \(record.version) is not supported") }
        return record
    }

    func publicKey() throws(PayloadError) -> SSHPublicKey {
        do { return try SSHPublicKey(openSSHLine: recordingKey) } catch {
            throw .invalid("header recording key is not an OpenSSH public key: \(error)")
        }
    }

    private static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing \"\(key.stringValue)\""
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.dataCorrupted: "not valid JSON"
        default: "\(error)"
        }
    }
}
