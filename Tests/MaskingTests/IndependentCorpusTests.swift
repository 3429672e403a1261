import Foundation
import XCTest
@testable import Masking

/// Recall on a corpus written by someone who had not read the rules (corpus/independent): the
/// regression guard for the figures in docs/masking.md. A secret is missed when any 8 of its
/// consecutive characters reach the agent.
final class IndependentCorpusTests: XCTestCase {
    struct Label: Decodable { let secret: String; let type: String; let group: String }

    func testRecallAtRandomReadSizes() throws {
        let dir = Corpus.root.appendingPathComponent("independent")
        let sidecars = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".secrets.json") }.sorted()
        XCTAssertGreaterThanOrEqual(sidecars.count, 70)
        var rng = SeededGenerator(seed: 16)
        var planted: [String: Int] = [:], caught: [String: Int] = [:]
        var misses: [String] = []
        for sidecar in sidecars {
            let name = String(sidecar.dropLast(".secrets.json".count))
            let labels = try JSONDecoder().decode([Label].self, from: Data(contentsOf: dir.appendingPathComponent(sidecar)))
            let text = Array(try Data(contentsOf: dir.appendingPathComponent(name)))
            var cuts: [Int] = [], at = 0
            while at < text.count { at += Int.random(in: 1...4096, using: &rng); cuts.append(min(at, text.count)) }
            let output = String(decoding: mask(text, cuts: cuts).output, as: UTF8.self)
            for label in labels {
                let group = label.group == "pem" || label.group.hasSuffix("prefixed") ? "prefixed and PEM" : "without a prefix"
                planted[group, default: 0] += 1
                let characters = Array(label.secret)
                let leaked = characters.count < 8 ? output.contains(label.secret)
                    : (0...(characters.count - 8)).contains { output.contains(String(characters[$0..<($0 + 8)])) }
                if leaked { misses.append("\(name) \(label.type)") } else { caught[group, default: 0] += 1 }
            }
        }
        let total = planted.values.reduce(0, +), found = caught.values.reduce(0, +)
        for group in planted.keys.sorted() { print("\(group): \(caught[group] ?? 0)/\(planted[group]!)") }
        print("all: \(found)/\(total)")
        misses.forEach { print("missed: \($0)") }
        XCTAssertGreaterThanOrEqual(Double(caught["prefixed and PEM"] ?? 0) / Double(planted["prefixed and PEM"]!), 0.98)
        XCTAssertGreaterThanOrEqual(Double(found) / Double(total), 0.94)
    }
}
