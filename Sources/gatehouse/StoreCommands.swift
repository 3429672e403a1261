import ArgumentParser
import Dispatch
import Foundation
import Logging
import StateStore
import Synchronization

struct StoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "The shared state store (PostgreSQL): schema migrations and status.",
        discussion: """
        The store is the configuration file's `store:` section (--config), or a URL given here \
        (--url postgres://user@host:5432/database). A file with `store: {kind: local}` (the default) \
        has no database: these commands refuse it.
        """,
        subcommands: [StoreMigrate.self, StoreStatus.self])
}

/// Which database: the configuration file's `store:` section, or a URL on the command line.
struct StoreConnectionOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file whose `store:` section names the database.") var config: String?
    @Option(name: .long, help: "postgres://user@host:5432/database[?sslmode=disable|require] (instead of --config).") var url: String?
    @Option(name: .long, help: "With --url: off or require (default: the URL's sslmode, else off).") var tls: String?
    @Option(name: .customLong("password-file"), help: "With --url: a file holding the password (keeps it out of the command line).") var passwordFile: String?

    func validate() throws {
        guard (config == nil) != (url == nil) else { throw ValidationError("give one of --config F or --url URL") }
        if config != nil, tls != nil || passwordFile != nil {
            throw ValidationError("--tls and --password-file go with --url; with --config the file's store section says them")
        }
    }

    func resolve() throws -> PostgresStoreConfiguration {
        if let config {
            switch try StoreConfiguration.load(file: config) {
            case .postgres(let configuration): return configuration
            case .local:
                throw CLIError("\(config): the store is local (no `store: {kind: postgres, url: …}` section): there is no database to work on")
            }
        }
        let mode: PostgresStoreConfiguration.TLSMode?
        if let tls {
            guard let parsed = PostgresStoreConfiguration.TLSMode(rawValue: tls) else { throw CLIError("--tls must be off or require") }
            mode = parsed
        } else {
            mode = nil
        }
        var configuration: PostgresStoreConfiguration
        do { configuration = try PostgresStoreConfiguration(url: url!, tls: mode) } catch { throw CLIError("--url: \(error)") }
        if let passwordFile {
            guard configuration.password == nil else { throw CLIError("--password-file: the URL carries a password too: give it in one place") }
            do { configuration.password = try StoreConfiguration.readPasswordFile(passwordFile) } catch { throw CLIError("--password-file: \(error)") }
        }
        return configuration
    }
}

struct StoreMigrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the schema migrations the database lacks, in order; print the schema version.",
        discussion: """
        Each migration runs in its own transaction under an advisory lock: replicas or operators \
        migrating at once apply each migration once. A database migrated past this build (by a newer \
        Gatehouse) or from different SQL is refused; schemas are never migrated down.
        """)
    @OptionGroup var store: StoreConnectionOptions

    func run() throws {
        let configuration = try store.resolve()
        print("store: \(configuration)")
        let (applied, version) = try StoreAssembly.withStore(configuration) { store in
            let applied = try await store.migrate()
            return (applied, try await store.checkVersion())
        }
        let names = Dictionary(uniqueKeysWithValues: Schema.migrations.map { ($0.version, $0.name) })
        for number in applied { print("applied schema migration \(number): \(names[number] ?? "")") }
        print(applied.isEmpty ? "schema version \(version): already current, nothing to apply" : "schema version \(version)")
    }
}

struct StoreStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Print the database's schema version and whether this build can run on it (exit 1 if not).")
    @OptionGroup var store: StoreConnectionOptions

    func run() throws {
        let configuration = try store.resolve()
        print("store: \(configuration)")
        let version = try StoreAssembly.withStore(configuration) { try await $0.checkVersion() }
        print("schema version \(version): this build (schema version \(Schema.latestVersion)) runs on it")
    }
}

enum StoreAssembly {
    /// Opens the store, runs `body`, shuts the store down, and waits for it from a synchronous
    /// command. A `StateStoreError` becomes the CLI's error with its precise text.
    static func withStore<T: Sendable>(_ configuration: PostgresStoreConfiguration, logger: Logger? = nil,
                                       _ body: @escaping @Sendable (PostgresStore) async throws -> T) throws -> T {
        // postgres-nio's pool logs each failed connection attempt; the error thrown says why.
        var quiet = Logger(label: "gatehouse.store")
        quiet.logLevel = .critical
        let store: PostgresStore
        do { store = try PostgresStore(configuration: configuration, logger: logger ?? quiet) } catch { throw CLIError("\(error)") }
        do {
            return try awaitBlocking {
                do {
                    let value = try await body(store)
                    await store.shutdown()
                    return value
                } catch {
                    await store.shutdown()
                    throw error
                }
            }
        } catch let error as StateStoreError {
            throw CLIError("\(error)")
        }
    }

    /// What `serve` does with `store: {kind: postgres}` before it binds anything: the schema
    /// must be exactly this build's, or the replica refuses to start with the store's reason.
    static func checkAtStart(_ configuration: PostgresStoreConfiguration) throws -> Int {
        do {
            return try withStore(configuration) { try await $0.checkVersion() }
        } catch {
            throw CLIError("state store: \(error); refusing to start")
        }
    }
}

/// Runs `body` on the concurrency pool and blocks this (synchronous command's) thread until it
/// ends. Never called from inside a task.
func awaitBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let result = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do {
            let value = try await body()
            result.withLock { $0 = .success(value) }
        } catch {
            result.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0! }.get()
}
