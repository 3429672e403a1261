import Foundation

public struct ApprovalStoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The file store's two files in `STATE/approvals/`: `approvals.json`, the whole state,
/// replaced atomically on every change (write a temporary file, fsync, rename, fsync the
/// directory: a crash leaves the old state or the new one, never a torn one), and
/// `approvals.lock`, held with `flock` around every read-modify-write so a running server and
/// the CLI exclude each other. Readers need no lock: a rename swaps whole files.
struct ApprovalStateFile: Sendable {
    let directory: String
    var statePath: String { directory + "/approvals.json" }
    var lockPath: String { directory + "/approvals.lock" }

    /// What identifies one version of the state file: every write is a new inode (rename), and
    /// size and mtime catch the rest.
    struct Version: Equatable, Sendable {
        let inode: UInt64
        let size: Int64
        let modified: Int64
        static let absent = Version(inode: 0, size: -1, modified: 0)
    }

    init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch { throw ApprovalStoreError("cannot create \(directory): \(error)") }
    }

    /// The current version without reading the file: the waiters' cheap poll.
    func currentVersion() -> Version {
        var info = stat()
        guard stat(statePath, &info) == 0 else { return .absent }
        return Self.version(info)
    }

    /// The file's bytes and their version (nil bytes: no file yet, an empty store).
    func read() throws -> (bytes: [UInt8]?, version: Version) {
        let fd = open(statePath, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return (nil, .absent) }
            throw ApprovalStoreError("cannot open \(statePath): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ApprovalStoreError("cannot stat \(statePath): \(String(cString: strerror(errno)))") }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw ApprovalStoreError("cannot read \(statePath): \(String(cString: strerror(errno)))") }
            done += n
        }
        return (bytes, Self.version(info))
    }

    /// Replaces the state durably; returns the new version.
    func replace(with bytes: [UInt8]) throws -> Version {
        let temporary = "\(statePath).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ApprovalStoreError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            written += n
        }
        let synced = written == bytes.count && fsync(fd) == 0
        var info = stat()
        let stated = fstat(fd, &info) == 0
        close(fd)
        guard synced, stated, rename(temporary, statePath) == 0 else {
            let error = String(cString: strerror(errno))
            unlink(temporary)
            throw ApprovalStoreError("cannot write \(statePath): \(error)")
        }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 { fsync(directoryFD); close(directoryFD) }
        return Self.version(info)
    }

    /// Removes temporary files a crashed writer left behind. Call with the lock held: writers
    /// create them only while holding it, so any that exist then are orphans.
    func removeOrphanedTemporaries() {
        let prefix = "approvals.json.tmp-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(prefix) {
            unlink(directory + "/" + name)
        }
    }

    /// Opens the lock file; the descriptor is this store instance's own open file description,
    /// so `flock` on it excludes other instances in this process as well as other processes.
    func openLock() throws -> Int32 {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ApprovalStoreError("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        return fd
    }

    static func withExclusiveLock<T>(_ fd: Int32, _ body: () throws -> T) throws -> T {
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw ApprovalStoreError("cannot lock the approvals store: \(String(cString: strerror(errno)))") }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    static func version(_ info: stat) -> Version {
        Version(inode: UInt64(info.st_ino), size: Int64(info.st_size),
                modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }
}
