import Foundation
import XCTest
@testable import Masking

/// Recall per rule on the labelled corpus and false positives per MiB of ordinary output; the
/// table printed here is the one in docs/masking.md.
final class CorpusTests: XCTestCase {
    /// Rules whose secrets have a fixed, recognisable shape (prefixed tokens, PEM blocks).
    static let prefixedRules: Set<String> = [
        "aws-access-key-id", "github-token", "github-fine-grained-token", "gitlab-token", "slack-token", "slack-webhook", "stripe-key",
        "google-api-key", "google-oauth-secret", "openai-api-key", "anthropic-api-key", "npm-token", "pypi-token", "huggingface-token",
        "vault-token", "digitalocean-token", "shopify-token", "sendgrid-key", "age-secret-key", "jwt", "private-key",
    ]

    func testRecallAndFalsePositives() throws {
        var found: [String: Int] = [:], planted: [String: Int] = [:], misses: [String] = []
        var strayInPositive = 0
        for (name, text, secrets) in try Corpus.positive() {
            let run = mask(text)
            var covered = [Bool](repeating: false, count: text.count)
            for r in run.records { for i in Int(r.offset)..<Int(r.end) { covered[i] = true } }
            var secretBytes = [Bool](repeating: false, count: text.count)
            for secret in secrets {
                planted[secret.rule, default: 0] += 1
                let offsets = text.offsets(of: Array(secret.value.utf8))
                let caught = !offsets.isEmpty && offsets.allSatisfy { o in (o..<(o + secret.value.utf8.count)).allSatisfy { covered[$0] } }
                for o in offsets { for i in o..<(o + secret.value.utf8.count) { secretBytes[i] = true } }
                if caught { found[secret.rule, default: 0] += 1 } else { misses.append("\(name): \(secret.rule) \(secret.value.prefix(24))…") }
            }
            // A mask touching no planted secret is a false positive too.
            for r in run.records where !(Int(r.offset)..<Int(r.end)).contains(where: { secretBytes[$0] }) {
                strayInPositive += 1
                print("stray mask: \(name) \(r.rule): \(String(decoding: text[Int(r.offset)..<Int(r.end)], as: UTF8.self).prefix(60))")
            }
        }
        var negativeBytes = 0, falsePositives: [String] = []
        for (name, text) in try Corpus.negative() {
            negativeBytes += text.count
            for r in mask(text).records {
                let context = String(decoding: text[max(0, Int(r.offset) - 40)..<min(text.count, Int(r.end) + 10)], as: UTF8.self)
                falsePositives.append("\(name) \(r.rule): …\(context.replacingOccurrences(of: "\n", with: "⏎"))…")
            }
        }
        let mib = Double(negativeBytes) / 1_048_576
        var table = "| rule | planted | caught | recall |\n|---|---:|---:|---:|\n"
        for rule in planted.keys.sorted() {
            let p = planted[rule]!, f = found[rule] ?? 0
            table += "| `\(rule)` | \(p) | \(f) | \(String(format: "%.0f%%", 100 * Double(f) / Double(p))) |\n"
        }
        let prefixedPlanted = planted.filter { Self.prefixedRules.contains($0.key) }.values.reduce(0, +)
        let prefixedFound = found.filter { Self.prefixedRules.contains($0.key) }.values.reduce(0, +)
        let allPlanted = planted.values.reduce(0, +), allFound = found.values.reduce(0, +)
        let prefixedRecall = Double(prefixedFound) / Double(prefixedPlanted), overall = Double(allFound) / Double(allPlanted)
        table += "| **prefixed tokens and PEM blocks** | \(prefixedPlanted) | \(prefixedFound) | \(String(format: "%.1f%%", 100 * prefixedRecall)) |\n"
        table += "| **all** | \(allPlanted) | \(allFound) | \(String(format: "%.1f%%", 100 * overall)) |\n"
        table += "\nNegative corpus: \(String(format: "%.2f", mib)) MiB, \(falsePositives.count) false positives "
            + "(\(String(format: "%.2f", Double(falsePositives.count) / mib)) per MiB); stray masks in the positive corpus: \(strayInPositive)\n"
        print(table)
        misses.forEach { print("missed: \($0)") }
        var seen = Set<String>()
        for fp in falsePositives where seen.insert(fp).inserted { print("false positive (\(falsePositives.filter { $0 == fp }.count)×): \(fp)") }
        XCTAssertGreaterThanOrEqual(prefixedRecall, 0.95)
        XCTAssertGreaterThanOrEqual(overall, 0.85)
        XCTAssertGreaterThanOrEqual(mib, 1.0)
        XCTAssertLessThanOrEqual(Double(falsePositives.count) / mib, 1.0)
        XCTAssertLessThanOrEqual(strayInPositive, 2)
    }
}
