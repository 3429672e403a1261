import Foundation
import XCTest
@testable import Policy

/// The third answer: a command a scope marks for review is neither allowed nor denied.
final class ReviewPolicyTests: XCTestCase {
    let web = TargetDescriptor(name: "web-01")

    func policy(_ yaml: String) throws -> PolicySet { try PolicySet.parse(yaml: yaml, file: "test.yaml") }

    func testReviewIsTheAnswerOnlyWhenNoPatternAllowsOutright() throws {
        let p = try policy("""
        scopes:
          ops:
            targets: [web-*]
            rights: [exec]
            commands: ["systemctl status {unit: nginx|postgres}"]
            review: ["systemctl restart {unit: nginx|postgres}"]
            approvers: [sre-leads, "oidc:lead-*"]
            approval_ttl: 10m
          restarter:
            targets: [web-01]
            rights: [exec]
            commands: ["systemctl restart nginx"]
        """)
        XCTAssertEqual(p.decide(Entitlement(scopes: ["ops"]), target: web, request: .exec("systemctl status nginx")), .allow(scope: "ops", command: "systemctl status nginx"))
        guard case .review(let review) = p.decide(Entitlement(scopes: ["ops"]), target: web, request: .exec("systemctl  restart 'nginx'")) else {
            return XCTFail("not a review")
        }
        XCTAssertEqual(review.scope, "ops")
        XCTAssertEqual(review.pattern, "systemctl restart {unit: nginx|postgres}")
        XCTAssertEqual(review.command, "systemctl restart nginx", "the exact line that would be sent: what an approval is bound to")
        XCTAssertEqual(review.approvers, ["sre-leads", "oidc:lead-*"])
        XCTAssertEqual(review.approvalTTL, 600)
        // Another scope allowing it outright wins (scopes are united).
        XCTAssertEqual(p.decide(Entitlement(scopes: ["ops", "restarter"]), target: web, request: .exec("systemctl restart nginx")),
                       .allow(scope: "restarter", command: "systemctl restart nginx"))
        // Outside the review patterns: denied as ever; shell syntax is refused before review.
        guard case .deny(let denial) = p.decide(Entitlement(scopes: ["ops"]), target: web, request: .exec("systemctl restart sshd")) else { return XCTFail("allowed") }
        XCTAssertEqual(denial.rule, "no-matching-pattern")
        guard case .deny(let syntax) = p.decide(Entitlement(scopes: ["ops"]), target: web, request: .exec("systemctl restart nginx; id")) else { return XCTFail("allowed") }
        XCTAssertEqual(syntax.rule, "shell-operator")
        // A task narrowing applies before review.
        let task = try TaskNarrowing(targets: nil, commands: ["systemctl status nginx"], maxSessions: nil)
        guard case .deny(let outside) = p.decide(Entitlement(scopes: ["ops"], task: task), target: web, request: .exec("systemctl restart nginx")) else {
            return XCTFail("a task that does not list it cannot have it reviewed")
        }
        XCTAssertEqual(outside.rule, "task-commands")
    }

    func testReviewConfigurationMistakesNameTheLine() {
        let cases: [(String, String)] = [
            ("scopes:\n  a:\n    targets: [x]\n    rights: [shell]\n    review: [\"uptime\"]\n", "does not grant exec"),
            ("scopes:\n  a:\n    targets: [x]\n    rights: [exec]\n    commands: [uptime]\n    approvers: [sre]\n", "no review patterns"),
            ("scopes:\n  a:\n    targets: [x]\n    rights: [exec]\n    review: [\"cat {f: 9..1}\"]\n", "review[0]"),
            ("scopes:\n  a:\n    targets: [x]\n    rights: [exec]\n    review: [uptime]\n    approval_ttl: 2d\n", "1s to 24h"),
        ]
        for (yaml, message) in cases {
            XCTAssertThrowsError(try policy(yaml), message) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
        XCTAssertNoThrow(try policy("scopes:\n  a:\n    targets: [x]\n    rights: [exec]\n    review: [uptime]\n"), "review alone is enough for exec")
    }

    func testAScopeMayAnnounceItsReviewsToItsOwnWebhook() throws {
        let secret = FileManager.default.temporaryDirectory.appendingPathComponent("review-secret-\(UUID().uuidString)")
        try "a-secret-of-more-than-16-bytes".write(to: secret, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: secret) }
        let base = "scopes:\n  a:\n    targets: [x]\n    rights: [exec]\n    review: [uptime]\n"
        let p = try policy(base + "    approval_webhook: {url: \"https://hooks.example.test/gatehouse\", secret_file: \(secret.path)}\n")
        XCTAssertEqual(p.scopes["a"]?.approvalWebhook, Scope.Webhook(url: "https://hooks.example.test/gatehouse", secretFile: secret.path))
        for (extra, message) in [("    approval_webhook: {url: \"ftp://x\", secret_file: \(secret.path)}\n", "not an http(s) URL"),
                                 ("    approval_webhook: {url: \"https://x.test/\"}\n", "needs url and secret_file"),
                                 ("    approval_webhook: {url: \"https://x.test/\", secret_file: /nonexistent/secret}\n", "cannot be read")] {
            XCTAssertThrowsError(try policy(base + extra), message) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
    }
}
