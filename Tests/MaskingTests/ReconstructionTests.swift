import Crypto
import XCTest
@testable import Masking

/// A recording keeps the raw bytes and the mask records; `MaskedView` rebuilds what the agent
/// saw from them, byte for byte, whole or piece by piece.
final class ReconstructionTests: XCTestCase {
    func testRawPlusRecordsGiveTheLiveOutput() throws {
        var rng = SeededGenerator(seed: 99)
        for (name, text, _) in try Corpus.positive() {
            for mode in MaskingMode.allCases {
                var cuts: [Int] = [], at = 0
                while at < text.count { at += Int.random(in: 1...700, using: &rng); cuts.append(min(at, text.count)) }
                let live = mask(text, cuts: cuts, mode: mode)
                XCTAssertFalse(live.records.isEmpty, name)
                XCTAssertEqual(MaskedView.render(raw: text, records: live.records, mode: mode), live.output, "\(name) \(mode)")
                // A replayer that reads the raw stream in its own pieces gets the same.
                var pieced: [UInt8] = []
                var offset = 0
                while offset < text.count {
                    let end = min(text.count, offset + Int.random(in: 1...300, using: &rng))
                    text.withUnsafeBufferPointer {
                        MaskedView.append(raw: UnsafeBufferPointer(rebasing: $0[offset..<end]), at: UInt64(offset), records: live.records, mode: mode, to: &pieced)
                    }
                    offset = end
                }
                XCTAssertEqual(pieced, live.output, "\(name) \(mode), pieced")
            }
        }
    }

    /// The raw bytes a masker hands back with its output (what a recording keeps, in release
    /// order) are the input, exactly, whatever the chunking and however many flushes.
    func testCollectedRawIsTheInput() throws {
        var rng = SeededGenerator(seed: 5)
        for (name, text, _) in try Corpus.positive() {
            for mode in MaskingMode.allCases {
                var masker = StreamMasker(mode: mode, collectsRaw: true)
                var raw: [UInt8] = []
                var offset = 0
                while offset < text.count {
                    let end = min(text.count, offset + Int.random(in: 1...2000, using: &rng))
                    let out = masker.feed(Array(text[offset..<end]))
                    raw += out.raw
                    if Int.random(in: 0..<10, using: &rng) == 0 { raw += masker.flush().raw }
                    offset = end
                }
                raw += masker.flush().raw
                XCTAssertEqual(raw.count, text.count, "\(name) \(mode)")
                XCTAssertTrue(raw == text, "\(name) \(mode)")
            }
        }
    }

    func testSameWidthKeepsEveryLineLength() throws {
        for (name, text, _) in try Corpus.positive() {
            let run = mask(text, mode: .sameWidth)
            let lines = { (bytes: [UInt8]) in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(\.count) }
            XCTAssertEqual(lines(run.output), lines(text), name)
        }
    }

    func testRecordsPointAtTheRawSecret() {
        let text = "a=1\nGITHUB_TOKEN=ghp_" + String(repeating: "Zq9", count: 12) + "\n"
        let run = mask(Array(text.utf8))
        XCTAssertEqual(run.records, [MaskRecord(offset: 17, length: 40, rule: "github-token")])
    }

    func testRandomBinaryPassesUntouched() {
        var rng = SeededGenerator(seed: 2026)
        var data = [UInt8](repeating: 0, count: 6 << 20)
        for i in stride(from: 0, to: data.count, by: 8) {
            withUnsafeBytes(of: rng.next()) { for (k, b) in $0.enumerated() where i + k < data.count { data[i + k] = b } }
        }
        // Plant look-alikes inside the binary: they must stay, the data is not text.
        let planted = Array("\0AKIAABCDEFGHIJKLMNOP password=hunter22\u{01}".utf8)
        for at in stride(from: 1000, to: data.count - 100, by: 250_000) { data.replaceSubrange(at..<(at + planted.count), with: planted) }
        var cuts: [Int] = [], at = 0
        while at < data.count { at += Int.random(in: 1...32768, using: &rng); cuts.append(min(at, data.count)) }
        for mode in MaskingMode.allCases {
            let run = mask(data, cuts: cuts, mode: mode)
            XCTAssertEqual(run.records, [])
            XCTAssertEqual(Data(SHA256.hash(data: run.output)), Data(SHA256.hash(data: data)))
        }
    }

    func testTextNextToBinaryIsLeftAlone() {
        let token = "ghp_" + String(repeating: "Ab1", count: 12)
        // In a tar header's neighbourhood (NUL padding within the margin): untouched.
        let nearBinary = Array("file.txt\0\0\0\0".utf8) + Array("\(token)\n".utf8)
        XCTAssertEqual(mask(nearBinary).output, nearBinary)
        // Well away from it: masked.
        let farText = Array("\0\0".utf8) + Array(String(repeating: "x", count: 100).utf8) + Array("\n\(token)\n".utf8)
        XCTAssertNotEqual(mask(farText).output, farText)
        // Invalid UTF-8 next to a token: untouched.
        let invalid: [UInt8] = [0xC3, 0x28, 0x20] + Array(token.utf8)
        XCTAssertEqual(mask(invalid).output, invalid)
        // Valid UTF-8 around it is text.
        let accented = Array("clé: café \(token)\n".utf8)
        XCTAssertEqual(String(decoding: mask(accented).output, as: UTF8.self), "clé: café [masked:github-token]\n")
    }
}
