import Foundation
import XCTest
@testable import Masking

/// A small deterministic generator (SplitMix64) so random chunkings are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

struct MaskRun {
    var output: [UInt8] = []
    var records: [MaskRecord] = []
    var maxHeldBack = 0
}

/// Feeds `input` cut at `cuts` (ascending offsets), then flushes once at the end.
func mask(_ input: [UInt8], cuts: [Int] = [], mode: MaskingMode = .marker, rules: MaskingRules = .builtin) -> MaskRun {
    var masker = StreamMasker(rules: rules, mode: mode)
    var run = MaskRun()
    var start = 0
    for cut in cuts + [input.count] where cut >= start {
        let piece = input.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[start..<cut]) }
        let out = masker.feed(piece)
        run.output += out.bytes
        run.records += out.masks
        run.maxHeldBack = max(run.maxHeldBack, masker.heldBackCount)
        start = cut
    }
    let out = masker.flush()
    run.output += out.bytes
    run.records += out.masks
    return run
}

func mask(_ text: String, mode: MaskingMode = .marker, rules: MaskingRules = .builtin) -> String {
    String(decoding: mask(Array(text.utf8), mode: mode, rules: rules).output, as: UTF8.self)
}

/// The rules whose masks cover `secret` in `text` (empty: not masked).
func rulesMasking(_ secret: String, in text: String, rules: MaskingRules = .builtin) -> [String] {
    let run = mask(Array(text.utf8), rules: rules)
    guard let range = text.range(of: secret) else { return [] }
    let start = UInt64(text.utf8.distance(from: text.utf8.startIndex, to: range.lowerBound))
    let end = start + UInt64(secret.utf8.count)
    return run.records.filter { $0.offset <= start && $0.end >= end }.map(\.rule)
}

enum Corpus {
    static let root: URL = Bundle.module.url(forResource: "corpus", withExtension: nil)!

    struct Labelled: Decodable {
        struct Secret: Decodable { let rule: String; let value: String }
        let `case`: String
        let secrets: [Secret]
    }

    static func positive() throws -> [(name: String, text: [UInt8], secrets: [Labelled.Secret])] {
        let dir = root.appendingPathComponent("positive")
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".secrets.json") }.sorted().map { file in
            let labels = try JSONDecoder().decode(Labelled.self, from: Data(contentsOf: dir.appendingPathComponent(file)))
            return (labels.case, Array(try Data(contentsOf: dir.appendingPathComponent(labels.case))), labels.secrets)
        }
    }

    static func negative() throws -> [(name: String, text: [UInt8])] {
        let dir = root.appendingPathComponent("negative")
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".txt") }.sorted().map {
            ($0, Array(try Data(contentsOf: dir.appendingPathComponent($0))))
        }
    }
}

extension Array where Element == UInt8 {
    /// Every offset where `needle` occurs.
    func offsets(of needle: [UInt8]) -> [Int] {
        guard !needle.isEmpty, needle.count <= count else { return [] }
        var found: [Int] = []
        var i = 0
        while i <= count - needle.count {
            if self[i] == needle[0] && self[i..<(i + needle.count)].elementsEqual(needle) { found.append(i) }
            i += 1
        }
        return found
    }
}
