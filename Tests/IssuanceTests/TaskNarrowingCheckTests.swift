import Foundation
import Policy
import XCTest
@testable import Issuance

/// The issuer's check of a request's narrowing against the bastion's live policy, with the
/// bastion's own policy code: asking for more is refused naming the entry, never trimmed.
final class TaskNarrowingCheckTests: XCTestCase {
    let view = TaskPolicyView(policy: PolicySet([
        Scope(name: "ops", targets: [.init("web-*")], rights: [.exec],
              commands: [try! CommandPattern("systemctl status {unit: nginx|postgres}"), try! CommandPattern("journalctl -u {unit: nginx|postgres} -n {n: 1..1000}")]),
        Scope(name: "db", targets: [.init("db-01")], rights: [.exec], commands: [try! CommandPattern("uptime")]),
    ]), targets: [TargetDescriptor(name: "web-01"), TargetDescriptor(name: "web-02"), TargetDescriptor(name: "db-01")])

    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl agent"

    func request(_ fields: String) throws -> IssuanceRequest {
        try IssuanceRequest(json: Array("{\"public_key\": \"\(key)\"\(fields.isEmpty ? "" : ", " + fields)}".utf8))
    }

    func refusal(_ fields: String, granted: [String] = ["ops", "db"], view: TaskPolicyView? = nil) throws -> Refusal? {
        if case .failure(let r) = TaskNarrowingCheck.narrow(try request(fields), granted: granted, view: view ?? self.view) { return r }
        return nil
    }

    func testGrantedNarrowingsPass() throws {
        let ok = try XCTUnwrap(try? TaskNarrowingCheck.narrow(try request(#""scopes": ["ops"], "targets": ["web-0*"], "commands": ["systemctl status nginx", "journalctl -u nginx -n {n: 1..50}"], "max_sessions": 2"#),
                                                                granted: ["ops", "db"], view: view).get())
        XCTAssertEqual(ok.scopes, ["ops"])
        XCTAssertEqual(ok.task.targets, ["web-0*"])
        XCTAssertEqual(ok.task.commands?.map(\.source), ["systemctl status nginx", "journalctl -u nginx -n {n: 1..50}"])
        XCTAssertEqual(ok.task.maxSessions, 2)
        // Without targets, a command must be allowed somewhere the scopes reach.
        XCTAssertNil(try refusal(#""commands": ["uptime", "systemctl status postgres"]"#))
    }

    func testAskingForMoreIsRefusedNamingTheEntry() throws {
        let cases: [(String, String, String)] = [
            (#""scopes": ["ops", "admin"]"#, "scopes", "\"admin\""),
            (#""targets": ["web-03"]"#, "targets", "\"web-03\""),
            (#""scopes": ["db"], "targets": ["web-01"]"#, "targets", "\"web-01\""),
            (#""targets": ["web-01"], "commands": ["uptime"]"#, "commands", "no-matching-pattern"),
            (#""commands": ["systemctl restart nginx"]"#, "commands", "systemctl restart nginx"),
            (#""commands": ["journalctl -u nginx -n {n: 1..5000}"]"#, "commands", "journalctl"),
            (#""commands": ["journalctl -u {u} -n 5"]"#, "commands", "journalctl"),
            (#""targets": ["db-01", "web-01"], "commands": ["uptime"]"#, "commands", "on target \"web-01\""),
        ]
        for (fields, rule, named) in cases {
            let r = try XCTUnwrap(try refusal(fields), fields)
            XCTAssertEqual(r.code, .notGranted, fields)
            XCTAssertEqual(r.status, 403)
            XCTAssertEqual(r.check, rule, fields)
            XCTAssertTrue(r.message.contains(named), "\(fields): \(r.message)")
        }
    }

    func testMalformedNarrowingIsABadRequest() throws {
        for (fields, rule) in [(#""targets": []"#, "targets"), (#""targets": ["web 01"]"#, "targets"), (#""commands": ["uptime; id"]"#, "commands"),
                               (#""commands": "uptime""#, "commands"), (#""max_sessions": 0"#, "max_sessions"), (#""max_sessions": 1.5"#, "max_sessions"),
                               (#""scopes": [1]"#, "scopes")] {
            // Refused while the body is parsed, or by the narrowing's own syntax check.
            let found: Refusal?
            do { found = try refusal(fields) } catch let e as Refusal { found = e }
            let r = try XCTUnwrap(found, fields)
            XCTAssertEqual(r.code, .badRequest, fields)
            XCTAssertEqual(r.check, rule, fields)
        }
    }

    func testAStandaloneIssuerCannotCheckTargetsOrCommands() throws {
        let r = TaskNarrowingCheck.narrow(try request(#""targets": ["web-01"]"#), granted: ["ops"], view: nil)
        guard case .failure(let refusal) = r else { return XCTFail("issued without a policy to check against") }
        XCTAssertEqual(refusal.code, .badRequest)
        // Scopes and a session budget need no policy.
        XCTAssertNotNil(try? TaskNarrowingCheck.narrow(try request(#""scopes": ["ops"], "max_sessions": 1"#), granted: ["ops"], view: nil).get())
    }
}
