import ConfigurationSupport
import Foundation
import Policy
import XCTest
@testable import Bastion

/// The configuration file: defaults without one, and every mistake named by line and key.
final class ConfigurationTests: XCTestCase {
    func parseError(_ yaml: String) -> ConfigurationError? {
        do {
            _ = try BastionConfiguration.parse(yaml: yaml, file: "g.yaml")
            return nil
        } catch let error as ConfigurationError {
            return error
        } catch {
            XCTFail("unexpected error \(error)")
            return nil
        }
    }

    func testDefaultsAreLoopbackWithNoTargets() throws {
        let c = BastionConfiguration()
        XCTAssertEqual(c.listen, [ListenAddress(host: "127.0.0.1", port: 2222)])
        XCTAssertTrue(c.targets.isEmpty)
        XCTAssertFalse(c.algorithms.ciphers.contains { $0.contains("cbc") })
        XCTAssertFalse(c.algorithms.keyExchange.contains { $0.hasSuffix("sha1") })
        XCTAssertEqual(try BastionConfiguration.parse(yaml: "", file: "empty.yaml").listen, c.listen)
    }

    func testListenAddressesIncludingIPv6() throws {
        let c = try BastionConfiguration.parse(yaml: "listen: [\"127.0.0.1:2200\", \"[::1]:2201\"]\n", file: "g.yaml")
        XCTAssertEqual(c.listen, [ListenAddress(host: "127.0.0.1", port: 2200), ListenAddress(host: "::1", port: 2201)])
        XCTAssertEqual(parseError("listen: [\"::1:22\"]\n")?.key, "listen[0]")
        XCTAssertEqual(parseError("listen: [\"127.0.0.1:99999\"]\n")?.key, "listen[0]")
    }

    func testUnknownKeysAreRefusedWithLineAndKey() {
        let e = parseError("listen: [\"127.0.0.1:2222\"]\nlimits:\n  login_grace: 10s\n  max_unauth: 3\n")
        XCTAssertEqual(e?.line, 4)
        XCTAssertEqual(e?.key, "limits.max_unauth")
        XCTAssertTrue(e?.message.contains("unknown key") ?? false)
        XCTAssertEqual(parseError("colour: blue\n")?.key, ".colour")
    }

    func testTargetsNeedAddressLoginAndExactlyOneHostKeyCheck() {
        XCTAssertEqual(parseError("targets:\n  web-01:\n    login: deploy\n    host_key: \"ssh-ed25519 AAAA\"\n")?.key, "targets.web-01.address")
        let none = parseError("targets:\n  web-01:\n    address: 127.0.0.1\n    login: deploy\n")
        XCTAssertEqual(none?.key, "targets.web-01")
        XCTAssertTrue(none?.message.contains("always verified") ?? false, none?.message ?? "")
        let bad = parseError("targets:\n  web-01:\n    address: 127.0.0.1\n    login: deploy\n    host_key: \"ssh-ed25519 not-base64!\"\n")
        XCTAssertEqual(bad?.key, "targets.web-01.host_key")
        XCTAssertEqual(bad?.line, 5)
        XCTAssertEqual(parseError("targets:\n  \"web 01\":\n    address: x\n")?.key, "targets.web 01")
        XCTAssertEqual(parseError("targets:\n  web-01:\n    address: 127.0.0.1\n    port: 0\n    login: d\n    host_ca: true\n")?.key, "targets.web-01.port")
    }

    func testScopesAreParsedByThePolicyModuleInTheSameFile() throws {
        let c = try BastionConfiguration.parse(yaml: """
        targets:
          web-01: {address: 127.0.0.1, login: deploy, host_ca: true}
        scopes:
          ops-read:
            targets: [web-01]
            rights: [exec]
            commands: ["uptime"]
        """, file: "g.yaml")
        XCTAssertEqual(c.policy.scopes.keys.sorted(), ["ops-read"])
        guard case .hostCA(nil, nil) = c.targets["web-01"]?.hostKey else { return XCTFail("host_ca: true uses the store's host CA") }
        XCTAssertEqual(parseError("scopes:\n  ops:\n    targets: [x]\n    rights: [fly]\n")?.key, "scopes.ops.rights")
    }

    func testInvalidYAMLIsReportedNotCrashed() {
        XCTAssertEqual(parseError("targets: [\n")?.key, "(document)")
        XCTAssertEqual(parseError("- just\n- a list\n")?.key, "(document)")
    }

    func testKnownHostsMatchingRules() throws {
        XCTAssertTrue(KnownHosts.matches(patterns: "web-*,!web-9", name: "web-1"))
        XCTAssertFalse(KnownHosts.matches(patterns: "web-*,!web-9", name: "web-9"))
        XCTAssertTrue(KnownHosts.matches(patterns: "[127.0.0.1]:2022", name: "[127.0.0.1]:2022"))
        XCTAssertFalse(KnownHosts.matches(patterns: "127.0.0.1", name: "[127.0.0.1]:2022"))
        // A hashed entry as `ssh-keygen -H` writes it for "example.com".
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kh-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("known_hosts")
        _ = try runChecked("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", directory.appendingPathComponent("k").path])
        let key = try String(contentsOf: directory.appendingPathComponent("k.pub"), encoding: .utf8).split(separator: " ").prefix(2).joined(separator: " ")
        try "example.com \(key)\n".write(to: file, atomically: true, encoding: .utf8)
        _ = try runChecked("/usr/bin/ssh-keygen", ["-H", "-f", file.path])
        XCTAssertTrue(try String(contentsOf: file, encoding: .utf8).hasPrefix("|1|"))
        XCTAssertEqual(try KnownHosts.lookup(file: file.path, host: "example.com", port: 22).keys.count, 1)
        XCTAssertEqual(try KnownHosts.lookup(file: file.path, host: "example.org", port: 22).keys.count, 0)
        try "example.com ssh-ed25519\n".write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try KnownHosts.lookup(file: file.path, host: "example.com", port: 22)) { XCTAssertTrue("\($0)".contains(":1:"), "\($0)") }
    }
}

extension ConfigurationTests {
    static let twoTargets = """
        targets:
          web-01: {address: 127.0.0.1, login: deploy, host_ca: true}
          db-01: {address: 127.0.0.1, login: deploy, host_ca: true}

        """

    /// A plain target name in a scope that no target has is a typo: refused at its position.
    func testScopeNamingAnUnknownPlainTargetIsRefusedWithItsPosition() throws {
        let yaml = Self.twoTargets + "scopes:\n  ops:\n    targets: [web-01, \"web-*\", \"env=prod\", wbe-02]\n    rights: [shell]\n"
        let e = try XCTUnwrap(parseError(yaml))
        XCTAssertEqual(e.key, "scopes.ops.targets[3]")
        XCTAssertEqual(e.line, 6)
        XCTAssertEqual(e.column, 44)
        XCTAssertTrue(e.message.contains("\"wbe-02\" is not a configured target (configured: db-01, web-01)"), e.message)
        XCTAssertTrue(e.description.hasPrefix("g.yaml:6:44: "), e.description)
        // Block style: the entry's own line.
        let block = Self.twoTargets + "scopes:\n  ops:\n    targets:\n      - web-01\n      - db-02\n    rights: [shell]\n"
        XCTAssertEqual(parseError(block)?.line, 8)
    }

    func testGlobsLabelsAndKnownNamesNeedNoTarget() throws {
        let yaml = Self.twoTargets + "scopes:\n  ops:\n    targets: [web-01, db-01, \"cache-*\", \"env=staging\", \"app-[0-9]\"]\n    rights: [shell]\n"
        XCTAssertEqual(try BastionConfiguration.parse(yaml: yaml, file: "g.yaml").policy.scopes.count, 1)
        // A policy-only file (no targets section), as `policy check --config` reads, is not checked.
        XCTAssertNoThrow(try BastionConfiguration.parse(yaml: "scopes:\n  ops: {targets: [db-01], rights: [shell]}\n", file: "p.yaml"))
    }

    func testReloadDiffNamesWhatChanged() {
        let old = Self.twoTargets + "scopes:\n  ops: {targets: [web-01], rights: [shell]}\n  gone: {targets: [db-01], rights: [shell]}\n"
        let new = """
            # comments and layout do not count
            targets:
              db-01: {address: 127.0.0.1, login: deploy, host_ca: true}
              web-01:
                login: deploy
                address: 127.0.0.2
                host_ca: true
              cache-01: {address: 127.0.0.1, login: deploy, host_ca: true}
            scopes:
              ops: {targets: [web-01], rights: [shell]}
              fresh: {targets: [cache-01], rights: [shell]}

            """
        let diff = ConfigurationDiff(old: Array(old.utf8), new: Array(new.utf8))
        XCTAssertEqual(diff.targets, .init(added: ["cache-01"], removed: [], changed: ["web-01"]))
        XCTAssertEqual(diff.scopes, .init(added: ["fresh"], removed: ["gone"], changed: []))
        let details = diff.auditDetails
        XCTAssertEqual(details["old_sha256"]?.count, 64)
        XCTAssertNotEqual(details["old_sha256"], details["new_sha256"])
        XCTAssertEqual(details["targets_changed"], "web-01")
        XCTAssertNil(details["scopes_changed"])
        XCTAssertEqual(ConfigurationDiff(old: Array(old.utf8), new: Array(old.utf8)).auditDetails["unchanged"], "true")
    }

    func testMaskingIsOnByDefaultAndEachScopeMayNarrowOrTurnItOff() throws {
        let yaml = """
            masking:
              record: masked
              exclude: [jwt]
            scopes:
              ops: {targets: [web-01], rights: [shell]}
              narrow: {targets: [web-01], rights: [shell], masking: {rules: [github-token, jwt]}}
              open: {targets: [web-01], rights: [shell], masking: {enabled: false}}

            """
        let c = try BastionConfiguration.parse(yaml: yaml, file: "g.yaml")
        XCTAssertEqual(c.masking.global.record, .masked)
        XCTAssertEqual(c.masking.rules(forScope: "ops")?.ruleNames.contains("jwt"), false, "the global exclusion")
        XCTAssertEqual(c.masking.rules(forScope: "ops")?.ruleNames.contains("private-key"), true)
        XCTAssertEqual(c.masking.rules(forScope: "narrow")?.ruleNames, ["github-token"], "a selection of the global set: jwt stays off")
        XCTAssertNil(c.masking.rules(forScope: "open"))
        XCTAssertNotNil(BastionConfiguration().masking.rules(forScope: "anything"), "on with no masking section")
        let off = try BastionConfiguration.parse(yaml: "masking: {enabled: false}\nscopes:\n  a: {targets: [x], rights: [shell]}\n  b: {targets: [x], rights: [shell], masking: {exclude: [jwt]}}\n", file: "g.yaml")
        XCTAssertNil(off.masking.rules(forScope: "a"))
        XCTAssertNotNil(off.masking.rules(forScope: "b"), "a scope's own masking: turns it on for that scope")
    }

    func testMaskingMistakesAreNamedByLineAndKey() {
        let unknown = parseError("scopes:\n  ops:\n    targets: [web-01]\n    rights: [shell]\n    masking: {rules: [github-tokens]}\n")
        XCTAssertEqual(unknown?.key, "scopes.ops.masking")
        XCTAssertEqual(unknown?.line, 5)
        XCTAssertTrue(unknown?.message.contains("unknown masking rule \"github-tokens\"") ?? false, "\(String(describing: unknown))")
        let record = parseError("masking:\n  record: sometimes\n")
        XCTAssertEqual(record?.key, "masking.record")
        XCTAssertEqual(record?.message, "expected raw or masked")
        let both = parseError("scopes:\n  ops: {targets: [x], rights: [shell], masking: {enabled: false, rules: [jwt]}}\n")
        XCTAssertEqual(both?.key, "scopes.ops.masking")
        let key = parseError("masking:\n  on: true\n")
        XCTAssertTrue(key?.message.contains("unknown key") ?? false)
    }

    func testReloadDiffNotesAMaskingChange() {
        let old = "masking: {exclude: [jwt]}\n", new = "masking: {exclude: [jwt, private-key]}\n"
        XCTAssertEqual(ConfigurationDiff(old: Array(old.utf8), new: Array(new.utf8)).auditDetails["masking_changed"], "true")
        XCTAssertNil(ConfigurationDiff(old: Array(old.utf8), new: Array("# same\n\(old)".utf8)).auditDetails["masking_changed"])
    }
}
