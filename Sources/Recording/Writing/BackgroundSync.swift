import Dispatch
import Synchronization

/// Runs a recording's periodic fdatasync on its own serial queue, behind the sealing queue, so
/// neither the relay nor the sealer stalls while the disk catches up. The pwrite stays on the
/// sealing queue (bytes reach the page cache as soon as they are sealed and survive kill -9);
/// only the wait for stable storage moves here. At most one sync is queued at a time. A failure is kept and surfaces at the writer's
/// next call, which poisons it (fail closed).
final class BackgroundSync: Sendable {
    private struct State {
        var pending = false
        var failure: RecordingWriteError?
    }

    private let queue = DispatchQueue(label: "gatehouse.recording.fdatasync")
    private let state = Mutex(State())

    /// Asks for an fdatasync of everything written so far (no-op while one is queued).
    func request(_ file: RecordingFile) {
        let enqueue = state.withLock { s -> Bool in
            guard !s.pending, s.failure == nil else { return false }
            s.pending = true
            return true
        }
        guard enqueue else { return }
        queue.async { [self] in
            var failure: RecordingWriteError?
            do throws(RecordingWriteError) { try file.sync() } catch { failure = error }
            state.withLock { s in
                s.pending = false
                if s.failure == nil { s.failure = failure }
            }
        }
    }

    /// The first background failure, if any.
    var failure: RecordingWriteError? { state.withLock { $0.failure } }

    /// Waits until no sync is queued or running (before the final sync and close).
    func drain() -> RecordingWriteError? {
        queue.sync {}
        return failure
    }
}
