import CLibSSH
import CSystemCalls
import Foundation
import Synchronization

/// An eventfd in the connection's poll context. Recorders write to it from their sealing queue
/// when a batch reaches the file, so the connection's thread wakes and releases the held bytes
/// at once instead of at its next poll timeout.
final class Wakeup: Sendable {
    let fd: Int32

    init() {
        fd = gatehouse_eventfd()
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Callable from any thread.
    func signal() {
        guard fd >= 0 else { return }
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    func attach(to event: ssh_event) {
        guard fd >= 0 else { return }
        ssh_event_add_fd(event, fd, Int16(POLLIN), { fd, _, _ in
            var count: UInt64 = 0
            _ = read(fd, &count, 8)
            return 0
        }, nil)
    }

    func detach(from event: ssh_event) {
        guard fd >= 0 else { return }
        ssh_event_remove_fd(event, fd)
    }
}
