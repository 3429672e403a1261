import Foundation
import XCTest
@testable import Recording
import SSHCertificates

final class PlayerTests: XCTestCase {
    private let second: UInt64 = 1_000_000
    private func o(_ t: Double, _ text: String) -> PlaybackEvent { .output(UInt64(t * 1e6), Array(text.utf8)) }

    private func written(_ outputs: [Player<EventListSource>.Output]) -> String {
        outputs.reduce(into: "") { text, output in if case .write(let b) = output { text += String(decoding: b, as: UTF8.self) } }
    }

    func testPlaysInRealTimeAndAtSpeed() throws {
        let events = [o(0, "a"), o(1, "b"), o(3, "c")]
        var player = Player(source: EventListSource(events))
        XCTAssertEqual(written(try player.advance(wallMicros: 0)), "a")
        XCTAssertEqual(try player.wallMicrosUntilNextEvent(), second)
        XCTAssertEqual(written(try player.advance(wallMicros: second - 1)), "")
        XCTAssertEqual(written(try player.advance(wallMicros: 1)), "b")
        XCTAssertEqual(written(try player.advance(wallMicros: 2 * second - 1)), "")
        XCTAssertEqual(try player.advance(wallMicros: 1), [.write(Array("c".utf8)), .finished])
        XCTAssertTrue(player.finished)

        var fast = Player(source: EventListSource(events), speed: 2)
        XCTAssertEqual(written(try fast.advance(wallMicros: second / 2)), "ab")
        XCTAssertEqual(try fast.wallMicrosUntilNextEvent(), second)
        _ = try fast.handle(.slower)
        XCTAssertEqual(fast.speed, 1)
        XCTAssertEqual(try fast.wallMicrosUntilNextEvent(), 2 * second)
    }

    func testIdleLimitCapsLongPauses() throws {
        var player = Player(source: EventListSource([o(0, "a"), o(600, "b"), o(600.5, "c")]), idleLimit: 2)
        XCTAssertEqual(written(try player.advance(wallMicros: 0)), "a")
        XCTAssertEqual(try player.wallMicrosUntilNextEvent(), 2 * second)
        XCTAssertEqual(written(try player.advance(wallMicros: 2 * second)), "b")
        XCTAssertEqual(written(try player.advance(wallMicros: second / 2)), "c")
    }

    func testPauseAndStep() throws {
        var player = Player(source: EventListSource([o(0, "a"), o(1, "b"), o(2, "c")]))
        _ = try player.advance(wallMicros: 0)
        _ = try player.handle(.togglePause)
        XCTAssertEqual(try player.advance(wallMicros: 10 * second), [])
        XCTAssertNil(try player.wallMicrosUntilNextEvent())
        XCTAssertEqual(written(try player.handle(.step)), "b")
        XCTAssertEqual(written(try player.handle(.step)), "c")
        XCTAssertTrue(player.paused)
        _ = try player.handle(.togglePause)
        XCTAssertEqual(try player.advance(wallMicros: 0), [.finished])
    }

    func testSeekRedrawsTheScreenAtTheNewTime() throws {
        let events = (0..<20).map { o(Double($0), "line \($0)\n") }
        var player = Player(source: EventListSource(events), seekStep: 5)
        _ = try player.advance(wallMicros: 2 * second)  // lines 0…2
        let forward = try player.handle(.seekForward)  // to 7 s
        XCTAssertEqual(forward.first, .clearScreen)
        XCTAssertEqual(written(forward), (0...7).map { "line \($0)\n" }.joined())
        XCTAssertEqual(player.position, 7 * second)
        XCTAssertEqual(written(try player.advance(wallMicros: second)), "line 8\n")
        let back = try player.handle(.seekBackward)  // to 3 s
        XCTAssertEqual(written(back), (0...3).map { "line \($0)\n" }.joined())
        XCTAssertEqual(written(try player.advance(wallMicros: second)), "line 4\n")
        let start = try player.start(at: 0)
        XCTAssertEqual(written(start), "line 0\n")
    }

    func testNextMarkerJumpsToIt() throws {
        var player = Player(source: EventListSource([o(0, "a"), .marker(4 * second, "deploy"), o(5, "b"), .marker(9 * second, "done")]))
        _ = try player.advance(wallMicros: 0)
        let jump = try player.handle(.nextMarker)
        XCTAssertEqual(jump.last, .marker("deploy"))
        XCTAssertEqual(player.position, 4 * second)
        XCTAssertEqual(try player.handle(.nextMarker).last, .marker("done"))
        XCTAssertEqual(try player.handle(.nextMarker), [])
    }

    // MARK: On a real recording

    func testSeekingARecordingReplaysExactlyTheOutputBeforeThatTime() throws {
        let dir = try TemporaryDirectory()
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(id: "long"), signer: testSigner, clock: clock.read, options: noIndex())
        var timeline: [(UInt64, [UInt8])] = []
        var now: UInt64 = 0
        for step in 0..<2000 {
            var chunk = Array("step \(step) ".utf8) + pseudoRandomBytes(1000 + step % 3000, seed: UInt64(step)).map { $0 | 0x20 & 0x7E }
            if step == 1500 { chunk = Array("\u{1B}[2J".utf8) + chunk }  // a screen reset: a keyframe
            try writer.append(.stdout, chunk)
            timeline.append((now, chunk))
            if step == 1200 { try writer.marker("half") }
            clock.advance(seconds: 0.05); now += 50_000
        }
        try writer.finish()
        // The writer kept the seek index while recording: its sidecar is what a full read builds.
        let saved = SeekIndex.decode(fileBytes(SeekIndex.sidecarPath(writer.path)))
        XCTAssertEqual(saved, try SeekIndex.build(path: writer.path))
        XCTAssertEqual(saved?.markers.map(\.label), ["half"])
        let playback = try RecordingPlayback(path: writer.path)
        XCTAssertEqual(playback.index.keyframes.count, 1)
        XCTAssertGreaterThan(playback.index.entries.count, 20)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.path + "/long-ch0.ghidx"))
        var player = Player(source: playback)
        for target in [0, 7 * second, 33 * second, 60 * second, 74 * second, 75 * second, 80 * second, 99 * second] {
            let outputs = try player.start(at: target)
            let redraw = outputs.reduce(into: [UInt8]()) { if case .write(let b) = $1 { $0 += b } }
            let upTo = timeline.filter { $0.0 <= target }.flatMap(\.1)
            XCTAssertTrue(upTo.count >= redraw.count && Array(upTo.suffix(redraw.count)) == redraw, "redraw at \(target) is not the end of the output so far")
            let keyframeTime: UInt64 = 1500 * 50_000
            let sinceKeyframe = timeline.filter { $0.0 >= keyframeTime && $0.0 <= target }.flatMap(\.1).count
            let window = Int(SeekIndex.redrawWindow) * 9 / 10  // the window counts file bytes, framing included
            if target >= keyframeTime && sinceKeyframe < window {
                XCTAssertEqual(redraw.count, sinceKeyframe, "a keyframe close by is where the redraw starts, at \(target)")
            } else {
                XCTAssertGreaterThanOrEqual(redraw.count, min(upTo.count, window), "at \(target)")
                XCTAssertLessThanOrEqual(redraw.count, Int(SeekIndex.redrawWindow) + 2 * 256 * 1024, "at \(target)")
            }
            // What plays next is exactly the first output after the target.
            let next = try player.advance(wallMicros: 50_000)
            let expectedNext = timeline.first { $0.0 > target }.map(\.1)
            if let expectedNext { XCTAssertEqual(next.first, .write(expectedNext), "after \(target)") }
        }
        XCTAssertEqual(try player.handle(.nextMarker).last, nil, "no marker after the end")
        _ = try player.start(at: 0)
        XCTAssertEqual(try player.handle(.nextMarker).last, .marker("half"))
    }

    func testSidecarRoundTripsAndAStaleOneIsRebuilt() throws {
        let dir = try TemporaryDirectory()
        let path = try makeSmallRecording(in: dir.path).path
        let built = try SeekIndex.build(path: path)
        XCTAssertEqual(SeekIndex.decode(built.encoded()), built)
        XCTAssertEqual(built.markers.map(\.label), ["command started"])
        XCTAssertNil(SeekIndex.decode(Array(built.encoded().dropLast())))
        let loaded = try SeekIndex.load(recordingPath: path)
        XCTAssertEqual(loaded, built)
        writeBytes(Array(SeekIndex(recordingSize: 1, entries: [], keyframes: [], markers: [], durationMicros: 0).encoded()),
                   to: SeekIndex.sidecarPath(path))
        XCTAssertEqual(try SeekIndex.load(recordingPath: path), built)
    }

    func testFollowPlaysALiveRecordingAsItGrows() throws {
        let dir = try TemporaryDirectory()
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(id: "live"), signer: testSigner, clock: clock.read, options: noIndex())
        try writer.append(.stdout, Array("first ".utf8))
        clock.advance(seconds: 1); try writer.flushIfDue(); writer.waitUntilWritten()
        var player = Player(source: try RecordingPlayback(path: writer.path, follow: true))
        var seen = ""
        func drain() throws {
            for output in try player.advance(wallMicros: 10 * second) { if case .write(let b) = output { seen += String(decoding: b, as: UTF8.self) } }
        }
        try drain()
        XCTAssertEqual(seen, "first ")
        XCTAssertFalse(player.finished, "a live recording is not finished")
        try writer.append(.stdout, Array("second".utf8))
        clock.advance(seconds: 1); try writer.flushIfDue(); writer.waitUntilWritten()
        try drain()
        XCTAssertEqual(seen, "first second")
        try writer.finish()
        try drain()
        XCTAssertTrue(player.finished)
    }
}
