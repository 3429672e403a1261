import Foundation
import Logging
import PostgresNIO
import Synchronization

/// Keeps a replica's CA files current: pulls on every `NOTIFY gatehouse_shared_files` (one
/// LISTEN connection of its own), and every `pollInterval` whatever happens, because a
/// notification sent while the listening connection was down is lost. A change published on
/// one replica is in force on the others within the notification's round trip, and within
/// `pollInterval` plus one pull at worst.
public final class SharedFilesWatcher: Sendable {
    public let files: SharedAuthorityFiles
    public let pollInterval: Duration
    let configuration: PostgresStoreConfiguration
    let onChange: @Sendable ([String]) -> Void
    let onError: @Sendable (StateStoreError) -> Void
    let logger: Logger
    private let wake = DispatchSemaphore(value: 0)
    private let lastError = Mutex<String?>(nil)
    private let stopped = Mutex(false)
    private let listener = Mutex<Task<Void, Never>?>(nil)

    public init(files: SharedAuthorityFiles, configuration: PostgresStoreConfiguration, pollInterval: Duration = .milliseconds(500),
                logger: Logger = Logger(label: "gatehouse.store"), onChange: @escaping @Sendable ([String]) -> Void,
                onError: @escaping @Sendable (StateStoreError) -> Void) {
        self.files = files
        self.configuration = configuration
        self.pollInterval = pollInterval
        self.logger = logger
        self.onChange = onChange
        self.onError = onError
    }

    public func start() {
        let thread = Thread { [self] in
            let (seconds, attoseconds) = pollInterval.components
            let interval = Double(seconds) + Double(attoseconds) / 1e18
            while !stopped.withLock({ $0 }) {
                do throws(StateStoreError) {
                    let written = try files.pull()
                    if !written.isEmpty { onChange(written) }
                    lastError.withLock { $0 = nil }
                } catch {
                    // Said once per distinct failure, not twice a second.
                    let text = error.description
                    if lastError.withLock({ last in defer { last = text }; return last != text }) { onError(error) }
                }
                _ = wake.wait(timeout: .now() + interval)
            }
        }
        thread.name = "gatehouse-shared-files"
        thread.start()
        listener.withLock { $0 = Task.detached { [self] in await listen() } }
    }

    /// Stops pulling and listening (the server never does; tests do).
    public func stop() {
        stopped.withLock { $0 = true }
        listener.withLock { $0?.cancel() }
        wake.signal()
    }

    /// LISTEN on a connection of its own, reconnecting a second after any failure.
    private func listen() async {
        while !Task.isCancelled {
            do {
                let settings = try configuration.connectionConfiguration(connectTimeout: .seconds(5))
                let connection = try await PostgresConnection.connect(configuration: settings, id: 1, logger: logger)
                defer { Task { try? await connection.close() } }
                // The first pull after (re)connecting catches what was sent while not listening.
                wake.signal()
                for try await _ in try await connection.listen(SharedAuthorityFiles.channel) { wake.signal() }
            } catch {
                logger.debug("shared files: LISTEN connection lost; reconnecting", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
