import Audit
import ArgumentParser
import Bastion
import CertificateAuthority
import Foundation
import SSHCertificates
import StateStore

/// `--state DIR` and `--config FILE`, shared by every command that uses the CA store.
///
/// With `--config` naming a file whose `store:` is `kind: postgres`, the CA store is the
/// replicas' shared one: it is pulled into the state directory first, a change is published
/// to every replica (under the store's publish lock), and the audit records go to the shared
/// chain.
struct StateOptions: ParsableArguments {
    @Option(name: .customLong("state"), help: "The state directory holding the CA store and audit log (default: the --config file's, else ./var/gatehouse).")
    var stateOption: String?
    @Option(name: .customLong("config"), help: "Configuration file: its state directory, and with `store: {kind: postgres}` the replicas' shared CA store.")
    var config: String?

    var state: String {
        stateOption ?? config.flatMap { try? BastionConfiguration.load(file: $0).stateDirectory } ?? "./var/gatehouse"
    }

    /// The shared store of the --config file, or nil for the state directory's files.
    func shared() throws -> SharedCAStore? {
        guard let config, case .postgres(let database) = try StoreConfiguration.load(file: config) else { return nil }
        return try SharedCAStore(configuration: database, stateDirectory: state)
    }

    /// The audit chain the command's records go to: the shared one with a PostgreSQL store.
    func auditSink() throws -> any AuditSink {
        // The chain alone: no key-encryption key needed (that is for the CA files).
        if let config, case .postgres(let database) = try StoreConfiguration.load(file: config) {
            do { return SharedAuditLog(connection: try BlockingConnection(store: database), spool: nil) } catch { throw CLIError("\(error)") }
        }
        do { return try AuditLog(path: state + "/audit.log") } catch { throw CLIError("\(error)") }
    }

    /// The store to read from (pulled from the shared store first, with `--config`).
    func open() throws -> CAStore {
        if let shared = try shared() { return try shared.open() }
        do { return try CAStore.open(at: state) } catch { throw CLIError("\(error)") }
    }

    /// Runs a change on the store; with a shared store, publishes it to every replica.
    func change<T>(_ body: (CAStore) throws -> T) throws -> T {
        guard let shared = try shared() else { return try body(try open()) }
        return try shared.change(body)
    }
}

/// Who is acting, for the audit log.
var adminActor: String { "admin:\(ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "uid-\(getuid())")" }

extension AuthorityName: ExpressibleByArgument {}

struct CACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ca", abstract: "Manage the user, target and host certificate authorities.",
        subcommands: [CAInit.self, CAStatus.self, CARotate.self, CAExport.self, CAImport.self])
}

struct CAInit: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "init", abstract: "Create the CA store: user, target, host and recording keys.")
    @OptionGroup var store: StateOptions
    @Option(help: "Key type for the CAs: ed25519, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa.") var algorithm: String = "ed25519"

    func run() throws {
        guard let algorithm = SSHKeyAlgorithm(shortName: algorithm) else { throw CLIError("--algorithm \"\(self.algorithm)\" is not one of ed25519, ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa") }
        let ca: CAStore
        if let shared = try store.shared() {
            ca = try shared.initialize(algorithm: algorithm)
        } else {
            do { ca = try CAStore.initialize(at: store.state, algorithm: algorithm, actor: adminActor) } catch { throw CLIError("\(error)") }
        }
        print("Created the CA store in \(store.state)")
        CAStatus.printStatus(ca)
    }
}

struct CAStatus: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show each CA's phase and keys.")
    @OptionGroup var store: StateOptions

    func run() throws { CAStatus.printStatus(try store.open()) }

    static func printStatus(_ ca: CAStore) {
        for s in ca.status() {
            var line = "\(s.name.rawValue) CA: phase \(s.phase.rawValue)"
            if let at = s.retireAllowedAt { line += ", retire allowed from \(ISO8601DateFormatter().string(from: at))" }
            print(line)
            for k in s.keys {
                let since = k.activeFromMicros.map { ", active since \(TrustedKey.format($0))" } ?? ", not yet active"
                print("  \(k.role.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(k.algorithm) \(k.fingerprint)  (\(k.id)\(since))")
            }
            // Keys that left the authority: they sign and authorize nothing; the recording ones
            // still verify what they signed while active.
            for k in s.retired {
                let from = k.activeFromMicros.map(TrustedKey.format)
                let interval = from.map { "active from \($0) until \(TrustedKey.format(k.retiredMicros))" } ?? "never active, dropped \(TrustedKey.format(k.retiredMicros))"
                print("  verify-only \(k.algorithm) \(k.fingerprint)  (\(k.id), \(k.how), \(interval))")
            }
        }
    }
}

struct CARotate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rotate", abstract: "Advance a CA's rotation: standby → init → update → retire; or --rollback.")
    @OptionGroup var store: StateOptions
    @Argument(help: "user, target, host or recording") var authority: AuthorityName
    @Flag(help: "Go back to the old key (from init or update).") var rollback = false
    @Flag(help: "Retire before the grace period has passed (invalidates certificates the old key signed).") var force = false

    func run() throws {
        let ca = try store.change { ca in
            do {
                if rollback {
                    try ca.rollback(authority, actor: adminActor)
                    print("\(authority.rawValue) CA rolled back; phase standby")
                } else {
                    let phase = try ca.rotate(authority, actor: adminActor, force: force)
                    print("\(authority.rawValue) CA now in phase \(phase.rawValue)")
                }
            } catch { throw CLIError("\(error)") }
            return ca
        }
        CAStatus.printStatus(ca)
    }
}

struct CAExport: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Print CA public keys (TrustedUserCAKeys / @cert-authority) or write the KRL.")
    @OptionGroup var store: StateOptions
    @Argument(help: "user, target, host, recording or krl") var what: String
    @Option(name: .shortAndLong, help: "Output file (required for krl).") var output: String?
    @Flag(help: "recording only: also the verify-only keys, each with the interval it was active, for `gatehouse verify --trusted-keys`.")
    var history = false

    func run() throws {
        let ca = try store.open()
        let text: String
        if history && what != "recording" { throw CLIError("--history applies to `ca export recording` only") }
        switch what {
        case "recording" where history:
            text = TrustedKeyFile.serialize(ca.verificationKeys(.recording), comment: "gatehouse-recording-ca").trimmingCharacters(in: .newlines)
        case "krl":
            guard let output else { throw CLIError("`ca export krl` writes a binary file: give -o FILE") }
            do { try Data(ca.revocationList().serialized()).write(to: URL(fileURLWithPath: output)) } catch { throw CLIError("cannot write \(output): \(error.localizedDescription)") }
            print("Wrote KRL version \(ca.revocationList().version) to \(output)")
            return
        case "host":
            text = ca.trustedPublicKeys(.host).map { "@cert-authority * \($0.openSSHLine) gatehouse-host-ca" }.joined(separator: "\n")
        default:
            guard let name = AuthorityName(rawValue: what) else { throw CLIError("`ca export` takes user, target, host, recording or krl, not \"\(what)\"") }
            text = ca.trustedPublicKeys(name).map { "\($0.openSSHLine) gatehouse-\(name.rawValue)-ca" }.joined(separator: "\n")
        }
        if let output {
            do { try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: output)) } catch { throw CLIError("cannot write \(output): \(error.localizedDescription)") }
        } else {
            print(text)
        }
    }
}

struct CAImport: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Adopt an existing ssh-keygen CA private key as a CA's signing key.")
    @OptionGroup var store: StateOptions
    @Argument(help: "user, target or host") var authority: AuthorityName
    @Option(name: .customLong("private-key"), help: "An unencrypted OpenSSH private key file.") var privateKey: String

    func run() throws {
        let key: SSHPrivateKey
        do { key = try OpenSSHPrivateKeyFile.parse(try readFile(privateKey)) } catch let e as CLIError { throw e } catch { throw CLIError("\(privateKey): \(error)") }
        try store.change { ca in
            do { try ca.importKey(key, as: authority, actor: adminActor) } catch { throw CLIError("\(error)") }
        }
        print("Imported \(key.publicKey.fingerprint) as the \(authority.rawValue) CA signing key; the previous key stays trusted until `gatehouse ca rotate \(authority.rawValue)` retires it.")
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Verify and read the audit log.", subcommands: [AuditVerify.self, AuditShow.self])
}

struct AuditVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check the audit log's hash chain.",
        discussion: """
        With --config, the chain the configuration's store keeps: with `store: {kind: postgres}` the \
        database's audit_events table (one chain for every replica; its schema is checked first), \
        otherwise STATE/audit.log of the file's `state:` directory.
        """)
    @Option(help: "The state directory holding the CA store and audit log (default ./var/gatehouse).") var state: String?
    @Option(help: "Audit log path (default: STATE/audit.log).") var log: String?
    @Option(help: "Configuration file: verify the chain of its store (database or state directory).") var config: String?

    func validate() throws {
        if config != nil, state != nil || log != nil { throw ValidationError("--config names the store itself: give it without --state or --log") }
    }

    func run() throws {
        let result: AuditVerification
        if let config, case .postgres(let database) = try StoreConfiguration.load(file: config) {
            print("store: \(database)")
            result = try StoreAssembly.withStore(database) { store in
                try await store.checkVersion()
                return try await PostgresAuditLog(store: store).verify()
            }
        } else {
            let directory = try config.map { try BastionConfiguration.load(file: $0).stateDirectory } ?? state ?? "./var/gatehouse"
            let path = log ?? "\(directory)/audit.log"
            do { result = try AuditLog.verify(path: path) } catch { throw CLIError("\(error)") }
        }
        print(result)
        if case .broken = result { throw ExitCode(1) }
    }
}
