import AsyncHTTPClient
import Foundation
import Logging
import NIOSSL
import SSHCertificates
import XCTest
@testable import Issuance

/// The listener with TLS from PEM files (made here by openssl), and the refusal to serve plain
/// HTTP anywhere but loopback.
final class TLSTests: XCTestCase {
    func testIssuanceOverTLSWithConfiguredCertificateAndKey() async throws {
        let provider = TestProvider()
        try await provider.start()
        defer { provider.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try runChecked("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "\(dir)/key.pem",
                                            "-out", "\(dir)/cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"])
        var c = IssuanceConfiguration.test(issuer: provider.issuer)
        c.tls = .init(certificate: "\(dir)/cert.pem", key: "\(dir)/key.pem")
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file("\(dir)/cert.pem")
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
        let h = try IssuanceHarness(configuration: c, tlsClient: client)
        try await h.start()
        defer { h.stop() }
        XCTAssertEqual(h.base.prefix(8), "https://")
        let answer = try await h.post(token: provider.token(provider.claims()), body: ["public_key": try SSHKeyLine.fresh()])
        XCTAssertEqual(answer.status, 200, answer.text)
        // Plain HTTP to the TLS port gets no answer a client could mistake for success.
        let plain = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(h.port)/healthz"), timeout: .seconds(10))
        XCTAssertNotEqual(plain?.status.code, 200)
        try await client.shutdown()
    }

    func testPlainHTTPIsRefusedOffLoopback() throws {
        var c = IssuanceConfiguration.test(issuer: "http://127.0.0.1:1")
        c.listenHost = "0.0.0.0"
        let h = try IssuanceHarness(configuration: c)
        defer { h.stop() }
        XCTAssertThrowsError(try IssuanceServer.make(issuer: h.issuer, metrics: h.metricsPage, logger: Logger(label: "t"), port: 0)) { error in
            XCTAssertTrue("\(error)".contains("plain HTTP"), "\(error)")
        }
    }
}

enum SSHKeyLine {
    static func fresh() throws -> String {
        try SSHPrivateKey.generate(.ed25519, comment: "tls").publicKey.openSSHLine
    }
}
