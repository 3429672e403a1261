import Audit
import CertificateAuthority
import Foundation
import Logging
import SSHCertificates
import StateStore

/// The replicas' CA store for one command (`ca rotate --config F`, `cert revoke --config F`…):
/// pulled into the state directory, changed there by the same `CAStore` code as on a single
/// machine, published to every replica. Audited in the shared chain; nothing is spooled (a
/// command on a store that cannot be reached fails and says why).
final class SharedCAStore {
    let files: SharedAuthorityFiles
    let audit: SharedAuditLog
    let connection: BlockingConnection
    let stateDirectory: String

    init(configuration: PostgresStoreConfiguration, stateDirectory: String) throws {
        guard let key = configuration.keyEncryptionKey else {
            throw CLIError("the store's CA keys are sealed: set store.key_encryption_key_file (or key_encryption_key_env) in the configuration file")
        }
        var quiet = Logger(label: "gatehouse.store")
        quiet.logLevel = .critical
        do {
            try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            connection = try BlockingConnection(store: configuration, logger: quiet)
            audit = SharedAuditLog(connection: try BlockingConnection(store: configuration, logger: quiet), spool: nil)
            files = SharedAuthorityFiles(connection: connection, key: key, stateDirectory: stateDirectory, actor: adminActor)
        } catch let error as StateStoreError {
            throw CLIError("\(error)")
        }
        self.stateDirectory = stateDirectory
    }

    var serials: SerialSource { SerialSource { [connection] in try connection.nextSerial() } }

    private func openLocal() throws -> CAStore {
        guard FileManager.default.fileExists(atPath: "\(stateDirectory)/ca/user/state.json") else {
            throw CLIError("the shared store holds no CA store yet: start a replica (`gatehouse serve --config F`) or run `gatehouse ca init --config F`")
        }
        do { return try CAStore.open(at: stateDirectory, audit: audit, serials: serials) } catch { throw CLIError("\(error)") }
    }

    /// The current shared store, for reading (and for signing: `cert issue`).
    func open() throws -> CAStore {
        do { try files.pull() } catch { throw CLIError("\(error)") }
        return try openLocal()
    }

    /// `body` under the publish lock on the current store; what it changed goes to every replica.
    func change<T>(_ body: (CAStore) throws -> T) throws -> T {
        do {
            return try files.publish("shared CA store change") { try body(try openLocal()) }
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("\(error)")
        }
    }

    /// `ca init --config`: creates the shared store, unless the database holds one.
    func initialize(algorithm: SSHKeyAlgorithm) throws -> CAStore {
        let created = try change0 {
            guard !FileManager.default.fileExists(atPath: "\(stateDirectory)/ca/user/state.json") else { return false }
            _ = try CAStore.initialize(at: stateDirectory, algorithm: algorithm, actor: adminActor, audit: audit, serials: serials)
            return true
        }
        guard created else { throw CLIError("the shared store already holds a CA store; see it with `gatehouse ca status --config F`") }
        return try openLocal()
    }

    private func change0<T>(_ body: () throws -> T) throws -> T {
        do { return try files.publish("shared CA store initialisation", body) } catch let error as CLIError { throw error } catch { throw CLIError("\(error)") }
    }
}
