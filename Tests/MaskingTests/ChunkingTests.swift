import XCTest
@testable import Masking

/// The masker's output must not depend on how the stream was cut: every corpus case at every
/// split point, and at random chunkings, gives the same bytes and records as one big feed.
final class ChunkingTests: XCTestCase {
    /// Every split point of the small cases (both modes); of the long ones, every split point
    /// inside a planted secret and within 24 bytes of it (where a cut matters) and every 211th
    /// elsewhere (marker mode: the modes share detection, the small cases cover rendering).
    func testEverySplitPointGivesTheSameOutput() throws {
        for (name, text, secrets) in try Corpus.positive() {
            let small = text.count <= 6000
            var cuts = Set<Int>()
            if small {
                cuts = Set(0...text.count)
            } else {
                cuts = Set(stride(from: 0, through: text.count, by: 211))
                for secret in secrets {
                    for o in text.offsets(of: Array(secret.value.utf8)) {
                        for c in max(0, o - 24)...min(text.count, o + secret.value.utf8.count + 24) { cuts.insert(c) }
                    }
                }
            }
            for mode in small ? MaskingMode.allCases : [.marker] {
                let whole = mask(text, mode: mode)
                for cut in cuts.sorted() {
                    let split = mask(text, cuts: [cut], mode: mode)
                    if split.output != whole.output || split.records != whole.records {
                        XCTFail("\(name) (\(mode)) differs when cut at \(cut)")
                        break
                    }
                }
            }
        }
    }

    func testRandomChunkingsGiveTheSameOutput() throws {
        var rng = SeededGenerator(seed: 15)
        let cases = try Corpus.positive().map { ($0.name, $0.text) } + Corpus.negative().map { ($0.name, Array($0.text.prefix(100_000))) }
        for (name, text) in cases {
            let whole = mask(text)
            for round in 0..<12 {
                // Tiny pieces (a pty's bytes), packet-sized ones, and mixes.
                let maxPiece = [1, 3, 17, 100, 1500, 32768][round % 6]
                var cuts: [Int] = [], at = 0
                while at < text.count { at += Int.random(in: 1...maxPiece, using: &rng); cuts.append(min(at, text.count)) }
                if round % 6 == 0 && text.count > 20_000 { continue }   // byte by byte only for the small cases
                let run = mask(text, cuts: cuts)
                XCTAssertEqual(run.output, whole.output, "\(name): pieces up to \(maxPiece)")
                XCTAssertEqual(run.records, whole.records, "\(name): pieces up to \(maxPiece)")
            }
        }
    }

    func testHoldbackStaysBounded() throws {
        var rng = SeededGenerator(seed: 3)
        for (name, text, _) in try Corpus.positive() {
            var cuts: [Int] = [], at = 0
            while at < text.count { at += Int.random(in: 1...64, using: &rng); cuts.append(min(at, text.count)) }
            let run = mask(text, cuts: cuts)
            XCTAssertLessThan(run.maxHeldBack, MaskingLimits.holdbackLimit, name)
        }
        // Ordinary output is released almost at once: only a possible keyword's first bytes wait.
        var masker = StreamMasker(mode: .marker)
        let out = masker.feed(Array("total 12\ndrwxr-xr-x 2 root root 4096 Dec  1 08:00 bin\n".utf8))
        XCTAssertEqual(String(decoding: out.bytes, as: UTF8.self), "total 12\ndrwxr-xr-x 2 root root 4096 Dec  1 08:00 bin\n")
        XCTAssertEqual(masker.heldBackCount, 0)
        // A keystroke echo that cannot begin a keyword is not held (one that can waits for the
        // next byte, or the pty's 1 ms quiet flush).
        XCTAssertEqual(masker.feed(Array(")".utf8)).bytes, Array(")".utf8))
    }

    func testSecretSplitAcrossReadsIsCaughtAndReleasedOnFlush() {
        let token = "ghp_" + String(repeating: "aB3dE5", count: 6)
        var masker = StreamMasker(mode: .marker)
        var seen = masker.feed(Array("export GITHUB_TOKEN=gh".utf8)).bytes
        seen += masker.feed(Array(token.dropFirst(2).utf8)).bytes
        XCTAssertFalse(String(decoding: seen, as: UTF8.self).contains("ghp_"))
        seen += masker.feed(Array("\n$ ".utf8)).bytes
        seen += masker.flush().bytes
        XCTAssertEqual(String(decoding: seen, as: UTF8.self), "export GITHUB_TOKEN=[masked:github-token]\n$ ")
        XCTAssertEqual(masker.heldBackCount, 0)
    }
}

extension ChunkingTests {
    /// A long stream with no secret keeps the masker's memory bounded (history is dropped).
    func testMemoryStaysBoundedOnALongStream() {
        var masker = StreamMasker(mode: .marker)
        let line = Array("Dec 01 08:00:00 web-01 app[42]: request_id=7 status=200 path=/v1/orders bytes=812\n".utf8)
        let chunk = Array((0..<400).map { _ in line }.joined())
        for _ in 0..<200 { _ = masker.feed(chunk) }
        XCTAssertLessThan(masker.bufferedCount, 3 * chunk.count)
    }
}
