#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything that can stop a recording. Each one means "end the session": no recording, no session.
public indirect enum RecordingWriteError: Error, Equatable, CustomStringConvertible {
    case invalidSessionID(String)
    case cannotCreate(path: String, errno: Int32)
    case writeFailed(path: String, errno: Int32, offset: UInt64)
    case syncFailed(path: String, errno: Int32)
    case signingFailed(path: String, reason: String)
    /// The writer failed earlier and refuses everything since (fail closed); `first` is that failure.
    case poisoned(first: RecordingWriteError)
    case alreadyFinished(path: String)

    /// The errno behind the failure, if it came from the system.
    public var errnoValue: Int32? {
        switch self {
        case .cannotCreate(_, let code), .writeFailed(_, let code, _), .syncFailed(_, let code): code
        case .poisoned(let first): first.errnoValue
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .invalidSessionID(let id):
            "session id \"\(id)\" cannot name a recording file (letters, digits, '-', '_', '.'; at most 128; not starting with '.')"
        case .cannotCreate(let path, let code):
            "cannot create recording \(path): \(ErrnoName.describe(code))"
        case .writeFailed(let path, let code, let offset):
            "recording \(path): write at byte \(offset) failed: \(ErrnoName.describe(code))"
        case .syncFailed(let path, let code):
            "recording \(path): fdatasync failed: \(ErrnoName.describe(code))"
        case .signingFailed(let path, let reason):
            "recording \(path): signing a checkpoint failed: \(reason)"
        case .poisoned(let first):
            "recorder failed earlier and refuses further writes: \(first)"
        case .alreadyFinished(let path):
            "recording \(path) is already finished"
        }
    }
}

/// "No space left on device (ENOSPC)": the message and the symbolic name operators search for.
enum ErrnoName {
    static func describe(_ code: Int32) -> String {
        let names: [Int32: String] = [
            ENOSPC: "ENOSPC", EIO: "EIO", EACCES: "EACCES", EPERM: "EPERM", EROFS: "EROFS",
            EDQUOT: "EDQUOT", ENOENT: "ENOENT", EEXIST: "EEXIST", EBADF: "EBADF", EFBIG: "EFBIG",
            ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", EMFILE: "EMFILE", ENFILE: "ENFILE",
        ]
        let message = String(cString: strerror(code))
        return "\(message) (\(names[code] ?? "errno \(code)"))"
    }
}
