/// What a record holds. The raw values are the on-disk type byte (docs/recording-format.md).
public enum RecordType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case header = 0x01
    case stdin = 0x02
    case stdout = 0x03
    case stderr = 0x04
    case resize = 0x05
    case marker = 0x06
    case exitStatus = 0x07
    case exitSignal = 0x08
    case checkpoint = 0x09
    /// The signed end of a recording closed by its writer.
    case trailer = 0x0A
    /// The signed end appended by recovery to a recording whose writer died.
    case crashEnd = 0x0B
    /// A span of stdout or stderr that was masked before it reached the agent (the raw bytes stay
    /// in the data records; this says which, and by which rule).
    case mask = 0x0C

    public var stream: RecordStream? {
        switch self {
        case .stdin: .stdin
        case .stdout: .stdout
        case .stderr: .stderr
        default: nil
        }
    }

    /// Trailer and crash end close a recording: nothing may follow them.
    public var isTerminal: Bool { self == .trailer || self == .crashEnd }

    public var description: String {
        switch self {
        case .header: "header"
        case .stdin: "stdin data"
        case .stdout: "stdout data"
        case .stderr: "stderr data"
        case .resize: "resize"
        case .marker: "marker"
        case .exitStatus: "exit status"
        case .exitSignal: "exit signal"
        case .checkpoint: "checkpoint"
        case .trailer: "trailer"
        case .crashEnd: "crash end"
        case .mask: "mask"
        }
    }
}

/// The three byte streams of an SSH session channel.
public enum RecordStream: String, Sendable, CaseIterable, Codable {
    case stdin, stdout, stderr

    public var recordType: RecordType {
        switch self {
        case .stdin: .stdin
        case .stdout: .stdout
        case .stderr: .stderr
        }
    }
}

/// How a recording ended, as its last record says.
public enum RecordingEnd: String, Sendable, Codable, CustomStringConvertible {
    /// The writer finished it and signed the trailer.
    case normal
    /// The writer hit a write error and left a signed trailer saying so (the session was ended).
    case recorderFailure = "recorder-failure"
    /// The writer died (crash, kill -9, power loss); recovery cut the torn tail and signed a crash end.
    case crash

    public var description: String { rawValue }
}

/// Why a writer sealed a trailer (the on-disk reason byte).
enum TrailerReason: UInt8 {
    case normal = 1
    case recorderFailure = 2

    var end: RecordingEnd { self == .normal ? .normal : .recorderFailure }
}

/// Bytes recorded per stream.
public struct StreamTotals: Sendable, Equatable, Codable, CustomStringConvertible {
    public var stdin: UInt64
    public var stdout: UInt64
    public var stderr: UInt64

    public init(stdin: UInt64 = 0, stdout: UInt64 = 0, stderr: UInt64 = 0) {
        self.stdin = stdin; self.stdout = stdout; self.stderr = stderr
    }

    public subscript(stream: RecordStream) -> UInt64 {
        get {
            switch stream {
            case .stdin: stdin
            case .stdout: stdout
            case .stderr: stderr
            }
        }
        set {
            switch stream {
            case .stdin: stdin = newValue
            case .stdout: stdout = newValue
            case .stderr: stderr = newValue
            }
        }
    }

    public var description: String { "stdin \(stdin) B, stdout \(stdout) B, stderr \(stderr) B" }
}
