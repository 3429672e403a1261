import Foundation
import Synchronization

/// Wakes the waiters of this process when the store changed here: a generation counter and
/// the continuations of those waiting for it to move. Changes made by other processes reach
/// the waiters through polling instead (`FileApprovalStore.pollInterval`), or, for a database
/// store in another module, through its notifications (hence public).
public final class ChangeSignal: Sendable {
    private struct State {
        public var generation: UInt64 = 0
        var nextWaiter: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public var generation: UInt64 { state.withLock { $0.generation } }

    public func signal() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.generation &+= 1
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for continuation in waiting { continuation.resume() }
    }

    /// Returns when the generation moves past `since`, after `seconds`, or on cancellation.
    public func wait(since: UInt64, upTo seconds: TimeInterval) async {
        guard seconds > 0 else { return }
        let id = state.withLock { state -> UInt64 in state.nextWaiter &+= 1; return state.nextWaiter }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let registered = state.withLock { state -> Bool in
                    guard state.generation == since, !Task.isCancelled else { return false }
                    state.waiters[id] = continuation
                    return true
                }
                guard registered else { continuation.resume(); return }
                Task { [weak self] in
                    try? await Task.sleep(for: .milliseconds(Int64(seconds * 1000)))
                    self?.resume(id)
                }
            }
        } onCancel: {
            resume(id)
        }
    }

    private func resume(_ id: UInt64) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
}
