import JSONWriting

/// What `GET /healthz` answers: whether this replica can take new sessions, and each check
/// that decided it. A load balancer sends new connections only to replicas answering 200; 503
/// names what is wrong ("store": "the state store is unreachable: …").
public struct HealthReport: Sendable, Equatable {
    public struct Check: Sendable, Equatable {
        public var name: String
        /// nil: passing; otherwise why not.
        public var problem: String?

        public init(name: String, problem: String?) {
            self.name = name
            self.problem = problem
        }
    }

    public var checks: [Check]

    public init(checks: [Check] = []) { self.checks = checks }

    public var ready: Bool { checks.allSatisfy { $0.problem == nil } }

    /// `{"status": "ok"|"unavailable", "checks": {"store": "ok", "recorder": "…"}}`.
    public var json: String {
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        w.member("status", ready ? "ok" : "unavailable")
        w.key("checks")
        w.beginObject()
        for check in checks { w.member(check.name, check.problem ?? "ok") }
        w.endObject()
        w.endObject()
        return w.text + "\n"
    }
}

/// Where the health report comes from: the server's assembly knows the store and the recorder.
public typealias HealthSource = @Sendable () async -> HealthReport
