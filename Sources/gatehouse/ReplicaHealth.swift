import Foundation
import Issuance

/// What `/healthz` checks: whether this replica can take new sessions.
enum ReplicaHealth {
    /// The shared store answers (when there is one), and the recordings directory takes writes
    /// with room left: a recorder that cannot write refuses every session (fail closed), so a
    /// balancer should send them elsewhere.
    /// `shipping`: nil without an object store; else `.some(nil)` when recordings ship, or why not.
    static func report(store: StoreHealth?, recordingDirectory: String, shipping: String?? = nil) -> HealthReport {
        var checks: [HealthReport.Check] = []
        if let store { checks.append(.init(name: "store", problem: store.problem)) }
        checks.append(.init(name: "recorder", problem: recorderProblem(recordingDirectory)))
        if let shipping { checks.append(.init(name: "recordings_store", problem: shipping)) }
        return HealthReport(checks: checks)
    }

    static func recorderProblem(_ directory: String) -> String? {
        guard access(directory, W_OK | X_OK) == 0 else { return "the recordings directory \(directory) is not writable: \(String(cString: strerror(errno)))" }
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { return "cannot stat \(directory): \(String(cString: strerror(errno)))" }
        let free = UInt64(info.f_bavail) * UInt64(info.f_frsize)
        // Below one mebibyte a session would stop at its first writes: not worth starting.
        return free < 1 << 20 ? "the recordings directory \(directory) has \(free) bytes free" : nil
    }
}
