import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL

/// Builds the issuance listener. TLS comes from the configured PEM files; without them only a
/// loopback address may be served, since the requests carry bearer tokens.
public enum IssuanceServer {
    public struct ConfigurationProblem: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The application, ready for `runService`. `metrics` is what `/metrics` serves; `onRunning`
    /// gets the bound port (useful with port 0).
    public static func make(issuer: CertificateIssuer, metrics: MetricsPage, approvals: ApprovalDecisions? = nil, health: @escaping HealthSource = { HealthReport() },
                            logger: Logger, port: Int? = nil,
                            onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> some ApplicationProtocol {
        let c = issuer.configuration
        let http1 = HTTPServerBuilder.http1(configuration: .init(
            idleTimeout: .seconds(30),
            // Larger headers than a maximal token plus slack are cut off by the parser (400)
            // before they are buffered whole.
            httpDecoderConfiguration: .init(maxHeaderFieldSize: max(8192, c.maxTokenBytes * 2), maxHeaderListSize: max(16384, c.maxTokenBytes * 4), maxHeaderFieldCount: 100)))
        let server: HTTPServerBuilder
        if let files = c.tls {
            server = try .tls(http1, tlsConfiguration: try tlsConfiguration(files))
        } else {
            guard IssuanceConfiguration.isLoopback(c.listenHost) else {
                throw ConfigurationProblem(description: "issuance.listen \(c.listenHost): plain HTTP would carry bearer tokens in the clear; configure issuance.tls or listen on loopback")
            }
            server = http1
        }
        return Application(router: IssuanceRoutes.router(issuer: issuer, metrics: metrics, approvals: approvals, health: health), server: server,
                           configuration: .init(address: .hostname(c.listenHost, port: port ?? c.listenPort), serverName: nil),
                           onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }

    static func tlsConfiguration(_ files: IssuanceConfiguration.TLSFiles) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do { chain = try NIOSSLCertificate.fromPEMFile(files.certificate) } catch {
            throw ConfigurationProblem(description: "issuance.tls.certificate \(files.certificate): \(error)")
        }
        do { key = try NIOSSLPrivateKey(file: files.key, format: .pem) } catch {
            throw ConfigurationProblem(description: "issuance.tls.key \(files.key): \(error)")
        }
        guard !chain.isEmpty else { throw ConfigurationProblem(description: "issuance.tls.certificate \(files.certificate): no PEM certificate in the file") }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        return tls
    }
}
