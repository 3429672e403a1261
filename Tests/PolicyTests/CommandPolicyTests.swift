import Foundation
import XCTest
@testable import Policy

/// The allowlist the hostile corpus is run against: the allowed forms of the corpus's programs.
let corpusAllowlist = CommandAllowlist(try! [
    "systemctl status {unit: /[a-z0-9@._-]+/}",
    "journalctl -u {unit: nginx|postgres} -n {lines: 1..1000}",
    "cat {file: path under /var/log}",
    "git status",
    "git status --porcelain",
    "uptime",
].map(CommandPattern.init))

/// Reads Tests/PolicyTests/hostile-commands.txt: `code<TAB>escaped command` per line.
func hostileCorpus() throws -> [(code: String, command: [UInt8])] {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "hostile-commands", withExtension: "txt"))
    return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").filter { !$0.hasPrefix("#") }.map { line in
        let parts = line.split(separator: "\t", maxSplits: 1, omittingEmptySubsequences: false)
        return (String(parts[0]), unescape(parts.count > 1 ? String(parts[1]) : ""))
    }
}

func unescape(_ s: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(s.unicodeScalars)[...]
    while let c = chars.popFirst() {
        guard c == "\\", let n = chars.popFirst() else { out += Array(String(c).utf8); continue }
        switch n {
        case "n": out.append(0x0a)
        case "t": out.append(0x09)
        case "r": out.append(0x0d)
        case "\\": out.append(0x5c)
        case "x": out.append(UInt8(String(String.UnicodeScalarView(chars.prefix(2))), radix: 16)!); chars = chars.dropFirst(2)
        case "u": out += Array(String(Unicode.Scalar(UInt32(String(String.UnicodeScalarView(chars.prefix(4))), radix: 16)!)!).utf8); chars = chars.dropFirst(4)
        default: out += [0x5c] + Array(String(n).utf8)
        }
    }
    return out
}

final class HostileCommandTests: XCTestCase {
    func testEveryHostileCommandIsDeniedWithItsReason() throws {
        let corpus = try hostileCorpus()
        XCTAssertGreaterThanOrEqual(corpus.count, 150)
        for (code, bytes) in corpus {
            let decision: CommandAllowlist.Decision
            if let text = String(validating: bytes, as: UTF8.self) {
                decision = corpusAllowlist.decide(text)
            } else {
                // Invalid UTF-8 cannot become a Swift String; the byte-level splitter refuses it.
                switch ShellWords.split(bytes: bytes) {
                case .failure(let refusal): decision = .deny(refusal)
                case .success(let argv): decision = .allow(argv: argv, command: "", pattern: "")
                }
            }
            guard case .deny(let refusal) = decision else { XCTFail("allowed: \(String(decoding: bytes.prefix(120), as: UTF8.self))"); continue }
            XCTAssertEqual(refusal.code.rawValue, code, "\(String(decoding: bytes.prefix(120), as: UTF8.self)): \(refusal)")
        }
    }

    func testAllowedCommandsAreRebuiltFromCheckedWords() {
        XCTAssertEqual(corpusAllowlist.decide("journalctl -u nginx -n 50"),
                       .allow(argv: ["journalctl", "-u", "nginx", "-n", "50"], command: "journalctl -u nginx -n 50", pattern: "journalctl -u {unit: nginx|postgres} -n {lines: 1..1000}"))
        XCTAssertEqual(corpusAllowlist.decide("cat '/var/log/nginx/access.log'"),
                       .allow(argv: ["cat", "/var/log/nginx/access.log"], command: "cat /var/log/nginx/access.log", pattern: "cat {file: path under /var/log}"))
        guard case .allow(let argv, let command, _) = corpusAllowlist.decide(#"cat "/var/log/it's here.log""#) else { return XCTFail() }
        XCTAssertEqual(argv, ["cat", "/var/log/it's here.log"])
        XCTAssertEqual(command, #"cat '/var/log/it'\''s here.log'"#)
    }

    func testPlaceholdersNeverMatchOptions() throws {
        let p = try CommandPattern("git log {ref}")
        XCTAssertTrue(p.matches(["git", "log", "main"]))
        XCTAssertFalse(p.matches(["git", "log", "--output=/etc/passwd"]))
        XCTAssertFalse(p.matches(["git", "log", "-p"]))
    }

    func testPatternSyntaxErrorsAreNamed() {
        for (bad, fragment) in [("", "empty"), ("cat {f: 10..1}", "never match"), ("cat {f: /(/}", "regular expression"), ("cat {f...} x", "last placeholder"),
                                ("rm;x", "not a plain word"), ("cat {f: path under var}", "absolute"), ("cat {f", "closing"), ("cat {}", "placeholder name"), ("cat {:x}", "placeholder name"), ("cat { }", "placeholder name")] {
            XCTAssertThrowsError(try CommandPattern(bad), bad) { XCTAssertTrue("\($0)".contains(fragment), "\(bad): \($0)") }
        }
    }

    func testRepeatedAndOptionalTrailingWords() throws {
        let many = try CommandPattern("kubectl get pods {name...: /[a-z0-9-]+/}")
        XCTAssertTrue(many.matches(["kubectl", "get", "pods"]))
        XCTAssertTrue(many.matches(["kubectl", "get", "pods", "a", "b-2"]))
        XCTAssertFalse(many.matches(["kubectl", "get", "pods", "a", "--all-namespaces"]))
        let optional = try CommandPattern("systemctl status {unit?: nginx|sshd}")
        XCTAssertTrue(optional.matches(["systemctl", "status"]))
        XCTAssertTrue(optional.matches(["systemctl", "status", "sshd"]))
        XCTAssertFalse(optional.matches(["systemctl", "status", "sshd", "nginx"]))
    }

    func testPathUnderResolvesDotDot() throws {
        let p = try CommandPattern("cat {f: path under /var/log}")
        XCTAssertTrue(p.matches(["cat", "/var/log/a/../b"]))
        XCTAssertFalse(p.matches(["cat", "/var/log/../../etc/shadow"]))
        XCTAssertFalse(p.matches(["cat", "/var/logx"]))
        XCTAssertFalse(p.matches(["cat", "var/log/x"]))
    }
}

/// For any argv, quoting then splitting gives it back, and a real /bin/sh (dash on Debian)
/// and bash run the quoted command with exactly that argv.
final class QuotingPropertyTests: XCTestCase {
    var generator = SystemRandomNumberGenerator()

    func randomWord() -> String {
        let alphabet: [Character] = Array("ab Z09-_./'\"\\$`;&|<>(){}*?[]~#=!%+:,@\t") + ["é", "字", "\u{1F600}"]
        return String((0..<Int.random(in: 0...8, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
    }

    func testQuoteThenSplitIsIdentity() {
        for _ in 0..<5000 {
            let argv = [String](repeating: "", count: Int.random(in: 1...5, using: &generator)).map { _ in randomWord() }
            let joined = ShellWords.join(argv)
            guard case .success(let back) = ShellWords.split(joined) else { return XCTFail("refused its own quoting: \(joined)") }
            XCTAssertEqual(back, argv, joined)
        }
    }

    func testRealShellsReceiveExactlyTheArgv() throws {
        for shell in ["/bin/sh", "/bin/bash"] {
            for _ in 0..<150 {
                let argv = ["printf", "%s\\0"] + (0..<Int.random(in: 1...4, using: &generator)).map { _ in randomWord() }
                let command = ShellWords.join(argv)
                let p = Process()
                p.executableURL = URL(fileURLWithPath: shell)
                p.arguments = ["-c", command]
                let out = Pipe()
                p.standardOutput = out
                try p.run()
                let data = out.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                let expected = argv.dropFirst(2).map { Array($0.utf8) + [0] }.flatMap { $0 }
                XCTAssertEqual(Array(data), expected, "\(shell) -c \(command)")
            }
        }
    }
}
