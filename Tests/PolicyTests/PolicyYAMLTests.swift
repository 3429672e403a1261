import ConfigurationSupport
import XCTest
@testable import Policy

final class PolicyYAMLTests: XCTestCase {
    let valid = """
    listen: 127.0.0.1:2222
    scopes:
      ops-read:
        targets: ["web-*", "env=prod"]
        login: deploy
        rights: [exec, pty]
        commands:
          - "systemctl status {unit: /[a-z0-9@._-]+/}"
          - "journalctl -u {unit: nginx|postgres} -n {lines: 1..1000}"
        record_input: false
        limits: {max_duration: 1h, idle_timeout: 10m}
      tunnels:
        targets: [db-01]
        rights: [forward-local]
        forwards: ["127.0.0.1:5432"]
    """

    func testValidPolicyLoads() throws {
        let policy = try PolicySet.parse(yaml: valid, file: "gatehouse.yaml")
        let ops = try XCTUnwrap(policy.scopes["ops-read"])
        XCTAssertEqual(ops.login, "deploy")
        XCTAssertEqual(ops.rights, [.exec, .pty])
        XCTAssertEqual(ops.commands.patterns.count, 2)
        XCTAssertFalse(ops.recordInput)
        XCTAssertEqual(ops.maxDuration, 3600)
        XCTAssertEqual(ops.idleTimeout, 600)
        XCTAssertEqual(policy.decide(Entitlement(scopes: ["ops-read"]), target: TargetDescriptor(name: "app", labels: ["env": "prod"]), request: .exec("journalctl -u nginx -n 5")),
                       .allow(scope: "ops-read", command: "journalctl -u nginx -n 5"))
        XCTAssertEqual(policy.decide(Entitlement(scopes: ["tunnels"]), target: TargetDescriptor(name: "db-01"), request: .forwardLocal(host: "127.0.0.1", port: 5432)),
                       .allow(scope: "tunnels", command: nil))
    }

    func expectError(_ yaml: String, line: Int, key: String, containing fragment: String, file: StaticString = #filePath, l: UInt = #line) {
        XCTAssertThrowsError(try PolicySet.parse(yaml: yaml, file: "g.yaml"), file: file, line: l) { error in
            guard let e = error as? ConfigurationError else { return XCTFail("\(error)", file: file, line: l) }
            XCTAssertEqual(e.line, line, "\(e)", file: file, line: l)
            XCTAssertEqual(e.key, key, "\(e)", file: file, line: l)
            XCTAssertTrue(e.description.contains(fragment), "\(e)", file: file, line: l)
            XCTAssertTrue(e.description.hasPrefix("g.yaml:\(line):"), "\(e)", file: file, line: l)
        }
    }

    func testEveryMistakeNamesLineAndKey() {
        expectError("scopes:\n  a:\n    targets: [x]\n    rights: [exec, teleport]\n    commands: [uptime]\n", line: 4, key: "scopes.a.rights", containing: "unknown right \"teleport\"")
        expectError("scopes:\n  a:\n    targets: [x]\n    rights: [exec]\n    commands:\n      - \"cat {f: 9..1}\"\n", line: 6, key: "scopes.a.commands[0]", containing: "can never match")
        expectError("scopes:\n  a:\n    targets: [x]\n    rights: [shell]\n    colour: blue\n", line: 5, key: "scopes.a.colour", containing: "unknown key")
        expectError("scopes:\n  a:\n    rights: [shell]\n", line: 3, key: "scopes.a.targets", containing: "is required")
        expectError("scopes:\n  a:\n    targets: [x]\n    rights: [exec]\n", line: 2, key: "scopes.a", containing: "lists no commands")
        expectError("scopes:\n  a:\n    targets: [x]\n    rights: [shell]\n    limits: {idle_timeout: soon}\n", line: 5, key: "scopes.a.limits.idle_timeout", containing: "not a duration")
        expectError("scopes:\n  \"a b\":\n    targets: [x]\n    rights: [shell]\n", line: 2, key: "scopes.a b", containing: "not a valid scope name")
        expectError("scopes: [1, 2]\n", line: 1, key: "scopes", containing: "expected a mapping")
        expectError("scopes:\n  a: {targets: [x], rights: [shell], record_input: maybe}\n", line: 2, key: "scopes.a.record_input", containing: "true or false")
    }
}
