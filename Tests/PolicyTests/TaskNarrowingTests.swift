import Foundation
import XCTest
@testable import Policy

/// A task's narrowing only ever removes from what its scopes grant, on every kind of request.
final class TaskNarrowingTests: XCTestCase {
    let web = TargetDescriptor(name: "web-01", labels: ["env": "prod"])
    let web2 = TargetDescriptor(name: "web-02", labels: ["env": "prod"])
    let db = TargetDescriptor(name: "db-01", labels: ["env": "prod"])

    lazy var policy = PolicySet([
        Scope(name: "ops", targets: [.init("web-*"), .init("db-01")], login: "deploy", rights: Set(Right.allCases),
              commands: [try! CommandPattern("systemctl status {unit: /[a-z0-9@._-]+/}"), try! CommandPattern("uptime"),
                         try! CommandPattern("journalctl -u {unit: nginx|postgres} -n {n: 1..1000}"), try! CommandPattern("grep {words...}")],
              environment: ["LANG"], forwards: [try! ForwardPattern("127.0.0.1:5432")], remoteForwards: [try! ForwardPattern("127.0.0.1:5432")]),
    ])

    func task(targets: [String]? = nil, commands: [String]? = nil, maxSessions: Int? = nil) -> Entitlement {
        Entitlement(scopes: ["ops"], task: try! TaskNarrowing(targets: targets, commands: commands, maxSessions: maxSessions))
    }

    func denial(_ d: PolicyDecision, file: StaticString = #filePath, line: UInt = #line) -> PolicyDenial? {
        if case .deny(let x) = d { return x }
        XCTFail("allowed", file: file, line: line)
        return nil
    }

    func testCommandsNarrowExecToTheListAndTheScopesStillDecide() throws {
        let e = task(targets: ["web-01"], commands: ["systemctl status nginx", "journalctl -u nginx -n {n: 1..50}"])
        XCTAssertEqual(policy.decide(e, target: web, request: .exec("systemctl status nginx")), .allow(scope: "ops", command: "systemctl status nginx"))
        XCTAssertEqual(policy.decide(e, target: web, request: .exec("journalctl -u nginx -n 50")), .allow(scope: "ops", command: "journalctl -u nginx -n 50"))
        // Allowed by the scope, not by the task.
        let other = try XCTUnwrap(denial(policy.decide(e, target: web, request: .exec("uptime"))))
        XCTAssertEqual(other.code, .outsideTask)
        XCTAssertEqual(other.rule, "task-commands")
        XCTAssertEqual(other.acceptedPatterns, ["systemctl status nginx", "journalctl -u nginx -n {n: 1..50}"], "the agent is shown its own plan")
        XCTAssertTrue(other.message.contains("\"rule\":\"task-commands\""), other.message)
        XCTAssertEqual(denial(policy.decide(e, target: web, request: .exec("journalctl -u nginx -n 51")))?.rule, "task-commands")
        XCTAssertEqual(denial(policy.decide(e, target: web, request: .exec("systemctl status postgres")))?.rule, "task-commands")
        // Shell syntax is still refused by the splitter's own rule, before the task is consulted.
        XCTAssertEqual(denial(policy.decide(e, target: web, request: .exec("systemctl status nginx; id")))?.rule, "shell-operator")
    }

    func testATaskCommandTheScopesRefuseIsStillRefused() throws {
        let e = task(commands: ["rm -rf /", "systemctl status nginx"])
        let d = try XCTUnwrap(denial(policy.decide(e, target: web, request: .exec("rm -rf /"))))
        XCTAssertEqual(d.rule, "no-matching-pattern", "the task never widens the scopes")
    }

    func testExactCommandLinesWithQuotedWordsMatchTheirArgv() throws {
        let e = task(commands: ["grep 'server name' /etc/nginx/nginx.conf"])
        XCTAssertEqual(policy.decide(e, target: web, request: .exec("grep \"server name\" /etc/nginx/nginx.conf")),
                       .allow(scope: "ops", command: "grep 'server name' /etc/nginx/nginx.conf"))
        XCTAssertEqual(denial(policy.decide(e, target: web, request: .exec("grep server name /etc/nginx/nginx.conf")))?.rule, "task-commands")
    }

    func testTargetsNarrowEveryRequest() throws {
        let e = task(targets: ["web-0[1]"])
        XCTAssertEqual(policy.decide(e, target: web, request: .exec("uptime")), .allow(scope: "ops", command: "uptime"))
        for request: ChannelRequest in [.exec("uptime"), .shell, .subsystem("sftp"), .forwardLocal(host: "127.0.0.1", port: 5432), .pty(term: "xterm"), .env(name: "LANG")] {
            for target in [web2, db] {
                let d = try XCTUnwrap(denial(policy.decide(e, target: target, request: request)), "\(request) on \(target.name)")
                XCTAssertEqual(d.code, .outsideTask)
                XCTAssertEqual(d.rule, "task-targets")
            }
        }
        XCTAssertTrue(policy.applicable(e, to: db).scopes.isEmpty, "outside the task no scope applies (limits, login, recording)")
        XCTAssertNil(policy.login(e, target: db))
    }

    func testACommandTaskRefusesShellsSubsystemsAndForwards() throws {
        let e = task(commands: ["uptime"])
        for request: ChannelRequest in [.shell, .subsystem("sftp"), .forwardLocal(host: "127.0.0.1", port: 5432), .forwardRemote(host: "127.0.0.1", port: 5432),
                                        .agentForwarding, .x11, .exec("scp -t /tmp")] {
            XCTAssertEqual(denial(policy.decide(e, target: web, request: request))?.rule, "task-commands", "\(request)")
        }
        // A pty or an allowed variable for a listed command is not a new capability.
        XCTAssertEqual(policy.decide(e, target: web, request: .pty(term: "xterm")), .allow(scope: "ops", command: nil))
        XCTAssertEqual(policy.decide(e, target: web, request: .env(name: "LANG")), .allow(scope: "ops", command: nil))
        // Without a command list, the scopes decide alone.
        XCTAssertEqual(policy.decide(task(targets: ["web-01"]), target: web, request: .shell), .allow(scope: "ops", command: nil))
    }

    func testNarrowingSyntaxIsStrict() {
        let bad: [(targets: [String]?, commands: [String]?, max: Int?, field: String)] = [
            ([], nil, nil, "targets"), (["web 01"], nil, nil, "targets"), (["web-01;id"], nil, nil, "targets"),
            (["*-*-*-*-*-x"], nil, nil, "targets"),  // fnmatch backtracks: at most four stars
            (nil, [], nil, "commands"), (nil, ["uptime; id"], nil, "commands"), (nil, ["cat {f: 9..1}"], nil, "commands"), (nil, [""], nil, "commands"),
            (nil, [String(repeating: "a", count: 2000)], nil, "commands"), (nil, Array(repeating: "uptime", count: 65), nil, "commands"),
            (nil, nil, 0, "max_sessions"), (nil, nil, 10_001, "max_sessions"),
        ]
        for case_ in bad {
            XCTAssertThrowsError(try TaskNarrowing(targets: case_.targets, commands: case_.commands, maxSessions: case_.max), "\(case_)") { error in
                XCTAssertEqual((error as? TaskNarrowing.SyntaxError)?.field, case_.field)
            }
        }
    }

    func testPatternCoverageIsProvedWordByWord() throws {
        func covers(_ scope: String, _ task: String) throws -> Bool { try CommandPattern(scope).covers(CommandPattern(task)) }
        XCTAssertTrue(try covers("journalctl -u {unit: nginx|postgres} -n {n: 1..1000}", "journalctl -u nginx -n {n: 1..50}"))
        XCTAssertTrue(try covers("journalctl -u {unit: nginx|postgres} -n {n: 1..1000}", "journalctl -u {u: nginx} -n {lines: 10..20}"))
        XCTAssertFalse(try covers("journalctl -u {unit: nginx|postgres} -n {n: 1..1000}", "journalctl -u {u: nginx|sshd} -n 5"))
        XCTAssertFalse(try covers("journalctl -u {unit: nginx|postgres} -n {n: 1..1000}", "journalctl -u nginx -n {n: 1..5000}"))
        XCTAssertFalse(try covers("journalctl -u {unit: nginx|postgres} -n {n: 1..1000}", "journalctl -u nginx -n {n}"))
        XCTAssertTrue(try covers("cat {f: path under /var/log}", "cat {f: path under /var/log/nginx}"))
        XCTAssertFalse(try covers("cat {f: path under /var/log}", "cat {f: path under /var}"))
        XCTAssertFalse(try covers("cat {f: path under /var/log}", "cat {f: path under /var/logs}"))
        XCTAssertTrue(try covers("grep {words...}", "grep {w: /[a-z]+/} {files...: path under /etc}"))
        XCTAssertFalse(try covers("grep {w}", "grep {words...}"), "one word does not cover many")
        XCTAssertTrue(try covers("ls {dir?}", "ls"))
        XCTAssertTrue(try covers("ls {dir?}", "ls {d?: /[a-z]+/}"))
        XCTAssertFalse(try covers("ls {dir}", "ls {d?}"), "a required word does not cover an optional one")
        XCTAssertFalse(try covers("uptime", "uptime {x?}"))
        XCTAssertFalse(try covers("echo {x: /a+/}", "echo {x: /a*/}"), "regexes are compared, not reasoned about")
    }
}
