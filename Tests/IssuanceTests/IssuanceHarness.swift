import AsyncHTTPClient
import Audit
import CertificateAuthority
import Foundation
import Hummingbird
import Logging
import MetricsExporter
import NIOCore
import NIOHTTP1
import SSHCertificates
import XCTest
@testable import Issuance

/// A CA store in a temporary directory, an issuance listener on 127.0.0.1 (port chosen by the
/// kernel) trusting `provider`, and a client for it.
final class IssuanceHarness: @unchecked Sendable {
    let directory: URL
    let store: CAStore
    let issuer: CertificateIssuer
    /// This harness's own registry: tests run many servers in one process, and swift-metrics'
    /// global bootstrap happens once, so each server counts through a factory passed explicitly.
    let exporter = PrometheusExporter(timerBuckets: IssuanceMetrics.timerBuckets)
    var metricsPage: MetricsPage { MetricsPage(contentType: PrometheusExporter.contentType) { [exporter] in exporter.render() } }
    var port = 0
    private var task: Task<Void, any Error>?
    var base: String { "\(scheme)://127.0.0.1:\(port)" }
    let scheme: String
    let client: HTTPClient

    init(configuration c: IssuanceConfiguration, tlsClient: HTTPClient? = nil) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-issuance-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        store = try CAStore.initialize(at: directory.appendingPathComponent("state").path, actor: "test")
        var logger = Logger(label: "issuance-test")
        logger.logLevel = .critical
        let verifier = TokenVerifier(issuers: c.issuers, source: { DiscoveryKeySource(issuer: $0, client: HTTPClient.shared) }, logger: logger)
        issuer = CertificateIssuer(configuration: c, verifier: verifier, authority: StoreAuthority(store: store), audit: AuditBatcher(log: store.audit),
                                   metrics: IssuanceMetrics(factory: exporter.factory))
        scheme = c.tls == nil ? "http" : "https"
        client = tlsClient ?? HTTPClient.shared
    }

    func start() async throws {
        var logger = Logger(label: "issuance-http")
        logger.logLevel = .critical
        let ready = AsyncStream<Int>.makeStream()
        let app = try IssuanceServer.make(issuer: issuer, metrics: metricsPage, logger: logger, port: 0) { ready.continuation.yield($0) }
        task = Task { try await app.runService(gracefulShutdownSignals: []) }
        for await p in ready.stream { port = p; break }
    }

    func stop() {
        task?.cancel()
        try? FileManager.default.removeItem(at: directory)
    }

    struct Answer {
        let status: Int
        let headers: HTTPHeaders
        let body: [UInt8]
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]) ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
        /// The shared refusal shape: `code`, `rule`, `reason`.
        var error: String? { json["code"] as? String }
        var check: String? { json["rule"] as? String }
    }

    func post(token: String?, body: Any) async throws -> Answer {
        let data: Data
        if let raw = body as? Data { data = raw } else { data = try JSONSerialization.data(withJSONObject: body) }
        var request = HTTPClientRequest(url: "\(base)/v1/certificates")
        request.method = .POST
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(Array(data))
        return try await send(request)
    }

    func get(_ path: String) async throws -> Answer {
        try await send(HTTPClientRequest(url: "\(base)\(path)"))
    }

    func send(_ request: HTTPClientRequest) async throws -> Answer {
        let response = try await client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 4 << 20)
        return Answer(status: Int(response.status.code), headers: response.headers, body: Array(buffer: body))
    }

    func auditRecords() throws -> [AuditRecord] { try AuditLog.records(path: store.audit.location) }
}

extension IssuanceConfiguration {
    /// One issuer (the test provider), groups `ops` → scope `ops`, `dev` → `dev-read`.
    static func test(issuer: String, audience: String = "gatehouse", configure: (inout IssuerConfiguration) -> Void = { _ in }) -> IssuanceConfiguration {
        var c = IssuanceConfiguration()
        var i = IssuerConfiguration(issuer: issuer, audiences: [audience])
        i.refreshIntervalSeconds = 3600
        configure(&i)
        c.issuers = [i]
        c.mapping.keyID = ClaimTemplate("oidc:{sub}")
        c.mapping.principals = [ClaimTemplate("{sub}"), ClaimTemplate("agent")]
        c.mapping.groupScopes = ["ops": ["ops"], "dev": ["dev-read"], "both": ["ops", "dev-read"]]
        c.rateLimit = .init(perMinute: 6000, burst: 1000)
        c.bastionAddresses = ["bastion.example.com:2222", "[::1]:2200"]
        return c
    }
}
