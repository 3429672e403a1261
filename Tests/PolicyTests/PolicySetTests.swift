import Foundation
import XCTest
@testable import Policy

final class PolicySetTests: XCTestCase {
    let web = TargetDescriptor(name: "web-01", labels: ["env": "prod"])
    let db = TargetDescriptor(name: "db-01", labels: ["env": "prod"])
    let stage = TargetDescriptor(name: "web-stage", labels: ["env": "staging"])

    lazy var policy = PolicySet([
        Scope(name: "ops-read", targets: [.init("web-*")], login: "deploy", rights: [.exec],
              commands: [try! CommandPattern("systemctl status {unit: /[a-z0-9@._-]+/}"), try! CommandPattern("uptime")]),
        Scope(name: "prod-logs", targets: [.init("env=prod")], rights: [.exec], commands: [try! CommandPattern("journalctl -u {unit: nginx|postgres} -n {n: 1..1000}")]),
        Scope(name: "break-glass", targets: [.init("web-01")], login: "root", rights: Set(Right.allCases),
              environment: ["LANG"], forwards: [try! ForwardPattern("127.0.0.1:5432")], remoteForwards: [try! ForwardPattern("127.0.0.1:5432")],
              disclosePatterns: false),
    ])

    func denial(_ d: PolicyDecision, file: StaticString = #filePath, line: UInt = #line) -> PolicyDenial? {
        if case .deny(let x) = d { return x }
        XCTFail("allowed", file: file, line: line)
        return nil
    }

    func testScopeUnionAndTargets() {
        XCTAssertEqual(policy.decide(Entitlement(scopes: ["ops-read", "prod-logs"]), target: web, request: .exec("journalctl -u nginx -n 10")), .allow(scope: "prod-logs", command: "journalctl -u nginx -n 10"))
        XCTAssertEqual(policy.decide(Entitlement(scopes: ["ops-read", "prod-logs"]), target: web, request: .exec("uptime")), .allow(scope: "ops-read", command: "uptime"))
        XCTAssertEqual(denial(policy.decide(Entitlement(scopes: ["ops-read"]), target: db, request: .exec("uptime")))?.code, .noScope)
        XCTAssertEqual(denial(policy.decide(Entitlement(scopes: ["prod-logs"]), target: stage, request: .exec("uptime")))?.code, .noScope)
        XCTAssertEqual(policy.login(Entitlement(scopes: ["prod-logs", "ops-read"]), target: web), "deploy")
    }

    func testUnknownScopeGrantsNothingAndIsReported() throws {
        let d = try XCTUnwrap(denial(policy.decide(Entitlement(scopes: ["no-such", "ops-read"]), target: web, request: .exec("rm -rf /"))))
        XCTAssertEqual(d.unknownScopes, ["no-such"])
        XCTAssertEqual(d.scopesTried, ["ops-read"])
        XCTAssertEqual(d.rule, "no-matching-pattern")
        XCTAssertEqual(d.acceptedPatterns, ["systemctl status {unit: /[a-z0-9@._-]+/}", "uptime"])
    }

    func testDenialMessageCarriesParsableJSON() throws {
        let d = try XCTUnwrap(denial(policy.decide(Entitlement(scopes: ["ops-read"]), target: web, request: .exec("uptime; id"))))
        let line = try XCTUnwrap(d.message.split(separator: "\n").first { $0.hasPrefix("gatehouse-denial: ") })
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.dropFirst("gatehouse-denial: ".count).utf8)) as? [String: Any])
        XCTAssertEqual(json["rule"] as? String, "shell-operator")
        XCTAssertEqual(json["code"] as? String, "command-refused")
        XCTAssertEqual(json["exit_status"] as? Int, 77)
        XCTAssertEqual(json["scopes_tried"] as? [String], ["ops-read"])
        XCTAssertTrue(d.message.hasPrefix("gatehouse: denied: shell operator \";\" (at byte 6)."), d.message)
    }

    /// One test per right: granted by break-glass on web-01, refused by ops-read.
    func testEachRightIsGrantedAndRefusedOnItsOwn() {
        let requests: [(ChannelRequest, Right)] = [
            (.shell, .shell), (.pty(term: "xterm"), .pty), (.subsystem("sftp"), .sftp), (.exec("scp -t /tmp"), .scp),
            (.forwardLocal(host: "127.0.0.1", port: 5432), .forwardLocal), (.forwardRemote(host: "127.0.0.1", port: 5432), .forwardRemote),
            (.agentForwarding, .agentForwarding), (.x11, .x11), (.env(name: "LANG"), .env),
        ]
        for (request, right) in requests {
            guard case .allow(let scope, _) = policy.decide(Entitlement(scopes: ["break-glass"]), target: web, request: request) else { XCTFail("\(right) not granted"); continue }
            XCTAssertEqual(scope, "break-glass")
            let refused = denial(policy.decide(Entitlement(scopes: ["ops-read"]), target: web, request: request))
            XCTAssertEqual(refused?.code, .rightNotGranted, "\(right)")
            XCTAssertTrue(refused?.reason.contains(right.rawValue) ?? false)
        }
    }

    func testGrantedRightsStillCheckTheirObject() {
        XCTAssertEqual(denial(policy.decide(Entitlement(scopes: ["break-glass"]), target: web, request: .env(name: "LD_PRELOAD")))?.code, .notAllowed)
        XCTAssertEqual(denial(policy.decide(Entitlement(scopes: ["break-glass"]), target: web, request: .forwardLocal(host: "10.0.0.1", port: 22)))?.code, .notAllowed)
        XCTAssertEqual(denial(policy.decide(Entitlement(scopes: ["break-glass"]), target: web, request: .subsystem("shell-helper")))?.code, .notAllowed)
        XCTAssertEqual(denial(policy.decide(Entitlement(scopes: ["break-glass"]), target: web, request: .exec("scp -t /tmp; id")))?.rule, "shell-operator")
        // Patterns of a scope that does not disclose them are never listed.
        XCTAssertEqual(denial(policy.decide(Entitlement(scopes: ["break-glass"]), target: web, request: .exec("id")))?.acceptedPatterns, [])
    }
}
