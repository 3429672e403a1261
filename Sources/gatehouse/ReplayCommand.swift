import ArgumentParser
import Foundation
import Recording
#if canImport(Glibc)
import Glibc
#endif

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay", abstract: "Play a recorded session in the terminal.",
        discussion: """
            Keys: space pause/resume, . step one event, → / ← seek 5 s, ] next marker, + / - speed, q quit. \
            The terminal is restored however the player exits.
            """)
    @OptionGroup var store: RecordingsOptions
    @OptionGroup var trust: RecordingTrustOptions
    @Argument(help: "Recording id (<session>-ch<n>) or session id.") var id: String
    @Option(help: "Playback speed (0.25 … 64).") var speed: Double = 1
    @Option(name: .customLong("idle-limit"), help: "Cap pauses longer than this many seconds.") var idleLimit: Double?
    @Option(help: "Start at this time: seconds, or m:ss.") var at: String?
    @Flag(help: "Keep playing a session that is still live.") var follow = false
    @OptionGroup var masking: UnmaskedOption

    func run() throws {
        let path = try store.resolve(id)
        try trust.checkHeader(of: path, defaultState: store.configState)
        let view = try masking.view(of: path, command: "replay", state: trust.state ?? store.configState, config: store.config)
        let playback: RecordingPlayback
        do { playback = try RecordingPlayback(path: path, follow: follow, view: view) } catch { throw CLIError("\(error)") }
        let start = try at.map(Self.parseOffset) ?? 0
        var player = Player(source: playback, speed: speed, idleLimit: idleLimit)
        let terminal = PlayerTerminal()
        if let size = terminal.size(), Int(size.columns) < playback.header.columns || Int(size.rows) < playback.header.rows {
            terminal.announce("the recording is \(playback.header.columns)x\(playback.header.rows), wider or taller than this terminal (\(size.columns)x\(size.rows)); lines may wrap")
        }
        terminal.enterRawMode()
        defer { terminal.restore() }
        do {
            if start > 0 { terminal.show(try player.start(at: start)) }
            var last = MonotonicClock.nanoseconds()
            while !player.finished && !player.quit {
                let wait = try player.wallMicrosUntilNextEvent() ?? 500_000
                for command in terminal.readCommands(timeoutMicros: min(wait, 200_000)) where !player.quit {
                    terminal.show(try player.handle(command))
                }
                let now = MonotonicClock.nanoseconds()
                terminal.show(try player.advance(wallMicros: (now - last) / 1_000))
                last = now
            }
        } catch {
            terminal.restore()
            throw CLIError("\(error)")
        }
    }

    static func parseOffset(_ text: String) throws -> UInt64 {
        let parts = text.split(separator: ":").map { Double($0) }
        guard !parts.isEmpty, parts.count <= 3, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else {
            throw CLIError("--at \"\(text)\" is not a time: use seconds (90) or m:ss (1:30)")
        }
        let seconds = parts.reduce(0.0) { $0 * 60 + $1! }
        return UInt64(seconds * 1_000_000)
    }
}

/// The terminal side of the player: raw mode, keys, output. Restores the terminal on every
/// exit path, including SIGINT/SIGTERM/SIGHUP.
final class PlayerTerminal {
    private let input = STDIN_FILENO
    private var saved: termios?
    private var lastExit: ExitOutcome?
    nonisolated(unsafe) static var savedForSignals: termios?

    var isInteractive: Bool { isatty(input) == 1 }

    func size() -> (columns: UInt16, rows: UInt16)? {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return (size.ws_col, size.ws_row)
    }

    func announce(_ text: String) { FileHandle.standardError.write(Data("gatehouse replay: \(text)\r\n".utf8)) }

    func enterRawMode() {
        guard isInteractive else { return }
        var attributes = termios()
        guard tcgetattr(input, &attributes) == 0 else { return }
        saved = attributes
        Self.savedForSignals = attributes
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            Glibc.signal(signal) { number in
                if var original = PlayerTerminal.savedForSignals { tcsetattr(STDIN_FILENO, TCSANOW, &original) }
                _ = write(STDOUT_FILENO, "\u{1B}[?25h\r\n", 8)
                _exit(128 + number)
            }
        }
        attributes.c_lflag &= ~tcflag_t(ECHO | ICANON)
        attributes.c_cc.6 = 0   // VMIN
        attributes.c_cc.5 = 0   // VTIME
        tcsetattr(input, TCSANOW, &attributes)
    }

    func restore() {
        if var original = saved { tcsetattr(input, TCSANOW, &original); saved = nil }
        if let lastExit { announce("session ended: \(lastExit)"); self.lastExit = nil }
    }

    /// Waits up to `timeoutMicros` for keys and maps them to player commands. One read may hold
    /// several keys (typed ahead, pasted, or sent at once by `tmux send-keys`): each one counts.
    func readCommands(timeoutMicros: UInt64) -> [Player<RecordingPlayback>.Command] {
        guard isInteractive else { usleep(UInt32(min(timeoutMicros, 1_000_000))); return [] }
        var descriptor = pollfd(fd: input, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, Int32(timeoutMicros / 1_000)) > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: 64)
        let count = read(input, &bytes, bytes.count)
        guard count > 0 else { return [] }
        return Self.commands(in: bytes[0..<count])
    }

    /// The keys in `bytes`, in order; unknown keys and escape sequences are skipped whole.
    static func commands(in bytes: ArraySlice<UInt8>) -> [Player<RecordingPlayback>.Command] {
        var commands: [Player<RecordingPlayback>.Command] = []
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let byte = bytes[i]
            i += 1
            switch byte {
            case 0x20: commands.append(.togglePause)
            case 0x2E: commands.append(.step)
            case 0x5D: commands.append(.nextMarker)
            case 0x2B, 0x3D: commands.append(.faster)
            case 0x2D: commands.append(.slower)
            case 0x71, 0x51, 0x03: commands.append(.quit)
            case 0x1B:
                // CSI or SS3 (application cursor mode): ESC [ C / ESC O C is →, ESC [ D / ESC O D is ←.
                guard i < bytes.endIndex, bytes[i] == 0x5B || bytes[i] == 0x4F else { continue }
                i += 1
                var final: UInt8 = 0
                while i < bytes.endIndex {
                    final = bytes[i]
                    i += 1
                    if (0x40...0x7E).contains(final) { break }
                }
                if final == 0x43 { commands.append(.seekForward) } else if final == 0x44 { commands.append(.seekBackward) }
            default: break
            }
        }
        return commands
    }

    func show(_ outputs: [Player<RecordingPlayback>.Output]) {
        for output in outputs {
            switch output {
            case .write(let bytes): FileHandle.standardOutput.write(Data(bytes))
            case .clearScreen: FileHandle.standardOutput.write(Data("\u{1B}[H\u{1B}[2J".utf8))
            case .exited(let outcome): lastExit = outcome
            case .resized, .marker, .finished: break
            }
        }
    }
}
