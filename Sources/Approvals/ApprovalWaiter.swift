import Foundation
import Synchronization

/// A bounded wait for a decision, for agents whose tool calls die after 60–120 s: it answers
/// as soon as the request is no longer pending, or at the timeout with `status: pending,
/// next: wait`, and never holds anyone longer than `maximumTimeout`.
///
/// Changes made in this process wake the waiter at once; changes made by another process (the
/// CLI deciding) are seen by the store's poll (every 200 ms for the file store).
public struct ApprovalWaiter: Sendable {
    /// The timeout when the agent names none: under the 60 s at which agents' tool calls start
    /// to die, with room for the answer to travel back.
    public static let defaultTimeout: TimeInterval = 50
    /// The most any wait holds: longer ones are clamped to it (hoop.dev's MCP cap is the same).
    public static let maximumTimeout: TimeInterval = 300

    public let store: any ApprovalStore

    public init(store: any ApprovalStore) { self.store = store }

    /// The timeout a request for `requested` seconds gets: nil → 50 s, negative → 0 (answer
    /// at once), more than 300 → 300.
    public static func clamp(_ requested: TimeInterval?) -> TimeInterval {
        guard let requested, requested.isFinite else { return defaultTimeout }
        return min(max(requested, 0), maximumTimeout)
    }

    /// Waits while request `id` is pending, up to `timeout` (clamped) and up to the request's
    /// own expiry; answers its status then. Throws `ApprovalRefusal.notFound` for an unknown id,
    /// and for a request of another identity when `requester` is given (an agent waiting with
    /// its certificate learns nothing about other agents' requests).
    public func wait(for id: String, as requester: ApprovalRequester? = nil, timeout: TimeInterval? = nil) async throws -> ApprovalAnswer {
        let deadline = Date().addingTimeInterval(Self.clamp(timeout))
        while true {
            let token = store.changeToken()
            guard let record = try store.get(id), requester.map({ $0.boundIdentity == record.key.identity }) ?? true else {
                throw ApprovalRefusal.notFound(id: id)
            }
            let now = store.now()
            let answer = ApprovalAnswer(record, now: now)
            let left = deadline.timeIntervalSinceNow
            if answer.status != .pending || left <= 0 || Task.isCancelled { return answer }
            // Wake at the expiry too, so an expired request is answered as expired on time.
            let untilExpiry = record.expiresAt.timeIntervalSince(now)
            await store.waitForChange(since: token, upTo: max(0.001, min(left, untilExpiry)))
        }
    }

    /// `wait` for callers on a thread of their own (the bastion's channel threads): blocks the
    /// calling thread, never a concurrency-pool thread.
    public func waitBlocking(for id: String, as requester: ApprovalRequester? = nil, timeout: TimeInterval? = nil) throws -> ApprovalAnswer {
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { box.set(.success(try await wait(for: id, as: requester, timeout: timeout))) } catch { box.set(.failure(error)) }
            done.signal()
        }
        done.wait()
        return try box.get()
    }
}

/// The result handed from the waiting task to the blocked thread.
private final class ResultBox: Sendable {
    private let result = Mutex<Result<ApprovalAnswer, any Error>>(.failure(CancellationError()))
    func set(_ r: Result<ApprovalAnswer, any Error>) { result.withLock { $0 = r } }
    func get() throws -> ApprovalAnswer { try result.withLock { $0 }.get() }
}
