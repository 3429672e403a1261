import Approvals
import Crypto
import Foundation
import XCTest

/// The webhook against a real HTTP receiver on loopback (python3's http.server), and against a
/// dead one.
final class WebhookNotifierTests: XCTestCase {
    /// Writes each POST's signature header and body to `OUT` (renamed into place, so the test
    /// never reads half a file) and answers 204.
    static let receiver = """
    import http.server, os, sys
    port, out = int(sys.argv[1]), sys.argv[2]
    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with open(out + ".tmp", "wb") as f:
                f.write(self.headers.get("X-Gatehouse-Signature", "").encode() + b"\\n" + body)
            os.rename(out + ".tmp", out)
            self.send_response(204)
            self.end_headers()
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
    """

    func testALoopbackReceiverGetsTheSignedNotification() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { throw XCTSkip("no python3") }
        let directory = try temporaryDirectory(self)
        let port = try freePort()
        try Self.receiver.write(toFile: directory + "/receiver.py", atomically: true, encoding: .utf8)
        let pid = try spawnDaemon("/usr/bin/python3", [directory + "/receiver.py", String(port), directory + "/received"])
        // SIGKILL: a child of spawnDaemon inherits this process's blocked signals, SIGTERM among them.
        defer { kill(pid, SIGKILL); var status: Int32 = 0; waitpid(pid, &status, 0) }

        let audit = AuditCollector()
        let store = try FileApprovalStore(directory: directory + "/approvals", audit: audit.sink)
        let record = try store.request(restartNginx, requester: alice, rule: restartRule).record
        let secret = Array("a shared webhook secret".utf8)
        // Short retries: the receiver may still be starting when the first attempt goes out.
        let notifier = WebhookNotifier(url: "http://127.0.0.1:\(port)/hooks/approvals", secret: secret, audit: audit.sink,
                                       retryDelays: Array(repeating: .milliseconds(200), count: 25))
        XCTAssertTrue(notifier.enqueue(record))

        let received = try await eventually(seconds: 10) { try? Data(contentsOf: URL(fileURLWithPath: directory + "/received")) }
        let newline = try XCTUnwrap(received.firstIndex(of: 0x0a))
        let header = String(decoding: received[..<newline], as: UTF8.self)
        let body = Array(received[(newline + 1)...])
        let expected = "sha256=" + HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: secret)).map { String(format: "%02x", $0) }.joined()
        XCTAssertEqual(header, expected, "the receiver can verify the body with the shared secret")
        let wrongKey = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array("another secret".utf8))).map { String(format: "%02x", $0) }.joined()
        XCTAssertNotEqual(header, "sha256=" + wrongKey)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        XCTAssertEqual(object["approval_id"] as? String, record.id)
        XCTAssertEqual(object["event"] as? String, "approval.requested")
        XCTAssertEqual(object["command"] as? String, "systemctl restart nginx")
        XCTAssertEqual(object["key_id"] as? String, alice.keyID)
        XCTAssertEqual(object["task_id"] as? String, "task-7")

        let notified = try await eventually(seconds: 5) { audit.events.first { $0.action == "approval.notified" } }
        XCTAssertEqual(notified.outcome, .success)
        XCTAssertEqual(notified.object, record.id)
    }

    func testADeadReceiverDelaysNothing() async throws {
        let directory = try temporaryDirectory(self)
        let audit = AuditCollector()
        let store = try FileApprovalStore(directory: directory, audit: audit.sink)
        let record = try store.request(restartNginx, requester: alice, rule: restartRule).record
        let closedPort = try freePort()  // bound and closed again: nothing listens there
        let firstRetry = Duration.seconds(1)
        let notifier = WebhookNotifier(url: "http://127.0.0.1:\(closedPort)/", secret: [1, 2, 3], audit: audit.sink,
                                       retryDelays: [firstRetry, .milliseconds(50)], attemptTimeout: .milliseconds(300))
        let started = ContinuousClock.now
        for _ in 0..<20 { notifier.requested(record) }
        let elapsed = ContinuousClock.now - started
        // The calls returned while their deliveries were still outstanding: they cannot have
        // waited for the failing attempts and the 1 s backoff behind them.
        XCTAssertEqual(notifier.outstandingDeliveries, 20)
        XCTAssertLessThan(elapsed, firstRetry / 10, "20 notifications to a dead receiver took \(elapsed)")
        print("20 notifications to a dead receiver returned in \(elapsed)")
        // In the background, each is retried, then audited as failed. (AsyncHTTPClient keeps
        // trying to connect until the attempt's deadline, hence the short attempt timeout.)
        let failures = try await eventually(seconds: 15) { () -> [String]? in
            let failed = audit.events.filter { $0.action == "approval.notified" && $0.outcome == .failure }
            return failed.count == 20 ? failed.compactMap { $0.details["attempts"] } : nil
        }
        XCTAssertEqual(Set(failures), ["3"])
        XCTAssertEqual(notifier.outstandingDeliveries, 0)
    }

    func testTheQueueIsBounded() throws {
        let audit = AuditCollector()
        let store = try FileApprovalStore(directory: try temporaryDirectory(self), audit: audit.sink)
        let record = try store.request(restartNginx, requester: alice, rule: restartRule).record
        let notifier = WebhookNotifier(url: "http://127.0.0.1:\(try freePort())/", secret: [1], audit: audit.sink,
                                       retryDelays: [.seconds(30)], maximumOutstanding: 3)
        XCTAssertEqual((0..<5).map { _ in notifier.enqueue(record) }, [true, true, true, false, false])
    }

    /// Polls `probe` every 50 ms until it answers, or fails after `seconds`.
    private func eventually<T>(seconds: Double, _ probe: () throws -> T?) async throws -> T {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let value = try probe() { return value }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw NSError(domain: "eventually", code: 1, userInfo: [NSLocalizedDescriptionKey: "nothing after \(seconds) s"])
    }
}
