import Dispatch
import Foundation
import Synchronization

/// Cuts a connection off if key exchange, authentication and the first channel request have
/// not finished in time. libssh blocks in `ssh_handle_key_exchange` and silently drops a
/// userauth request whose signature is bad, so a stalled or hostile client would otherwise hold
/// its thread forever. Firing shuts the socket down (not close: the descriptor stays owned by
/// libssh), which wakes the blocked poll with an error.
final class LoginDeadline: Sendable {
    private let state: Mutex<(armed: Bool, fired: Bool)> = Mutex((true, false))
    private let fd: Int32

    init(fd: Int32, seconds: Int) {
        self.fd = fd
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(seconds)) { [self] in
            state.withLock { s in
                guard s.armed else { return }
                s.fired = true
                s.armed = false
                _ = shutdown(fd, Int32(SHUT_RDWR))
            }
        }
    }

    /// Must be called before the socket is closed, so a late timer cannot hit a reused descriptor.
    func disarm() { state.withLock { $0.armed = false } }

    var fired: Bool { state.withLock { $0.fired } }
}
