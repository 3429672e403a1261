import ConfigurationSupport
import Foundation
import Yams

/// The configuration file's `store:` section: where the state replicas share lives.
///
///     store: {kind: local}                       # the default: files under the state directory
///     store:
///       kind: postgres
///       url: postgres://gatehouse@db.internal:5432/gatehouse
///       tls: require                             # off | require (may restate the URL's sslmode)
///       password_file: /etc/gatehouse/db-password  # optional; or a password in the URL
///       key_encryption_key_file: /etc/gatehouse/kek  # 64 hex characters; or key_encryption_key_env: NAME
///
/// Parsed here, by the module that owns the store, from the same file the bastion reads (which
/// accepts `store` as a section another component parses, as it does `issuance`). Every mistake
/// is a `ConfigurationError` naming file, line, column and key, like the rest of the file.
public enum StoreConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// Today's files under the state directory; no database. The default.
    case local
    case postgres(PostgresStoreConfiguration)

    /// The section's key in the configuration file.
    public static let section = "store"

    public var description: String {
        switch self {
        case .local: return "local (files under the state directory)"
        case .postgres(let c): return "postgres \(c)"
        }
    }

    /// Reads the `store:` section of `file`; `.local` when there is none.
    public static func load(file: String) throws -> StoreConfiguration {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError(file: file, line: 0, column: 0, key: "(file)", message: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: file, line: 0, column: 0, key: "(file)", message: "is not UTF-8 text")
        }
        return try parse(yaml: text, file: file)
    }

    public static func parse(yaml: String, file: String) throws -> StoreConfiguration {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw ConfigurationError(file: file, line: 1, column: 1, key: "(document)", message: "not valid YAML: \(error)")
        }
        guard let root, let top = root.mapping, let node = top.first(where: { $0.key.string == section })?.value else { return .local }
        return try parse(node: node, reader: YAMLReader(file: file))
    }

    /// The section itself. `password_file` is read here (as the approvals webhook secret is), so
    /// `serve --check` catches a missing or empty file, not the first login.
    public static func parse(node: Node, reader r: YAMLReader) throws -> StoreConfiguration {
        let m = try r.mapping(node, section)
        guard let kindNode = r.node(m, "kind") else {
            throw r.error(node, "\(section).kind", "is required: local or postgres")
        }
        switch try r.string(kindNode, "\(section).kind") {
        case "local":
            try r.onlyKeys(m, ["kind"], section)
            return .local
        case "postgres":
            try r.onlyKeys(m, ["kind", "url", "tls", "password_file", "key_encryption_key_file", "key_encryption_key_env"], section)
            guard let urlNode = r.node(m, "url") else {
                throw r.error(node, "\(section).url", "is required with kind: postgres (postgres://user@host:5432/database)")
            }
            let url = try r.string(urlNode, "\(section).url")
            // The URL alone first, so its mistakes point at the url; then the tls key against it.
            var configuration: PostgresStoreConfiguration
            do throws(StateStoreError) { configuration = try PostgresStoreConfiguration(url: url) } catch {
                throw r.error(urlNode, "\(section).url", error.message)
            }
            if let tlsNode = r.node(m, "tls") {
                let text = try r.string(tlsNode, "\(section).tls")
                guard let mode = PostgresStoreConfiguration.TLSMode(rawValue: text) else {
                    throw r.error(tlsNode, "\(section).tls", "must be off or require")
                }
                do throws(StateStoreError) { configuration = try PostgresStoreConfiguration(url: url, tls: mode) } catch {
                    throw r.error(tlsNode, "\(section).tls", error.message)
                }
            }
            if let fileNode = r.node(m, "password_file") {
                let path = try r.string(fileNode, "\(section).password_file")
                guard configuration.password == nil else {
                    throw r.error(fileNode, "\(section).password_file", "the URL carries a password too: give it in one place (password_file keeps it out of the configuration file)")
                }
                do throws(StateStoreError) { configuration.password = try readPasswordFile(path) } catch {
                    throw r.error(fileNode, "\(section).password_file", error.message)
                }
            }
            let keyFile = r.node(m, "key_encryption_key_file"), keyEnv = r.node(m, "key_encryption_key_env")
            if let keyFile, keyEnv != nil {
                throw r.error(keyFile, "\(section).key_encryption_key_file", "give the key-encryption key in one place: key_encryption_key_file or key_encryption_key_env")
            }
            if let keyFile {
                let path = try r.string(keyFile, "\(section).key_encryption_key_file")
                do throws(StateStoreError) { configuration.keyEncryptionKey = try KeyEncryptionKey.load(file: path) } catch {
                    throw r.error(keyFile, "\(section).key_encryption_key_file", error.message)
                }
            }
            if let keyEnv {
                let name = try r.string(keyEnv, "\(section).key_encryption_key_env")
                do throws(StateStoreError) { configuration.keyEncryptionKey = try KeyEncryptionKey.load(environment: name) } catch {
                    throw r.error(keyEnv, "\(section).key_encryption_key_env", error.message)
                }
            }
            return .postgres(configuration)
        case let other:
            throw r.error(kindNode, "\(section).kind", "\"\(other)\" is not a store kind: local or postgres")
        }
    }

    /// The password in `path`: the file's first line, without its line ending. An empty file,
    /// a missing one or one holding more than a line is refused (a stray second line would be
    /// silently part of the password otherwise).
    public static func readPasswordFile(_ path: String) throws(StateStoreError) -> String {
        func fail(_ text: String) -> StateStoreError {
            StateStoreError(operation: "store configuration", endpoint: "", kind: .configuration(text))
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot read the password file \(path)") }
        guard var text = String(data: data, encoding: .utf8) else { throw fail("the password file \(path) is not UTF-8 text") }
        if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
        guard !text.isEmpty else { throw fail("the password file \(path) is empty") }
        guard !text.contains("\n"), !text.contains("\r") else { throw fail("the password file \(path) holds more than one line") }
        guard !text.utf8.contains(0) else { throw fail("the password file \(path) holds a NUL byte") }
        return text
    }
}

extension StateStoreError {
    /// The text of a configuration mistake without the "store configuration: " prefix, for a
    /// `ConfigurationError` that already names the key.
    var message: String {
        if case .configuration(let text) = kind { return text }
        return description
    }
}
