import SSHCertificates

/// A record as read: where it was, when, and what it means.
public struct Record: Sendable {
    /// Sequence number (0 = header).
    public var index: UInt64
    /// Byte offset of the record's head in the file.
    public var offset: UInt64
    public var timeMicros: UInt64
    public var content: RecordContent
    /// Bytes the record occupies on disk (head, payload, CRC).
    public var size: Int
}

public enum RecordContent: Sendable, Equatable {
    case header(SessionHeader)
    case data(RecordStream, [UInt8])
    case resize(TerminalSize)
    case marker(String)
    case exit(ExitOutcome)
    /// A span the agent saw masked.
    case mask(RecordedMask)
    /// A signed checkpoint (verified by `RecordingVerifier`, not by the reader).
    case checkpoint
    /// The end of the recording: the writer's trailer or recovery's crash end.
    case end(RecordingEnd)
}

/// Decodes a payload by type; the message says which field is wrong.
enum ContentDecoder {
    static func decode(type: RecordType, payload: [UInt8]) throws(PayloadError) -> RecordContent {
        switch type {
        case .header: return .header(try HeaderRecord.decode(payload).session)
        case .stdin, .stdout, .stderr: return .data(type.stream!, payload)
        case .resize: return .resize(try TerminalSize.decode(payload))
        case .marker:
            guard let label = String(validating: payload, as: UTF8.self) else { throw .invalid("marker label is not UTF-8") }
            return .marker(label)
        case .exitStatus, .exitSignal: return .exit(try ExitOutcome.decode(type: type, payload))
        case .checkpoint: _ = try CheckpointPayload.decode(payload); return .checkpoint
        case .trailer: return .end(try TrailerPayload.decode(payload).reason.end)
        case .crashEnd: _ = try CrashEndPayload.decode(payload); return .end(.crash)
        case .mask: return .mask(try RecordedMask.decode(payload))
        }
    }
}
