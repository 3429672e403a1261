import ConfigurationSupport
import XCTest
@testable import Masking

/// Custom rules and selection from YAML, and the errors that name file:line:column and key.
final class CustomRuleTests: XCTestCase {
    func testCustomRulesMask() throws {
        let yaml = """
        masking:
          exclude: [jwt]
          custom:
            - name: acme-api-key
              keywords: ["acme_live_"]
              value: {charset: alphanumeric, min_length: 24, max_length: 48}
            - name: ticket-secret
              keywords: ["TKT-"]
              regex: 'TKT-[0-9]{4}-(?<secret>[A-Z0-9]{12})'
            - name: internal-password
              keywords: ["INTERNAL_PW="]
              case_insensitive: true
              value: {charset: visible, min_length: 8}
              mask: value
        """
        let rules = try MaskingConfiguration.parse(yaml: yaml, file: "gatehouse.yaml").rules
        XCTAssertTrue(rules.ruleNames.contains("acme-api-key"))
        XCTAssertFalse(rules.ruleNames.contains("jwt"))
        XCTAssertEqual(mask("key acme_live_Zx81Qw0pLmN4Bv7Cx2Rt9YuI done\n", rules: rules), "key [masked:acme-api-key] done\n")
        XCTAssertEqual(mask("ref TKT-2026-AB12CD34EF56 ok\n", rules: rules), "ref TKT-2026-[masked:ticket-secret] ok\n")
        XCTAssertEqual(mask("internal_pw=s3cr3t-value!\n", rules: rules), "internal_pw=[masked:internal-password]\n")
        XCTAssertEqual(mask("acme_live_short\n", rules: rules), "acme_live_short\n")
        // A top-level document that is the section itself works too.
        XCTAssertEqual(try MaskingConfiguration.parse(yaml: "rules: [github-token]\n", file: "r.yaml").rules.ruleNames, ["github-token"])
    }

    func testErrorsNameFileLineColumnAndKey() {
        func error(_ yaml: String) -> String {
            do { _ = try MaskingConfiguration.parse(yaml: yaml, file: "rules.yaml"); return "no error" } catch { return "\(error)" }
        }
        XCTAssertEqual(error("masking:\n  rules: [github-token, nope]\n"),
                       "rules.yaml:2:25: masking.rules[1]: unknown rule \"nope\" (known: \(BuiltinRules.names.joined(separator: ", ")))")
        XCTAssertEqual(error("masking:\n  colour: red\n"), "rules.yaml:2:3: masking.colour: unknown key (allowed: custom, enabled, exclude, record, rules)")
        XCTAssertTrue(error("masking:\n  custom:\n    - name: x1\n      keywords: [abc]\n      regex: '(unclosed'\n").hasPrefix("rules.yaml:5:14: masking.custom[0].regex: not a valid regular expression"))
        XCTAssertEqual(error("masking:\n  custom:\n    - name: x1\n      regex: 'abc'\n"), "rules.yaml:3:7: masking.custom[0].keywords: is required")
        XCTAssertEqual(error("masking:\n  custom:\n    - name: x1\n      keywords: [ab]\n      regex: 'ab'\n"),
                       "rules.yaml:4:18: masking.custom[0].keywords[0]: \"ab\" must be 3 to 64 printable ASCII characters")
        XCTAssertEqual(error("masking:\n  custom:\n    - name: Bad Name\n      keywords: [abc]\n      regex: 'abc'\n"),
                       "rules.yaml:3:13: masking.custom[0].name: \"Bad Name\" is not a rule name (lowercase letters, digits and -, 2 to 64)")
        XCTAssertEqual(error("masking:\n  custom:\n    - name: jwt\n      keywords: [abc]\n      regex: 'abc'\n"),
                       "rules.yaml:3:7: masking.custom[0].name: \"jwt\" is already a rule's name")
        XCTAssertEqual(error("masking:\n  custom:\n    - name: x1\n      keywords: [abc]\n"), "rules.yaml:3:7: masking.custom[0]: needs either regex or value")
        XCTAssertEqual(error("masking:\n  custom:\n    - name: x1\n      keywords: [abc]\n      value: {charset: emoji}\n"),
                       "rules.yaml:5:24: masking.custom[0].value.charset: unknown charset \"emoji\" (known: \(CustomRule.Charset.allCases.map(\.rawValue).joined(separator: ", ")))")
        XCTAssertEqual(error("masking:\n  custom:\n    - name: x1\n      keywords: [abc]\n      value: {min_length: 9, max_length: 3}\n"),
                       "rules.yaml:5:42: masking.custom[0].value.max_length: is less than min_length")
        XCTAssertEqual(error("masking: [1, 2]\n"), "rules.yaml:1:10: masking: expected a mapping")
        XCTAssertTrue(error("masking: {rules: [\n").hasPrefix("rules.yaml:1:1: (document): not valid YAML"))
    }
}
