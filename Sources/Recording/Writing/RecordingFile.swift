import CSystemCalls
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The append-only descriptor under a writer or recovery. `@unchecked Sendable` because it is only
/// ever reached by one owner at a time: inside the writer's lock, or by a recovery call's locals.
final class RecordingFile: @unchecked Sendable {
    let path: String
    private var fd: Int32

    /// Creates the file exclusively (a recording is never overwritten) with mode 0600, and takes
    /// an exclusive flock that marks it live until closed or the process dies.
    init(creating path: String) throws(RecordingWriteError) {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .cannotCreate(path: path, errno: errno) }
        _ = flock(fd, LOCK_EX | LOCK_NB)
        self.fd = fd
    }

    /// Opens an existing recording for recovery; fails with `isLive` when a writer still holds it.
    init(recovering path: String) throws(RecoveryError) {
        self.path = path
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, reason: ErrnoName.describe(errno)) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { _ = systemClose(fd); throw .live(path: path) }
        self.fd = fd
    }

    /// pwrite until every byte is in the kernel. An explicit offset means a partial failure never
    /// leaves us guessing where the file ends.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws(RecordingWriteError) {
        guard fd >= 0 else { throw .writeFailed(path: path, errno: EBADF, offset: offset) }
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .writeFailed(path: path, errno: errno, offset: offset + UInt64(done))
            }
            if n == 0 { throw .writeFailed(path: path, errno: EIO, offset: offset + UInt64(done)) }
            done += n
        }
    }

    /// Reserves disk blocks for `length` bytes from `offset` without changing the file's size:
    /// a later pwrite there cannot fail for want of space. Returns 0 or the errno (EOPNOTSUPP on
    /// filesystems that cannot reserve).
    func reserve(at offset: UInt64, length: Int) -> Int32 {
        guard fd >= 0 else { return EBADF }
        return gatehouse_reserve_space(fd, Int64(offset), Int64(length))
    }

    func sync() throws(RecordingWriteError) {
        guard fd >= 0 else { throw .syncFailed(path: path, errno: EBADF) }
        if fdatasync(fd) != 0 { throw .syncFailed(path: path, errno: errno) }
    }

    /// Cuts the file back to a record boundary. Returns false when even that failed.
    @discardableResult
    func truncate(to length: UInt64) -> Bool { fd >= 0 && ftruncate(fd, off_t(length)) == 0 }

    func close() {
        if fd >= 0 { _ = systemClose(fd) }
        fd = -1
    }

    deinit { close() }

    /// True while another open file description holds the writer's lock: a session is recording.
    static func isLive(_ path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { _ = systemClose(fd) }
        return flock(fd, LOCK_SH | LOCK_NB) != 0
    }

    /// fsync the directory so a new file's name survives power loss.
    static func syncDirectory(_ directory: String) throws(RecordingWriteError) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotCreate(path: directory, errno: errno) }
        defer { _ = systemClose(fd) }
        if fsync(fd) != 0 { throw .syncFailed(path: directory, errno: errno) }
    }
}
