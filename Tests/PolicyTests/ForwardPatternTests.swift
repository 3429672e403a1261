import ConfigurationSupport
import XCTest
@testable import Policy

final class ForwardPatternTests: XCTestCase {
    func testParsesHostsAndPorts() throws {
        let exact = try ForwardPattern("127.0.0.1:5432")
        XCTAssertTrue(exact.matches(host: "127.0.0.1", port: 5432))
        XCTAssertFalse(exact.matches(host: "127.0.0.1", port: 5433))
        XCTAssertFalse(exact.matches(host: "localhost", port: 5432), "names are not resolved: localhost is another destination")
        let range = try ForwardPattern("DB-*.internal:8000-8099")
        XCTAssertTrue(range.matches(host: "db-7.internal", port: 8000))
        XCTAssertTrue(range.matches(host: "DB-7.INTERNAL", port: 8099))
        XCTAssertFalse(range.matches(host: "db-7.internal", port: 8100))
        XCTAssertFalse(range.matches(host: "db-7.internal.evil", port: 8000))
        let v6 = try ForwardPattern("[::1]:*")
        XCTAssertTrue(v6.matches(host: "::1", port: 0))
        XCTAssertTrue(v6.matches(host: "::1", port: 65535))
    }

    func testRefusesMalformedPatterns() {
        let cases: [(String, ForwardPattern.ParseError)] = [
            ("127.0.0.1", .missingPort("127.0.0.1")), (":22", .emptyHost), ("host:", .badPort("")), ("host:65536", .badPort("65536")),
            ("host:90-80", .badPort("90-80")), ("host:+1", .badPort("+1")), ("::1:22", .badHost("::1 (write an IPv6 address in brackets)")),
            ("[::1]22", .missingPort("[::1]22")), ("a b:22", .badHost("a b")), ("h\u{0430}st:22", .badHost("h\u{0430}st")),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try ForwardPattern(text), text) { XCTAssertEqual($0 as? ForwardPattern.ParseError, expected, text) }
        }
    }

    func testLocalAndRemoteListsAreSeparate() throws {
        let policy = try PolicySet.parse(yaml: """
        scopes:
          tunnels:
            targets: [db-01]
            rights: [forward-local, forward-remote]
            forwards: ["127.0.0.1:5432"]
            remote_forwards: ["127.0.0.1:9000-9009"]
        """, file: "g.yaml")
        let db = TargetDescriptor(name: "db-01")
        XCTAssertEqual(policy.decide(Entitlement(scopes: ["tunnels"]), target: db, request: .forwardLocal(host: "127.0.0.1", port: 5432)), .allow(scope: "tunnels", command: nil))
        XCTAssertEqual(policy.decide(Entitlement(scopes: ["tunnels"]), target: db, request: .forwardRemote(host: "127.0.0.1", port: 9005)), .allow(scope: "tunnels", command: nil))
        guard case .deny(let denial) = policy.decide(Entitlement(scopes: ["tunnels"]), target: db, request: .forwardRemote(host: "127.0.0.1", port: 5432)) else { return XCTFail("allowed") }
        XCTAssertEqual(denial.rule, "remote_forwards")
        XCTAssertEqual(denial.acceptedPatterns, ["127.0.0.1:9000-9009"])
        guard case .deny(let local) = policy.decide(Entitlement(scopes: ["tunnels"]), target: db, request: .forwardLocal(host: "10.0.0.1", port: 5432)) else { return XCTFail("allowed") }
        XCTAssertEqual(local.rule, "forwards")
        XCTAssertTrue(local.message.contains("forwarding to 10.0.0.1:5432 is not allowed"), local.message)
    }

    func testListAndRightMustGoTogether() {
        func error(_ yaml: String) -> ConfigurationError? {
            do { _ = try PolicySet.parse(yaml: yaml, file: "g.yaml"); return nil } catch { return error as? ConfigurationError }
        }
        let noList = error("scopes:\n  t:\n    targets: [a]\n    rights: [forward-local]\n")
        XCTAssertEqual(noList?.line, 2)
        XCTAssertTrue(noList?.message.contains("grants forward-local but lists no forwards") ?? false, "\(String(describing: noList))")
        let noRight = error("scopes:\n  t:\n    targets: [a]\n    rights: [shell]\n    remote_forwards: [\"127.0.0.1:80\"]\n")
        XCTAssertEqual(noRight?.line, 5)
        XCTAssertTrue(noRight?.message.contains("can never match") ?? false, "\(String(describing: noRight))")
        let bad = error("scopes:\n  t:\n    targets: [a]\n    rights: [forward-local]\n    forwards:\n      - \"127.0.0.1:99999\"\n")
        XCTAssertEqual(bad?.line, 6)
        XCTAssertEqual(bad?.key, "scopes.t.forwards[0]")
        let stray = error("scopes:\n  t:\n    targets: [a]\n    rights: [shell]\n    commands: [\"uptime\"]\n")
        XCTAssertTrue(stray?.message.contains("does not grant exec") ?? false, "\(String(describing: stray))")
    }
}
