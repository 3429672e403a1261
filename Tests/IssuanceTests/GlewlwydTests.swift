import AsyncHTTPClient
import Foundation
import NIOCore
import SSHCertificates
import XCTest

/// The real provider: Debian's glewlwyd on 127.0.0.1 with SQLite, provisioned by
/// `scripts/oidc/glewlwyd_provider.py` (users, groups, a client, the OIDC plugin). A password
/// grant yields an ID token (groups as a JSON array) and a JWT access token (groups as a
/// comma-joined string); each is traded through `gatehouse serve` for a certificate whose scopes
/// follow the groups, and the certificate opens an ssh session through the bastion to sshd.
final class GlewlwydTests: XCTestCase {
    var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/oidc/glewlwyd_provider.py").path
    }

    struct Provider {
        let issuer: String
        let clientID: String
        let clientSecret: String?
        let tokenEndpoint: String
        let scope: String
        let accessTokenAudience: String
        let users: [(name: String, password: String, groups: [String])]
    }

    func startProvider(_ dir: String) throws -> Provider {
        let r = try runBinary("/usr/bin/env", ["python3", script, "start", "--dir", dir])
        guard r.status == 0, let o = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any] else {
            throw NSError(domain: "glewlwyd", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: "provider did not start: \(r.err) \(r.out)"])
        }
        let issuer = try XCTUnwrap(o["issuer"] as? String)
        let users = (o["users"] as? [[String: Any]] ?? []).map {
            (name: $0["username"] as? String ?? $0["name"] as? String ?? "", password: $0["password"] as? String ?? "", groups: $0["groups"] as? [String] ?? [])
        }
        let endpoint: String
        if let e = o["token_endpoint"] as? String { endpoint = e } else {
            let discovery = try runBinary("/usr/bin/curl", ["-sf", issuer + "/.well-known/openid-configuration"])
            let doc = try XCTUnwrap(try JSONSerialization.jsonObject(with: discovery.stdout) as? [String: Any])
            endpoint = try XCTUnwrap(doc["token_endpoint"] as? String)
        }
        return Provider(issuer: issuer, clientID: try XCTUnwrap(o["client_id"] as? String), clientSecret: o["client_secret"] as? String,
                        tokenEndpoint: endpoint, scope: o["scope"] as? String ?? "openid",
                        accessTokenAudience: o["access_token_audience"] as? String ?? o["client_id"] as? String ?? "", users: users)
    }

    /// Resource-owner password grant: {access_token, id_token}.
    func passwordGrant(_ p: Provider, user: String, password: String) throws -> [String: Any] {
        var args = ["-sS", "-X", "POST", p.tokenEndpoint, "--data-urlencode", "grant_type=password", "--data-urlencode", "username=\(user)",
                    "--data-urlencode", "password=\(password)", "--data-urlencode", "scope=\(p.scope)"]
        if let secret = p.clientSecret { args += ["-u", "\(p.clientID):\(secret)"] } else { args += ["--data-urlencode", "client_id=\(p.clientID)"] }
        let r = try runBinary("/usr/bin/curl", args)
        guard let o = try? JSONSerialization.jsonObject(with: r.stdout) as? [String: Any], o["access_token"] != nil else {
            throw NSError(domain: "glewlwyd", code: 2, userInfo: [NSLocalizedDescriptionKey: "password grant failed: \(r.out) \(r.err)"])
        }
        return o
    }

    func testIDTokenAndAccessTokenFromGlewlwydBothOpenASessionWithTheRightScopes() throws {
        guard FileManager.default.fileExists(atPath: script) else {
            throw XCTSkip("\(script) is not in this tree yet (it comes with the Python client's branch)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-glewlwyd-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let p = try startProvider(dir)
        defer {
            _ = try? runBinary("/usr/bin/env", ["python3", script, "stop", "--dir", dir])
            try? FileManager.default.removeItem(atPath: dir)
        }
        // glewlwyd's access tokens name the requested scopes (space-joined) as `aud`, its ID
        // tokens the client id: both are configured, as an operator would for glewlwyd.
        let e2e = try ServeEndToEnd(issuers: """
            - issuer: \(p.issuer)
              audiences: ["\(p.clientID)", "\(p.accessTokenAudience)"]
              token_type: any
              algorithms: [RS256, ES256, EdDSA]
        """)
        defer { e2e.stop() }
        let user = try XCTUnwrap(p.users.first { $0.groups.contains("ops") } ?? p.users.first, "the provider describes no user")
        let tokens = try passwordGrant(p, user: user.name, password: user.password)
        let idToken = try XCTUnwrap(tokens["id_token"] as? String, "no id_token in \(tokens.keys.sorted())")
        let accessToken = try XCTUnwrap(tokens["access_token"] as? String)
        let expected = Set(user.groups.flatMap { ["ops": ["ops"], "dev": ["dev-read"], "admin": ["ops", "dev-read"]][$0] ?? [] })

        for (name, token) in [("id", idToken), ("access", accessToken)] {
            let login = try e2e.loginWith(token: token, key: "agent-\(name)")
            XCTAssertEqual(login.status, 0, "\(name) token: \(login.err)")
            guard login.status == 0 else { continue }
            let cert = try SSHCertificate(openSSHLine: try String(contentsOfFile: e2e.directory.appendingPathComponent("agent-\(name)-cert.pub").path, encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines))
            XCTAssertEqual(Set(try CertificatePermissions(certificate: cert).scopes), expected, "\(name) token")
            if expected.contains("ops") {
                let session = try e2e.ssh(key: "agent-\(name)", ["echo", "glewlwyd", name])
                XCTAssertEqual(session.status, 0, session.err)
                XCTAssertEqual(session.out, "glewlwyd \(name)\n")
            }
        }
        XCTAssertEqual(e2e.terminate(), 0)
    }
}
