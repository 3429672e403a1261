import ConfigurationSupport
import Policy
import XCTest
@testable import Issuance

/// The `issuance:` section: defaults, a full example, and mistakes named by file:line and key.
final class IssuanceConfigurationTests: XCTestCase {
    func parse(_ yaml: String, scopes: Set<String>? = ["ops", "dev-read"]) throws -> IssuanceConfiguration? {
        try IssuanceConfiguration.parse(yaml: yaml, file: "gatehouse.yaml", knownScopes: scopes)
    }

    func refusal(_ yaml: String, scopes: Set<String>? = ["ops", "dev-read"], file: StaticString = #filePath, line: UInt = #line) -> ConfigurationError? {
        do { _ = try parse(yaml, scopes: scopes); XCTFail("accepted", file: file, line: line); return nil } catch let e as ConfigurationError { return e } catch {
            XCTFail("\(error)", file: file, line: line); return nil
        }
    }

    let minimal = """
    issuance:
      issuers:
        - issuer: https://idp.example.com/realms/agents
          audiences: [gatehouse]
      mapping:
        group_scopes: {ops: [ops]}
    """

    func testNoSectionMeansNoListener() throws {
        XCTAssertNil(try parse("listen: [\"127.0.0.1:2222\"]\n"))
    }

    func testMinimalSectionGetsSafeDefaults() throws {
        let c = try XCTUnwrap(try parse(minimal))
        XCTAssertEqual(c.listenHost, "127.0.0.1")
        XCTAssertEqual(c.listenPort, 8022)
        XCTAssertNil(c.tls)
        XCTAssertEqual(c.issuers[0].algorithms, [.rs256, .es256, .edDSA])
        XCTAssertEqual(c.issuers[0].tokenType, .idToken)
        XCTAssertEqual(c.maxTTL, 3600)
        XCTAssertEqual(c.mapping.groupScopes["ops"], ["ops"])
    }

    func testFullSection() throws {
        let c = try XCTUnwrap(try parse("""
        issuance:
          listen: 127.0.0.1:9443
          max_ttl: 30m
          default_ttl: 5m
          rate_limit: {per_minute: 120, burst: 20}
          mapping:
            key_id: "kc:{preferred_username}"
            principals: ["{sub}", agent]
            groups_claim: realm_access.roles
            group_scopes:
              ops: [ops]
              devs: dev-read
          issuers:
            - issuer: http://127.0.0.1:5555/api/oidc
              audience: gatehouse-cli
              algorithms: [RS256]
              token_type: access_token
              skew: 30s
              jti_replay: true
              mapping:
                groups_claim: '"https://example.com/groups"'
                scopes_claim: scope
                allowed_scopes: [ops]
        """))
        XCTAssertEqual(c.listenPort, 9443)
        XCTAssertEqual(c.maxTTL, 1800)
        XCTAssertEqual(c.defaultTTL, 300)
        XCTAssertEqual(c.rateLimit, .init(perMinute: 120, burst: 20))
        XCTAssertEqual(c.mapping.groupsClaim.segments, ["realm_access", "roles"])
        XCTAssertEqual(c.mapping.groupScopes["devs"], ["dev-read"])
        let i = c.issuers[0]
        XCTAssertEqual(i.audiences, ["gatehouse-cli"])
        XCTAssertEqual(i.algorithms, [.rs256])
        XCTAssertEqual(i.tokenType, .accessToken)
        XCTAssertEqual(i.skewSeconds, 30)
        XCTAssertTrue(i.jtiReplay)
        XCTAssertEqual(i.mapping?.groupsClaim.segments, ["https://example.com/groups"])
        XCTAssertEqual(i.mapping?.allowedScopes, ["ops"])
    }

    func testMistakesNameFileLineAndKey() {
        let none = refusal(minimal.replacingOccurrences(of: "audiences: [gatehouse]", with: "audiences: [gatehouse]\n      algorithms: [RS256, none]"))
        XCTAssertEqual(none?.key, "issuance.issuers[0].algorithms")
        XCTAssertEqual(none?.line, 5)
        XCTAssertTrue(none?.description.hasPrefix("gatehouse.yaml:5:") ?? false, none?.description ?? "")
        XCTAssertTrue(none?.message.contains("never") ?? false)
        let hmac = refusal(minimal.replacingOccurrences(of: "audiences: [gatehouse]", with: "audiences: [gatehouse]\n      algorithms: [HS256]"))
        XCTAssertTrue(hmac?.message.contains("HMAC") ?? false, hmac?.description ?? "")
        XCTAssertEqual(refusal(minimal.replacingOccurrences(of: "      audiences: [gatehouse]\n", with: ""))?.key, "issuance.issuers[0].audiences")
        XCTAssertEqual(refusal(minimal.replacingOccurrences(of: "https://idp", with: "http://idp"))?.key, "issuance.issuers[0].issuer")
        XCTAssertEqual(refusal(minimal + "\n  listen: 0.0.0.0:8022")?.key, "issuance.listen")
        XCTAssertEqual(refusal(minimal + "\n  bogus: 1")?.key, "issuance.bogus")
        XCTAssertEqual(refusal(minimal.replacingOccurrences(of: "[ops]}", with: "[nonexistent]}"))?.key, "issuance.mapping.group_scopes.ops")
        XCTAssertEqual(refusal(minimal + "\n  max_ttl: 10m\n  default_ttl: 1h")?.key, "issuance.default_ttl")
        XCTAssertEqual(refusal(minimal.replacingOccurrences(of: "group_scopes: {ops: [ops]}", with: "key_id: \"{sub\""))?.key, "issuance.mapping.key_id")
        XCTAssertEqual(refusal(minimal + "\n  tls: {certificate: /nonexistent.pem}")?.key, "issuance.tls")
        XCTAssertEqual(refusal("issuance:\n  listen: 127.0.0.1:8022\n")?.key, "issuance.issuers")
    }

    func testClaimPathsAndTemplates() throws {
        let claims: [String: JSONValue] = ["sub": .string("u1"), "realm_access": .object(["roles": .array([.string("ops"), .string("dev")])]),
                                           "groups": .string("a, b,c"), "n": .number(7)]
        XCTAssertEqual(ClaimPath("realm_access.roles").strings(claims), ["ops", "dev"])
        XCTAssertEqual(ClaimPath("groups").strings(claims), ["a", "b", "c"])
        XCTAssertNil(ClaimPath("n").strings(claims))
        XCTAssertNil(ClaimPath("realm_access.nothing").lookup(claims))
        XCTAssertEqual(try ClaimTemplate.parse("x:{sub}:{n}").render(claims).get(), "x:u1:7")
        if case .success = try ClaimTemplate.parse("{email}").render(claims) { XCTFail("a missing claim must fail the template") }
        XCTAssertThrowsError(try ClaimTemplate.parse("{sub"))
    }

    func testMappingGroupsArrayOrCommaStringAndNoEmail() {
        var m = ClaimMapping()
        m.keyID = ClaimTemplate("oidc:{sub}")
        m.groupsClaim = ClaimPath("realm_access.roles")
        m.groupScopes = ["ops": ["ops"], "dev": ["dev-read"]]
        let array: [String: JSONValue] = ["sub": .string("svc-1"), "realm_access": .object(["roles": .array([.string("dev"), .string("ops")])])]
        XCTAssertEqual(try m.grant(for: array).get().scopes, ["dev-read", "ops"])
        m.groupsClaim = ClaimPath("groups")
        let joined: [String: JSONValue] = ["sub": .string("svc-1"), "groups": .string("ops,dev")]
        XCTAssertEqual(try m.grant(for: joined).get().scopes, ["dev-read", "ops"])
        XCTAssertEqual(try m.grant(for: joined).get().decidingClaims["groups"], "ops,dev")
        let nothing: [String: JSONValue] = ["sub": .string("svc-1"), "groups": .array([.string("visitors")])]
        guard case .failure(let r) = m.grant(for: nothing) else { return XCTFail() }
        XCTAssertEqual(r.code, .noScopes)
        m.principals = [ClaimTemplate("{email}")]
        guard case .failure(let p) = m.grant(for: joined) else { return XCTFail() }
        XCTAssertEqual(p.check, "principals")
    }

    func testBastionAddressesAreHostPortAndNamedWhenWrong() throws {
        XCTAssertEqual(try XCTUnwrap(try parse(minimal + "\n  bastion_addresses: [\"ssh.example.com:22\", \"[2001:db8::1]:2222\"]\n")).bastionAddresses,
                       ["ssh.example.com:22", "[2001:db8::1]:2222"])
        XCTAssertEqual(try XCTUnwrap(try parse(minimal)).bastionAddresses, [], "empty: serve fills in its listen addresses")
        let e = refusal(minimal + "\n  bastion_addresses: [\"ssh.example.com\"]\n")
        XCTAssertEqual(e?.key, "issuance.bastion_addresses[0]")
        XCTAssertEqual(e?.line, 7)
    }
}
