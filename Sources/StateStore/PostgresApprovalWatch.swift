import Foundation
import Logging
import PostgresNIO

/// How changes made on other replicas reach this one's waiters: `LISTEN gatehouse_approvals`
/// on a connection of its own (reconnecting a second after any failure), and a re-read of
/// `max(change)` every `pollInterval` whatever happens, because a notification sent while the
/// listening connection was down is lost. A decision on one replica wakes the waiters on the
/// others within a notification's round trip, and within `pollInterval` at worst.
extension PostgresApprovalStore {
    struct Watch {
        var running = false
        /// LISTEN is in force (tests wait for it before they count on a notification).
        var listening = false
        /// The last `max(change)` read (nil before the first read).
        var lastChange: Int64?
        var lastError: String?
        var listener: Task<Void, Never>?
    }

    /// Starts the listener and the periodic re-read (once; the server calls it at start).
    public func start() {
        guard watch.withLock({ w in defer { w.running = true }; return !w.running }) else { return }
        let thread = Thread { [self] in
            while watch.withLock({ $0.running }) {
                poll()
                _ = wake.wait(timeout: .now() + pollInterval.seconds)
            }
        }
        thread.name = "gatehouse-approvals-watch"
        thread.start()
        let task = Task.detached { [self] in await listen() }
        watch.withLock { $0.listener = task }
    }

    /// Stops listening and re-reading (the server never does; tests do).
    public func stop() {
        let task = watch.withLock { w -> Task<Void, Never>? in
            w.running = false
            defer { w.listener = nil }
            return w.listener
        }
        task?.cancel()
        wake.signal()
    }

    /// Whether the LISTEN connection is up.
    public var isListening: Bool { watch.withLock { $0.listening } }

    /// Reads `max(change)`; wakes the waiters when it moved since the last read.
    private func poll() {
        do throws(StateStoreError) {
            let latest = try pollConnection.run("approvals change poll") { session in
                try session.query("SELECT coalesce(max(change), 0)::bigint FROM approvals").first?.decode(Int64.self) ?? 0
            }
            let moved = watch.withLock { w -> Bool in
                defer { w.lastChange = latest; w.lastError = nil }
                return w.lastChange.map { $0 != latest } ?? false
            }
            if moved { changes.signal() }
        } catch {
            // Said once per distinct failure, not twice a second.
            let text = error.description
            if watch.withLock({ w in defer { w.lastError = text }; return w.lastError != text }) {
                logger.warning("approvals: cannot re-read the store", metadata: ["error": "\(text)"])
            }
        }
    }

    private func listen() async {
        while !Task.isCancelled {
            do {
                let settings = try configuration.connectionConfiguration(connectTimeout: .seconds(5))
                let connection = try await PostgresConnection.connect(configuration: settings, id: 2, logger: logger)
                defer { Task { try? await connection.close() } }
                try await connection.listen(on: Self.channel) { notifications in
                    watch.withLock { $0.listening = true }
                    // A re-read now catches what was committed while nobody listened.
                    wake.signal()
                    for try await _ in notifications {
                        changes.signal()
                        wake.signal()
                    }
                }
            } catch {
                logger.debug("approvals: LISTEN connection lost; reconnecting", metadata: ["error": "\(error)"])
            }
            watch.withLock { $0.listening = false }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
