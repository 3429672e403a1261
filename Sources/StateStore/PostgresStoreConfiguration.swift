import Foundation
import NIOCore
import NIOSSL
import PostgresNIO

/// Where the shared state lives: `store: {kind: postgres, url: …, tls: off|require}`.
///
/// The URL is libpq's shape, `postgres://user[:password]@host[:port]/database[?sslmode=…]`, so
/// the string an operator tests with `psql` is the string Gatehouse reads. Only what Gatehouse
/// acts on is accepted; any other query parameter is refused rather than silently ignored.
public struct PostgresStoreConfiguration: Sendable, Equatable, CustomStringConvertible {
    public enum TLSMode: String, Sendable, Equatable {
        /// Plain TCP: loopback, a private network or a Unix-socket proxy only.
        case off
        /// TLS required, the server's certificate verified against the system's trust roots (or
        /// `rootCertificatePath`) and its name; a server without TLS is refused.
        case require
    }

    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var tls: TLSMode
    /// PEM file of the CA that signed the server's certificate (libpq's `sslrootcert`).
    public var rootCertificatePath: String?
    /// Seals the CA files in the database; required by `serve` (not by `store migrate`).
    public var keyEncryptionKey: KeyEncryptionKey?

    public init(host: String, port: Int = 5432, username: String, password: String? = nil, database: String,
                tls: TLSMode = .off, rootCertificatePath: String? = nil) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.tls = tls
        self.rootCertificatePath = rootCertificatePath
    }

    /// Parses `url`; `tls` is the configuration file's `tls:` key, which may restate the URL's
    /// `sslmode` but not contradict it. With neither, TLS is off.
    public init(url: String, tls: TLSMode? = nil) throws(StateStoreError) {
        func fail(_ text: String) -> StateStoreError {
            StateStoreError(operation: "store configuration", endpoint: "", kind: .configuration(text))
        }
        guard let c = URLComponents(string: url), let scheme = c.scheme else {
            throw fail("the store URL is not a URL (expected postgres://user@host:5432/database)")
        }
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw fail("the store URL's scheme is \"\(scheme)\"; expected postgres:// (or postgresql://)")
        }
        guard var host = c.host, !host.isEmpty else { throw fail("the store URL names no host (expected postgres://user@host:5432/database)") }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let username = c.user, !username.isEmpty else {
            throw fail("the store URL names no user (expected postgres://user@\(host)/database): Gatehouse never guesses the database role")
        }
        let port = c.port ?? 5432
        guard (1...65535).contains(port) else { throw fail("the store URL's port \(port) is not a TCP port") }
        var path = c.path
        if path.hasPrefix("/") { path.removeFirst() }
        guard !path.isEmpty, !path.contains("/") else { throw fail("the store URL names no database (expected postgres://\(username)@\(host):\(port)/database)") }
        var urlTLS: TLSMode?
        var rootCertificate: String?
        for item in c.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                switch item.value ?? "" {
                case "disable": urlTLS = .off
                case "require", "verify-full": urlTLS = .require
                default: throw fail("sslmode=\(item.value ?? "") is not supported: use disable or require (the certificate and host name are always verified)")
                }
            case "sslrootcert":
                guard let value = item.value, !value.isEmpty else { throw fail("sslrootcert needs a file path") }
                rootCertificate = value
            default:
                throw fail("the store URL's parameter \"\(item.name)\" is not supported (only sslmode and sslrootcert are)")
            }
        }
        if let tls, let urlTLS, tls != urlTLS {
            throw fail("tls: \(tls.rawValue) contradicts the store URL's sslmode (\(urlTLS == .off ? "disable" : "require"))")
        }
        let mode = tls ?? urlTLS ?? .off
        if rootCertificate != nil, mode == .off { throw fail("sslrootcert is set but TLS is off") }
        self.init(host: host, port: port, username: username, password: c.password, database: path, tls: mode,
                  rootCertificatePath: rootCertificate)
    }

    /// `host:port/database`, for messages.
    public var endpoint: String {
        (host.contains(":") ? "[\(host)]" : host) + ":\(port)/\(database)"
    }

    /// The URL with the password masked: safe for logs and `gatehouse store` output.
    public var description: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(endpoint) (tls \(tls.rawValue))"
    }
}

extension PostgresStoreConfiguration {
    /// The TLS settings a connection to this store uses (`tls: require` verifies the server's
    /// certificate and name against the system roots or `sslrootcert`).
    func tlsSettings() throws(StateStoreError) -> TLSConfiguration? {
        guard tls == .require else { return nil }
        var settings = TLSConfiguration.makeClientConfiguration()
        settings.certificateVerification = .fullVerification
        if let path = rootCertificatePath {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw StateStoreError(operation: "store configuration", endpoint: endpoint, kind: .configuration("cannot read the TLS root certificate \(path)"))
            }
            settings.trustRoots = .file(path)
        }
        return settings
    }

    /// One direct connection's settings (outside postgres-nio's pool).
    func connectionConfiguration(connectTimeout: Duration) throws(StateStoreError) -> PostgresConnection.Configuration {
        do {
            var configuration = PostgresConnection.Configuration(
                host: host, port: port, username: username, password: password, database: database,
                tls: try tlsSettings().map { .require(try NIOSSLContext(configuration: $0)) } ?? .disable)
            configuration.options.connectTimeout = TimeAmount.nanoseconds(Int64(connectTimeout.components.seconds) * 1_000_000_000
                                                                          + connectTimeout.components.attoseconds / 1_000_000_000)
            configuration.options.additionalStartupParameters = [("application_name", "gatehouse")]
            return configuration
        } catch let error as StateStoreError {
            throw error
        } catch {
            throw StateStoreError(operation: "store configuration", endpoint: endpoint, kind: .configuration("TLS: \(error)"))
        }
    }
}
