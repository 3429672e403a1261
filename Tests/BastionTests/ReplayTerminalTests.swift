import Foundation
import Recording
import SSHCertificates
import Synchronization
import XCTest

/// `gatehouse replay` in a real terminal (tmux), driven by keys as an operator drives it: the
/// screen at each point must be what `gatehouse export --format text --at T` says was on it, and
/// the terminal must be restored when the player quits. Every wait polls the pane with a deadline.
final class ReplayTerminalTests: XCTestCase {
    private let socketName = "gatehouse-replay-\(getpid())"
    private let rows = 20
    private var directory = ""
    private var binary = ""

    override func setUpWithError() throws {
        binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/gatehouse").path
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw XCTSkip("\(binary) not built") }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux") else { throw XCTSkip("tmux is not installed (make deps)") }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-replay-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.writeDemoRecording(in: directory)
    }

    override func tearDown() {
        _ = try? tmux(["kill-server"])
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// "line i" at i seconds (i = 1…40) with colours and a carriage-return progress bar, a
    /// marker at 25.5 s, exit status 0 at 41 s; 80 columns by `rows`.
    static func writeDemoRecording(in directory: String) throws {
        let now = DemoClock()
        let header = SessionHeader(sessionID: "tmuxdemo", certificateKeyID: "agent:test", certificateSerial: 1, scopes: ["ops"],
                                   context: "replay-test", subject: "alice@example.com", sourceAddress: "127.0.0.1:1", target: "web-01",
                                   login: "deploy", command: nil, terminalType: "xterm-256color", columns: 80, rows: 20, inputRecorded: true)
        let writer = try RecordingWriter(directory: directory, header: header, signer: try SSHPrivateKey.generate(.ed25519),
                                         clock: now.read)
        for i in 1...40 {
            now.set(1_000_000_000 + UInt64(i) * 1_000_000_000)
            let text = i == 5 ? "\u{1B}[1;32mline 5\u{1B}[0m copying 10%\rline 5 copying 50%\rline 5 copying 100%\r\n"
                              : "\u{1B}[33mline \(i)\u{1B}[0m of the demo\r\n"
            try writer.append(.stdout, Array(text.utf8))
            if i == 25 {
                now.set(1_000_000_000 + 25_500_000_000)
                try writer.marker("halfway")
            }
        }
        now.set(42_000_000_000)
        try writer.exit(status: 0)
        try writer.finish()
    }

    // MARK: Driving tmux

    private func tmux(_ arguments: [String]) throws -> BinaryResult {
        try runBinary("/usr/bin/tmux", ["-L", socketName, "-f", "/dev/null"] + arguments)
    }

    private func keys(_ keys: String...) throws {
        let r = try tmux(["send-keys", "-t", "t"] + keys)
        XCTAssertEqual(r.status, 0, r.err)
    }

    /// Starts a shell script in a fresh 100×`rows` tmux pane. The script records the terminal
    /// settings, runs `arguments` through gatehouse, reports its exit status and whether the
    /// settings came back, then waits so the pane stays readable.
    private func startInPane(_ arguments: [String]) throws {
        let quoted = ([binary] + arguments).map { "'\($0)'" }.joined(separator: " ")
        let script = directory + "/run.sh"
        try """
            before=$(stty -g)
            \(quoted)
            status=$?
            if [ "$(stty -g)" = "$before" ]; then state=restored; else state=changed; fi
            echo "replay-exit=$status terminal=$state"
            read wait
            """.write(toFile: script, atomically: true, encoding: .utf8)
        // The tmux server outlives the client and closes inherited descriptors: spawn it with
        // posix_spawn and reap the client by pid (see TerminalTests).
        let client = try spawnDaemon("/usr/bin/tmux", ["-L", socketName, "-f", "/dev/null", "new-session", "-d", "-s", "t",
                                                       "-x", "100", "-y", String(rows), "env TERM=xterm-256color sh " + script])
        var status: Int32 = 0
        waitpid(client, &status, 0)
        XCTAssertEqual(status, 0)
        _ = try tmux(["set-option", "-t", "t", "status", "off"])
    }

    private func pane() throws -> String { try tmux(["capture-pane", "-p", "-t", "t"]).out }

    /// Polls the pane until `predicate` holds, with a deadline; fails with what it shows.
    @discardableResult
    private func waitForPane(_ what: String, timeout: TimeInterval = 20, _ predicate: (String) -> Bool) throws -> String {
        let until = Date().addingTimeInterval(timeout)
        var shown = ""
        while Date() < until {
            shown = try pane()
            if predicate(shown) { return shown }
            usleep(30_000)
        }
        XCTFail("the pane never showed \(what); it shows:\n\(shown)")
        return shown
    }

    private static func lines(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            String(line.reversed().drop { $0 == " " }.reversed())
        }
        while lines.last == "" { lines.removeLast() }
        return lines
    }

    /// The text export up to `seconds` of recording time.
    private func exportedText(at seconds: String) throws -> [String] {
        let r = try runBinary(binary, ["export", "--recordings", directory, "tmuxdemo", "--format", "text", "--at", seconds])
        XCTAssertEqual(r.status, 0, r.err)
        return Self.lines(r.out)
    }

    /// Waits until the screen is what the text export says it is at `seconds`: its last lines,
    /// as many as fit above the cursor's row.
    private func waitForScreen(at seconds: String) throws {
        let expected = try exportedText(at: seconds)
        let visible = Array(expected.suffix(rows - 1))
        try waitForPane("the screen at \(seconds) s (ending \"\(expected.last ?? "")\")") { Self.lines($0) == visible }
    }

    // MARK: Tests

    func testKeysDriveThePlayerAndTheScreenMatchesTheTextExport() throws {
        // 1/64 speed: nothing advances on its own while the test drives the player.
        try startInPane(["replay", "--recordings", directory, "tmuxdemo", "--at", "10", "--speed", "0.015625"])
        try waitForScreen(at: "10")
        try keys(".")  // step: the next event, and playback stays paused
        try waitForScreen(at: "11")
        try keys(".")
        try waitForScreen(at: "12")
        try keys("Right")  // seek 5 s forward: the screen is redrawn as it was at 17 s
        try waitForScreen(at: "17")
        try keys("Left")
        try waitForScreen(at: "12")
        try keys("]")  // the next marker, "halfway" at 25.5 s (lines scroll: 25 lines, 20 rows)
        try waitForScreen(at: "25.5")
        XCTAssertEqual(try exportedText(at: "25.5").last, "line 25 of the demo")
        // Resume, and six keys sent at once (one read) double the speed six times: 1/64 → 1.
        try keys("Space")
        try keys("+", "+", "+", "+", "+", "+")
        try waitForPane("line 27 played at normal speed") { $0.contains("line 27 of the demo") }
        try keys("q")
        let after = try waitForPane("the player's exit") { $0.contains("replay-exit=") }
        XCTAssertTrue(after.contains("replay-exit=0 terminal=restored"), after)
        XCTAssertFalse(after.contains("line 40 of the demo"), "q stopped playback before the end")
    }

    func testFullSpeedPlaysToTheEndAndRestoresTheTerminal() throws {
        try startInPane(["replay", "--recordings", directory, "tmuxdemo", "--speed", "64"])
        let end = try waitForPane("the end of the recording") { $0.contains("replay-exit=") }
        XCTAssertTrue(end.contains("replay-exit=0 terminal=restored"), end)
        XCTAssertTrue(end.contains("session ended: exit 0"), end)
        // Above the player's closing lines, the screen is the end of the text export.
        let expected = try exportedText(at: "60")
        let shown = Self.lines(end).filter { !$0.contains("session ended") && !$0.hasPrefix("replay-exit=") }
        XCTAssertEqual(shown, Array(expected.suffix(shown.count)), end)
        XCTAssertEqual(shown.last, "line 40 of the demo")
    }

    func testTextExportAtATimeStopsThere() throws {
        XCTAssertEqual(try exportedText(at: "3"), ["line 1 of the demo", "line 2 of the demo", "line 3 of the demo"])
        XCTAssertEqual(try exportedText(at: "0:05.5").suffix(2), ["line 4 of the demo", "line 5 copying 100%"])
        XCTAssertEqual(try exportedText(at: "60").count, 40)
        let bad = try runBinary(binary, ["export", "--recordings", directory, "tmuxdemo", "--format", "text", "--at", "soon"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("is not a time"), bad.err)
    }
}

/// The recording's clock, set by hand: record times are exact.
private final class DemoClock: Sendable {
    private let nanos = Mutex<UInt64>(1_000_000_000)
    func set(_ value: UInt64) { nanos.withLock { $0 = value } }
    var read: @Sendable () -> UInt64 { { [self] in nanos.withLock { $0 } } }
}
