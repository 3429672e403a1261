import Crypto
import Foundation

/// Size and SHA-256 (hex) of a whole file, read in 1 MiB pieces.
struct FileDigest: Sendable, Equatable {
    let size: Int64
    let sha256: String

    init(path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw ShippingError.file(path: path, reason: "cannot open for reading") }
        defer { try? handle.close() }
        var hasher = SHA256()
        var size: Int64 = 0
        while true {
            let chunk = try handle.read(upToCount: 1 << 20) ?? Data()
            if chunk.isEmpty { break }
            hasher.update(data: chunk)
            size += Int64(chunk.count)
        }
        self.size = size
        sha256 = hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// Why shipping stopped; the file stays where it is.
public enum ShippingError: Error, Sendable, Equatable, CustomStringConvertible {
    case file(path: String, reason: String)
    /// The lease was taken over while uploading (this replica stalled past the lease).
    case leaseLost(recordingID: String)
    /// The index says shipped, but with another content than the local file.
    case conflict(recordingID: String, reason: String)
    /// An object store or database failure, with its own text.
    case remote(String)

    public var description: String {
        switch self {
        case .file(let path, let reason): return "\(path): \(reason)"
        case .leaseLost(let id): return "the shipping lease on \(id) was lost during the upload"
        case .conflict(let id, let reason): return "\(id): \(reason)"
        case .remote(let text): return text
        }
    }
}
