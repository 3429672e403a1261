import CLibSSH

/// A libssh call that failed, with libssh's own explanation of why.
public struct LibSSHError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let detail: String

    public init(_ operation: String, detail: String) {
        self.operation = operation
        self.detail = detail
    }

    /// Reads `ssh_get_error` from a session or bind (libssh takes either as `void *`).
    init(_ operation: String, handle: UnsafeMutableRawPointer?) {
        self.operation = operation
        if let handle, let text = ssh_get_error(handle) { detail = String(cString: text) } else { detail = "unknown error" }
    }

    public var description: String { detail.isEmpty ? operation : "\(operation): \(detail)" }
}
