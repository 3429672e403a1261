import AsyncHTTPClient
import Audit
import Crypto
import Foundation
import JSONWriting
import NIOCore
import Synchronization

/// Tells a person's tooling that a request waits: a JSON POST per new request to a webhook URL,
/// signed, retried with exponential backoff in the background, never blocking the caller.
///
/// **Signature.** Header `X-Gatehouse-Signature: sha256=<hex>`, the lowercase hex HMAC-SHA256
/// of the exact body bytes under the shared secret (the format GitHub's webhooks use, so
/// receivers' existing verifiers fit). Verify by recomputing over the raw body before parsing
/// and comparing in constant time. The body carries `event`, `delivery_id` (the same on every
/// retry: deduplicate on it) and `requested_at`; a receiver that wants replay protection
/// refuses old `requested_at` values or seen `delivery_id`s.
///
/// **Never blocking.** `requested` only reserves a slot and starts a task: with the receiver
/// dead, slow or unreachable the caller (the bastion answering exit 75) returns at once. At
/// most `maximumOutstanding` deliveries are in flight or backing off; beyond that a
/// notification is dropped and audited as a failure, so a dead receiver cannot grow memory.
///
/// **Why AsyncHTTPClient:** it is what Gatehouse already uses for outbound HTTP (OIDC
/// discovery, `gatehouse login`), runs on the shared NIO event loops with real per-request
/// deadlines, and keeps FoundationNetworking (libcurl underneath on Linux) out of the module.
public final class WebhookNotifier: ApprovalNotifier {
    public static let signatureHeader = "X-Gatehouse-Signature"
    /// Delays before the 2nd, 3rd… attempt: 1, 2, 4, 8, 16, 32 s (7 attempts over about a minute).
    public static let defaultRetryDelays: [Duration] = (0..<6).map { .seconds(1 << $0) }

    public let url: String
    private let secret: SymmetricKey
    private let retryDelays: [Duration]
    private let attemptTimeout: TimeAmount
    private let maximumOutstanding: Int
    private let client: HTTPClient
    private let audit: ApprovalAuditSink
    private let outstanding = Mutex(0)

    /// `secret`: the shared HMAC key. `audit` receives `approval.notified` once per request
    /// (success, or failure after the last attempt or when dropped).
    public init(url: String, secret: [UInt8], audit: @escaping ApprovalAuditSink, retryDelays: [Duration] = WebhookNotifier.defaultRetryDelays,
                attemptTimeout: Duration = .seconds(5), maximumOutstanding: Int = 256, client: HTTPClient = .shared) {
        self.url = url
        self.secret = SymmetricKey(data: secret)
        self.retryDelays = retryDelays
        self.attemptTimeout = .nanoseconds(Int64(attemptTimeout.components.seconds) * 1_000_000_000 + attemptTimeout.components.attoseconds / 1_000_000_000)
        self.maximumOutstanding = maximumOutstanding
        self.client = client
        self.audit = audit
    }

    /// Deliveries in flight or waiting to retry.
    public var outstandingDeliveries: Int { outstanding.withLock { $0 } }

    public func requested(_ record: ApprovalRecord) { enqueue(record) }

    /// Starts the delivery of `record` in the background; false when the queue was full and
    /// the notification was dropped.
    @discardableResult
    public func enqueue(_ record: ApprovalRecord) -> Bool {
        let accepted = outstanding.withLock { count -> Bool in
            guard count < maximumOutstanding else { return false }
            count += 1
            return true
        }
        let audit = self.audit
        guard accepted else {
            let event = ApprovalAuditEvents.notified(record, url: url, attempts: 0, error: "queue full (\(maximumOutstanding) deliveries outstanding)")
            Task.detached { try? audit([event]) }
            return false
        }
        let body = Self.body(record)
        Task.detached { [self] in
            let (attempts, error) = await deliver(body)
            try? audit([ApprovalAuditEvents.notified(record, url: url, attempts: attempts, error: error)])
            outstanding.withLock { $0 -= 1 }
        }
        return true
    }

    /// Tries until the receiver answers 2xx or the retry schedule runs out.
    private func deliver(_ body: [UInt8]) async -> (attempts: Int, error: String?) {
        var lastError = ""
        for attempt in 0...retryDelays.count {
            if attempt > 0 { try? await Task.sleep(for: retryDelays[attempt - 1]) }
            do {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: Self.signatureHeader, value: Self.signature(body, secret: secret))
                request.body = .bytes(body)
                let response = try await client.execute(request, timeout: attemptTimeout)
                _ = try? await response.body.collect(upTo: 64 * 1024)
                if (200..<300).contains(response.status.code) { return (attempt + 1, nil) }
                lastError = "HTTP \(response.status.code)"
            } catch {
                lastError = "\(error)"
            }
        }
        return (retryDelays.count + 1, lastError)
    }

    /// `sha256=` and the hex HMAC-SHA256 of `body`.
    public static func signature(_ body: [UInt8], secret: SymmetricKey) -> String {
        "sha256=" + ApprovalRequestKey.hex(HMAC<SHA256>.authenticationCode(for: body, using: secret))
    }

    /// The notification: what a person needs to decide, and how.
    static func body(_ r: ApprovalRecord) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.member("approval_id", r.id)
        w.member("approvers", strings: r.rule.approvers)
        w.member("command", r.key.command)
        w.member("command_sha256", r.key.commandSHA256)
        w.member("delivery_id", "\(r.id):requested")
        w.member("event", "approval.requested")
        w.member("expires", ApprovalTime.iso(r.expiresAt))
        w.member("key_id", r.requester.keyID)
        w.member("login", r.key.login)
        w.member("pattern", r.rule.pattern)
        if let prompt = r.requester.promptSHA256 { w.member("prompt_sha256", prompt) }
        w.member("requested_at", ApprovalTime.iso(r.requestedAt))
        w.member("scope", r.rule.scope)
        w.member("target", r.key.target)
        if let task = r.requester.taskID { w.member("task_id", task) }
        w.endObject()
        return w.bytes
    }
}
