import Foundation
import Synchronization

/// Where a certificate's `max-sessions@gatehouse` budget is counted. Durable: a restart of the
/// bastion must not hand a one-shot certificate a second session. A shared database can
/// implement the same protocol when several bastions serve one fleet.
public protocol SessionBudgetStore: Sendable {
    /// Counts one session against `key`'s budget of `limit`, durably, before the session starts.
    func take(key: String, limit: Int, validBefore: UInt64) -> SessionBudgetOutcome
    /// Forgets budgets of certificates that expired before `now` (they can open nothing more).
    func prune(now: UInt64)
}

public enum SessionBudgetOutcome: Sendable, Equatable {
    /// `used` sessions so far, this one included.
    case granted(used: Int)
    case exhausted(used: Int)
    /// The count could not be read or made durable: the session is refused (fail closed).
    case failed(String)
}

/// The embedded store: one small file per certificate under `STATE/session-budgets/`, holding
/// "used valid_before". Each take locks the file (flock, so a second process on the same state
/// directory is safe too), rewrites it and fsyncs it before answering.
public final class SessionBudgetLedger: SessionBudgetStore {
    public let directory: String
    /// One take at a time in this process: flock is per open file description, and cheap
    /// enough that serialising the rare budgeted session start costs nothing.
    private let serial = Mutex(())

    public init(directory: String) {
        self.directory = directory
    }

    public func take(key: String, limit: Int, validBefore: UInt64) -> SessionBudgetOutcome {
        guard key.utf8.count == 64, key.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            return .failed("the budget key is not a SHA-256 hex digest")
        }
        // An expired certificate opens nothing (and its file may already be pruned).
        guard UInt64(Date().timeIntervalSince1970) < validBefore else { return .exhausted(used: limit) }
        return serial.withLock { _ in
            do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
                return .failed("cannot create \(directory): \(error)")
            }
            let path = "\(directory)/\(key)"
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { return .failed("cannot open \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            guard flock(fd, LOCK_EX) == 0 else { return .failed("cannot lock \(path): \(String(cString: strerror(errno)))") }
            var buffer = [UInt8](repeating: 0, count: 64)
            let n = pread(fd, &buffer, buffer.count, 0)
            guard n >= 0 else { return .failed("cannot read \(path): \(String(cString: strerror(errno)))") }
            var used = 0
            if n > 0 {
                let fields = String(decoding: buffer[..<n], as: UTF8.self).split(whereSeparator: { $0 == " " || $0 == "\n" })
                guard fields.count == 2, let count = Int(fields[0]), count >= 0 else { return .failed("\(path) is damaged; the budget cannot be trusted") }
                used = count
            }
            guard used < limit else { return .exhausted(used: used) }
            let line = Array("\(used + 1) \(validBefore)\n".utf8)
            guard pwrite(fd, line, line.count, 0) == line.count, ftruncate(fd, off_t(line.count)) == 0, fsync(fd) == 0 else {
                return .failed("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                // A new file: its directory entry must be durable too.
                let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                if dir >= 0 { fsync(dir); close(dir) }
            }
            return .granted(used: used + 1)
        }
    }

    public func prune(now: UInt64) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names {
            let path = "\(directory)/\(name)"
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
            let fields = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
            if fields.count == 2, let validBefore = UInt64(fields[1]), validBefore < now { unlink(path) }
        }
    }
}
