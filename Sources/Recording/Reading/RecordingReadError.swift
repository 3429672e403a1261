/// Why a recording could not be read further. Every case that concerns the content says where.
public enum RecordingReadError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case io(path: String, offset: UInt64, reason: String)
    /// The first 8 bytes are not a Gatehouse recording preamble.
    case notARecording(path: String, reason: String)
    /// Record `record` at byte `offset` is damaged, misplaced, or the file ends inside it.
    case damaged(record: UInt64, offset: UInt64, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): "cannot open recording \(path): \(reason)"
        case .io(let path, let offset, let reason): "reading \(path) at byte \(offset) failed: \(reason)"
        case .notARecording(let path, let reason): "\(path) is not a Gatehouse recording: \(reason)"
        case .damaged(let record, let offset, let reason): "record \(record) at byte \(offset): \(reason)"
        }
    }
}
