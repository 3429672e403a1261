import Audit
import Crypto
import Foundation
import SSHCertificates
import XCTest
@testable import Issuance

/// Every hostile token is refused over real HTTP on loopback, with the check that refused it.
/// The provider is the test's own (TestProvider: its own keys, discovery and JWKS on loopback).
final class HostileTokenTests: XCTestCase {
    nonisolated(unsafe) static var provider: TestProvider!
    nonisolated(unsafe) static var harness: IssuanceHarness!
    var provider: TestProvider { Self.provider }
    var h: IssuanceHarness { Self.harness }
    let agentKey = try! SSHPrivateKey.generate(.ed25519, comment: "agent").publicKey.openSSHLine

    override class func setUp() {
        super.setUp()
        let ready = DispatchSemaphore(value: 0)
        Task {
            provider = TestProvider()
            try! await provider.start()
            harness = try! IssuanceHarness(configuration: .test(issuer: provider.issuer) { $0.skewSeconds = 30 })
            try! await harness.start()
            ready.signal()
        }
        ready.wait()
    }

    override class func tearDown() {
        harness.stop()
        provider.stop()
        super.tearDown()
    }

    func refused(_ token: String?, status: Int = 401, error: String, check: String, body: Any? = nil,
                 file: StaticString = #filePath, line: UInt = #line) async throws {
        let answer = try await h.post(token: token, body: body ?? ["public_key": agentKey])
        XCTAssertEqual(answer.status, status, answer.text, file: file, line: line)
        XCTAssertEqual(answer.error, error, answer.text, file: file, line: line)
        XCTAssertEqual(answer.check, check, answer.text, file: file, line: line)
        XCTAssertFalse((answer.json["reason"] as? String ?? "").isEmpty, "every refusal explains itself", file: file, line: line)
        if status == 401 {
            XCTAssertTrue(answer.headers.first(name: "WWW-Authenticate")?.hasPrefix("Bearer error=\"invalid_token\"") ?? false, file: file, line: line)
        }
    }

    // MARK: Accepted

    func testEachAllowedAlgorithmIssuesACertificateWithScopesAndContext() async throws {
        for signer in [TestProvider.Signer.rsa, .ec, .ed] {
            let claims = provider.claims(groups: ["ops", "unrelated"])
            let answer = try await h.post(token: provider.token(claims, signer: signer),
                                          body: ["public_key": agentKey, "ttl": 300, "context": ["task_id": "t-42", "prompt": "restart nginx", "reason": "deploy"]])
            XCTAssertEqual(answer.status, 200, answer.text)
            let cert = try SSHCertificate(openSSHLine: answer.json["certificate"] as! String)
            XCTAssertEqual(cert.signatureKey, h.store.signingKey(.user).publicKey)
            XCTAssertNoThrow(try cert.verifySignature())
            XCTAssertEqual(cert.keyID, "oidc:agent-7")
            XCTAssertEqual(cert.principals, ["agent-7", "agent"])
            let permissions = try CertificatePermissions(certificate: cert)
            XCTAssertEqual(permissions.scopes, ["ops"])
            XCTAssertTrue(permissions.pty)
            let context = try XCTUnwrap(permissions.context)
            XCTAssertEqual(context, answer.json["context"] as? String)
            let parsed = try JSONSerialization.jsonObject(with: Data(context.utf8)) as! [String: String]
            XCTAssertEqual(parsed["task_id"], "t-42")
            XCTAssertEqual(parsed["prompt_sha256"], SHA256.hash(data: Data("restart nginx".utf8)).map { String(format: "%02x", $0) }.joined())
            XCTAssertNil(parsed["prompt"], "the prompt itself is never stored")
            let decoded = try JSONDecoder().decode(IssuanceResponse.self, from: Data(answer.body))
            XCTAssertEqual(decoded.serial, cert.serial)
            XCTAssertEqual(decoded.scopes, ["ops"])
            XCTAssertEqual(decoded.principals, cert.principals)
            XCTAssertEqual(decoded.valid_after, cert.validAfter)
            XCTAssertEqual(decoded.valid_before, cert.validBefore)
            XCTAssertEqual(decoded.bastion_addresses, ["bastion.example.com:2222", "[::1]:2200"], "where to connect with it")
            XCTAssertLessThanOrEqual(cert.validBefore - UInt64(Date().timeIntervalSince1970), 300)
        }
    }

    func testLifetimeIsCappedByTheTokensRemainingLife() async throws {
        let answer = try await h.post(token: provider.token(provider.claims(lifetime: 45)), body: ["public_key": agentKey, "ttl": 3000])
        XCTAssertEqual(answer.status, 200, answer.text)
        let exp = provider.claims(lifetime: 45)["exp"] as! Int
        XCTAssertLessThanOrEqual(try JSONDecoder().decode(IssuanceResponse.self, from: Data(answer.body)).valid_before, UInt64(exp))
    }

    // MARK: Refused

    func testUnsignedAlgNone() async throws {
        try await refused(provider.token(provider.claims(), signer: .none), error: "alg_not_allowed", check: "alg")
        // A "none" token with a forged signature part too.
        try await refused(provider.token(provider.claims(), signer: .ec, alg: "none"), error: "alg_not_allowed", check: "alg")
    }

    func testHS256SignedWithTheRSAPublicKey() async throws {
        try await refused(provider.token(provider.claims(), signer: .hmac(provider.rsaPublicPEM)), error: "alg_not_allowed", check: "alg")
    }

    func testAlgorithmThatDoesNotMatchTheKeyType() async throws {
        // ES256 header naming the RSA key: refused before any cryptography.
        try await refused(provider.token(provider.claims(), signer: .ec, kid: "rsa-1"), error: "alg_not_allowed", check: "alg")
    }

    func testWrongIssuer() async throws {
        var claims = provider.claims()
        claims["iss"] = "http://127.0.0.1:1/evil"
        try await refused(provider.token(claims), error: "bad_issuer", check: "iss")
    }

    func testWrongAudience() async throws {
        try await refused(provider.token(provider.claims(audience: "some-other-api")), error: "bad_audience", check: "aud")
        try await refused(provider.token(provider.claims(audience: ["some-other-api", "gatehouse"])), error: "bad_audience", check: "azp")
    }

    func testExpired() async throws {
        let now = Int(Date().timeIntervalSince1970)
        try await refused(provider.token(provider.claims(extra: ["iat": now - 600, "exp": now - 120])), error: "token_expired", check: "exp")
    }

    func testNotYetValid() async throws {
        let now = Int(Date().timeIntervalSince1970)
        try await refused(provider.token(provider.claims(extra: ["nbf": now + 600])), error: "token_not_yet_valid", check: "nbf")
    }

    func testIssuedInTheFuture() async throws {
        let now = Int(Date().timeIntervalSince1970)
        try await refused(provider.token(provider.claims(extra: ["iat": now + 600, "exp": now + 1200])), error: "bad_issued_at", check: "iat")
    }

    func testUnknownKidRefreshesKeysAtMostOncePerInterval() async throws {
        let before = await h.issuer.verifier.keyFetchCount(issuer: provider.issuer)
        try await refused(provider.token(provider.claims(), kid: "nobody-1"), error: "unknown_kid", check: "kid")
        try await refused(provider.token(provider.claims(), kid: "nobody-2"), error: "unknown_kid", check: "kid")
        try await refused(provider.token(provider.claims(), kid: "nobody-3"), error: "unknown_kid", check: "kid")
        let after = await h.issuer.verifier.keyFetchCount(issuer: provider.issuer)
        XCTAssertLessThanOrEqual(after - before, 1, "unknown kids must not each trigger a JWKS fetch")
    }

    func testSignatureFromAKeyNotInTheJWKS() async throws {
        try await refused(provider.token(provider.claims(), signer: .outsider), error: "bad_signature", check: "signature")
    }

    func testTamperedPayload() async throws {
        let good = provider.token(provider.claims(groups: ["dev"]))
        let parts = good.split(separator: ".").map(String.init)
        let forged = [parts[0], b64(try JSONSerialization.data(withJSONObject: provider.claims(groups: ["ops"]))), parts[2]].joined(separator: ".")
        try await refused(forged, error: "bad_signature", check: "signature")
    }

    func testGroupsThatMapToNoScope() async throws {
        try await refused(provider.token(provider.claims(groups: ["interns", "visitors"])), status: 403, error: "no_scopes", check: "scopes")
        try await refused(provider.token(provider.claims(extra: ["groups": NSNull()])), status: 403, error: "no_scopes", check: "scopes")
    }

    func testAccessTokenWhereAnIDTokenIsRequired() async throws {
        try await refused(provider.token(provider.claims(), typ: "at+jwt"), error: "wrong_token_type", check: "typ")
    }

    func testMissingAndMalformedTokens() async throws {
        try await refused(nil, error: "missing_token", check: "authorization")
        try await refused("not-a-jwt", error: "malformed_token", check: "format")
        try await refused("a.b.c.d.e", error: "malformed_token", check: "format")
        try await refused("e30.e30.!!!", error: "malformed_token", check: "signature")
    }

    /// Two `sub` members: parsers that keep the first and the last would see different
    /// subjects, so the token is refused outright (even with a valid signature over it).
    func testDuplicateClaimIsRefused() async throws {
        let now = Int(Date().timeIntervalSince1970)
        let payload = "{\"iss\":\"\(provider.issuer)\",\"sub\":\"alice\",\"sub\":\"root\",\"aud\":\"gatehouse\",\"iat\":\(now),\"exp\":\(now + 600),\"groups\":[\"ops\"]}"
        let input = b64(Data("{\"alg\":\"ES256\",\"kid\":\"ec-1\"}".utf8)) + "." + b64(Data(payload.utf8))
        let signature = try provider.ec.signature(for: Data(input.utf8)).rawRepresentation
        try await refused(input + "." + b64(signature), error: "malformed_token", check: "payload")
    }

    func testNonCanonicalBase64IsRefused() async throws {
        let good = provider.token(provider.claims())
        // "e30" is {} ; "e31" decodes to the same bytes with non-zero padding bits.
        try await refused("e31." + good.split(separator: ".")[1] + "." + good.split(separator: ".")[2], error: "malformed_token", check: "header")
    }

    func testMalformedBody() async throws {
        let token = provider.token(provider.claims())
        try await refused(token, status: 400, error: "bad_request", check: "body", body: Data("{not json".utf8))
        try await refused(token, status: 400, error: "bad_request", check: "body", body: ["public_key": agentKey, "admin": true])
        try await refused(token, status: 400, error: "bad_request", check: "public_key", body: ["ttl": 60])
        try await refused(token, status: 400, error: "bad_request", check: "ttl", body: ["public_key": agentKey, "ttl": -5])
        try await refused(token, status: 400, error: "bad_request", check: "context", body: ["public_key": agentKey, "context": ["task_id": "x", "sudo": "yes"]])
        try await refused(token, status: 400, error: "bad_request", check: "context.prompt_sha256",
                          body: ["public_key": agentKey, "context": ["prompt": "a", "prompt_sha256": String(repeating: "0", count: 64)]])
    }

    func testPublicKeyThatIsNotAKey() async throws {
        let token = provider.token(provider.claims())
        for junk in ["hello world", "ssh-ed25519 AAAA", "ssh-ed25519 " + Data(repeating: 7, count: 51).base64EncodedString(), ""] {
            try await refused(token, status: 400, error: "bad_public_key", check: "public_key", body: ["public_key": junk])
        }
        // A certificate is not a plain key either.
        let answer = try await h.post(token: token, body: ["public_key": agentKey])
        try await refused(provider.token(provider.claims()), status: 400, error: "bad_public_key", check: "public_key", body: ["public_key": answer.json["certificate"] as! String])
    }

    func testOversizedTokenGets413() async throws {
        let big = provider.token(provider.claims(extra: ["padding": String(repeating: "x", count: 20_000)]))
        try await refused(big, status: 413, error: "too_large", check: "authorization")
    }

    func testOversizedBodyGets413() async throws {
        let body = Data(("{\"public_key\": \"" + String(repeating: "A", count: 1 << 20) + "\"}").utf8)
        let answer = try await h.post(token: provider.token(provider.claims()), body: body)
        XCTAssertEqual(answer.status, 413, answer.text)
        XCTAssertEqual(answer.error, "too_large")
    }

    /// A 1 MiB bearer token written raw over a socket: the server answers with an error (the
    /// HTTP parser's header limit) or closes, and never hangs; it keeps serving afterwards.
    func testOneMebibyteTokenOverARawSocket() async throws {
        let reply = try RawHTTP.exchange(port: h.port, request: "POST /v1/certificates HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                                         + String(repeating: "A", count: 1 << 20) + "\r\nContent-Length: 2\r\n\r\n{}")
        if let status = reply.status {
            XCTAssertTrue([400, 413, 431].contains(status), "status \(status)")
        } else {
            XCTAssertTrue(reply.closed, "the connection must be answered or closed, not left hanging")
        }
        let health = try await h.get("/healthz")
        XCTAssertEqual(health.status, 200)
    }

    func testReplayedJTIIsRefusedWhenConfigured() async throws {
        let replayHarness = try IssuanceHarness(configuration: .test(issuer: provider.issuer) { $0.jtiReplay = true })
        try await replayHarness.start()
        defer { replayHarness.stop() }
        let token = provider.token(provider.claims())
        let first = try await replayHarness.post(token: token, body: ["public_key": agentKey])
        XCTAssertEqual(first.status, 200, first.text)
        let second = try await replayHarness.post(token: token, body: ["public_key": agentKey])
        XCTAssertEqual(second.error, "token_replayed", second.text)
        XCTAssertEqual(second.check, "jti")
        var noJTI = provider.claims()
        noJTI["jti"] = nil
        let third = try await replayHarness.post(token: provider.token(noJTI), body: ["public_key": agentKey])
        XCTAssertEqual(third.error, "missing_claim", third.text)
        XCTAssertEqual(third.check, "jti")
    }

    func testRateLimitPerSubject() async throws {
        var c = IssuanceConfiguration.test(issuer: provider.issuer)
        c.rateLimit = .init(perMinute: 1, burst: 2)
        let limited = try IssuanceHarness(configuration: c)
        try await limited.start()
        defer { limited.stop() }
        for _ in 0..<2 {
            let ok = try await limited.post(token: provider.token(provider.claims(sub: "busy")), body: ["public_key": agentKey])
            XCTAssertEqual(ok.status, 200, ok.text)
        }
        let third = try await limited.post(token: provider.token(provider.claims(sub: "busy")), body: ["public_key": agentKey])
        XCTAssertEqual(third.status, 429, third.text)
        XCTAssertEqual(third.error, "rate_limited")
        XCTAssertNotNil(third.headers.first(name: "Retry-After"))
        let other = try await limited.post(token: provider.token(provider.claims(sub: "calm")), body: ["public_key": agentKey])
        XCTAssertEqual(other.status, 200, "another subject has its own budget")
    }

    func testKeyRotationAtTheProviderIsPickedUpOnUnknownKid() async throws {
        let rotating = TestProvider()
        try await rotating.start()
        defer { rotating.stop() }
        let harness = try IssuanceHarness(configuration: .test(issuer: rotating.issuer) { $0.refreshIntervalSeconds = 0 })
        try await harness.start()
        defer { harness.stop() }
        let before = try await harness.post(token: rotating.token(rotating.claims(), signer: .rotated), body: ["public_key": agentKey])
        XCTAssertEqual(before.error, "unknown_kid")
        rotating.publishRotatedKey()
        let after = try await harness.post(token: rotating.token(rotating.claims(), signer: .rotated), body: ["public_key": agentKey])
        XCTAssertEqual(after.status, 200, after.text)
    }

    func testEveryDecisionIsAuditedWithItsClaimsAndTheChainVerifies() async throws {
        let ok = try await h.post(token: provider.token(provider.claims(sub: "audited", groups: ["dev"])),
                                  body: ["public_key": agentKey, "context": ["task_id": "audit-1"]])
        XCTAssertEqual(ok.status, 200, ok.text)
        _ = try await h.post(token: provider.token(provider.claims(sub: "audited-no", groups: ["visitors"])), body: ["public_key": agentKey])
        let records = try h.auditRecords()
        let issued = try XCTUnwrap(records.last { $0.event.action == "cert.issue" && $0.event.details["sub"] == "audited" })
        XCTAssertEqual(issued.event.outcome, .success)
        XCTAssertEqual(issued.event.details["claim.groups"], "dev")
        XCTAssertEqual(issued.event.details["scopes"], "dev-read")
        XCTAssertEqual(issued.event.details["serial"], String(try JSONDecoder().decode(IssuanceResponse.self, from: Data(ok.body)).serial))
        XCTAssertTrue(issued.event.details["context"]?.contains("audit-1") ?? false)
        let refused = try XCTUnwrap(records.last { $0.event.details["sub"] == "audited-no" })
        XCTAssertEqual(refused.event.outcome, .refused)
        XCTAssertEqual(refused.event.details["code"], "no_scopes")
        XCTAssertEqual(refused.event.details["claim.groups"], "[visitors]")
        guard case .intact = try AuditLog.verify(path: h.store.audit.location) else { return XCTFail("the audit chain must stay intact under group commit") }
    }

    func testPublishedKeysKRLHealthAndMetrics() async throws {
        let user = try await h.get("/v1/ca/user")
        XCTAssertEqual(user.text, h.store.trustedPublicKeys(.user).map { "\($0.openSSHLine) gatehouse-user-ca" }.joined(separator: "\n") + "\n")
        let host = try await h.get("/v1/ca/host?format=known_hosts")
        XCTAssertTrue(host.text.hasPrefix("@cert-authority * ssh-"), host.text)
        let target = try await h.get("/v1/ca/target")
        XCTAssertEqual(try SSHPublicKey(openSSHLine: target.text.trimmingCharacters(in: .newlines)), h.store.trustedPublicKeys(.target)[0])
        let bad = try await h.get("/v1/ca/user?format=known_hosts")
        XCTAssertEqual(bad.status, 400)
        try h.store.revoke(.serial(1234, ca: .user), actor: "test")
        let krl = try await h.get("/v1/krl")
        let parsed = try KeyRevocationList(binary: krl.body)
        XCTAssertEqual(parsed.version, 1)
        let health = try await h.get("/healthz")
        XCTAssertEqual(health.text, "{\"status\":\"ok\",\"checks\":{}}\n")
        // The harness is shared by this class's tests, so count what these two requests add.
        let before = try PrometheusText(parsing: try await h.get("/metrics").text)
        _ = try await h.post(token: provider.token(provider.claims()), body: ["public_key": agentKey])
        _ = try await h.post(token: provider.token(provider.claims(sub: "nobody", groups: ["visitors"])), body: ["public_key": agentKey])
        let metrics = try await h.get("/metrics")
        XCTAssertEqual(metrics.headers["content-type"].first, "text/plain; version=0.0.4; charset=utf-8")
        let page = try PrometheusText(parsing: metrics.text)
        func added(_ name: String, _ labels: [String: String] = [:]) -> Double? {
            guard let now = page.value(name, labels) else { return nil }
            return now - (before.value(name, labels) ?? 0)
        }
        XCTAssertEqual(added("gatehouse_certificates_issued_total"), 1, metrics.text)
        XCTAssertEqual(added("gatehouse_issuance_refusals_total", ["reason": "no_scopes"]), 1)
        XCTAssertEqual(added("gatehouse_issuance_refusals_total", ["reason": "token_expired"]), 0)
        XCTAssertEqual(added("gatehouse_issuance_request_seconds_count"), 2)
        XCTAssertEqual(added("gatehouse_issuance_request_seconds_bucket", ["le": "2.5"]), 2)
        XCTAssertEqual(page.type(ofFamily: "gatehouse_certificates_issued"), "counter")
        XCTAssertEqual(page.type(ofFamily: "gatehouse_issuance_request_seconds"), "histogram")
    }
}
