import Crypto
import Foundation
import XCTest
@testable import Recording
import SSHCertificates

/// The numbers behind bench/recording/run.sh. Skipped unless GATEHOUSE_RECORDING_BENCH names a
/// scratch directory (it writes about 1.3 GiB there); run in release mode by the script. Prints a
/// markdown section to GATEHOUSE_RECORDING_BENCH_OUT (or standard output).
final class RecordingBenchmarks: XCTestCase {
    private var scratch = ""
    private var report: [String] = []

    func testRecordingBenchmarks() throws {
        guard let directory = ProcessInfo.processInfo.environment["GATEHOUSE_RECORDING_BENCH"] else {
            throw XCTSkip("set GATEHOUSE_RECORDING_BENCH=<scratch dir> (bench/recording/run.sh does)")
        }
        scratch = directory
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        report.append("## Recording benchmarks\n")
        report.append("Machine: \(ProcessInfo.processInfo.activeProcessorCount) cores; release build; files on the scratch file system (\(scratch)).\n")
        try relayThroughput()
        try componentCosts()
        try seekInALargeRecording()
        try sessionIndexListing()
        let text = report.joined(separator: "\n") + "\n"
        if let out = ProcessInfo.processInfo.environment["GATEHOUSE_RECORDING_BENCH_OUT"] {
            try text.write(toFile: out, atomically: true, encoding: .utf8)
        }
        print(text)
    }

    // MARK: Throughput and size

    private static let total = 256 << 20
    private static let chunk = 64 * 1024

    private enum Relay: String, CaseIterable {
        case plain = "pipe → /dev/null"
        case sshLike = "pipe → ChaCha20-Poly1305 seal → /dev/null (stands in for the SSH transport)"
    }

    /// A producer thread writes 256 MiB into a pipe; the relay reads it in ≤64 KiB reads and
    /// forwards to /dev/null, optionally sealing each chunk like an SSH cipher, optionally recording.
    private struct RelayRun {
        var seconds: Double
        /// CPU time of the relay thread alone (what the session's own thread spends).
        var relayCPU: Double
        /// CPU time of the whole process (relay, producer, and the recorder's queues).
        var processCPU: Double
        var fileSize: UInt64
    }

    /// Recording off; on with the writer sealing on the relay's thread (as before pipelining);
    /// on with the pipelined writer (the default).
    private enum Mode: CaseIterable { case off, inline, pipelined }

    private func relay(_ kind: Relay, mode: Mode, run: Int) throws -> RelayRun {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw XCTSkip("pipe failed") }
        _ = fcntl(fds[1], 1031 /* F_SETPIPE_SZ */, 1 << 20)
        let source = pseudoRandomBytes(1 << 20, seed: 77)
        let writeEnd = fds[1]
        let producer = Thread {
            var sent = 0
            source.withUnsafeBytes { raw in
                while sent < Self.total {
                    let n = write(writeEnd, raw.baseAddress! + (sent % raw.count), min(Self.chunk, Self.total - sent, raw.count - sent % raw.count))
                    if n <= 0 { break }
                    sent += n
                }
            }
            close(writeEnd)
        }
        let sink = open("/dev/null", O_WRONLY)
        defer { close(sink); close(fds[0]) }
        var writer: RecordingWriter?
        if mode != .off {
            var options = RecordingWriter.Options()
            options.updateIndex = false
            options.sealOnCallerThread = mode == .inline
            writer = try RecordingWriter(directory: scratch, header: sampleHeader(id: "bench-\(kind == .plain ? "plain" : "ssh")-\(mode)-\(run)"),
                                         signer: testSigner, options: options)
        }
        let key = SymmetricKey(size: .bits256)
        var buffer = [UInt8](repeating: 0, count: Self.chunk)
        var counter: UInt64 = 0
        let started = Date()
        let relayCPUStart = cpuSeconds(CLOCK_THREAD_CPUTIME_ID), processCPUStart = cpuSeconds(CLOCK_PROCESS_CPUTIME_ID)
        producer.start()
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress!, $0.count) }
            if n <= 0 { break }
            try buffer.withUnsafeBytes { raw in
                let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                if kind == .sshLike {
                    counter += 1
                    var nonce = [UInt8](repeating: 0, count: 12)
                    withUnsafeBytes(of: counter) { nonce.replaceSubrange(0..<8, with: $0) }
                    let sealed = try ChaChaPoly.seal(bytes, using: key, nonce: ChaChaPoly.Nonce(data: nonce))
                    sealed.ciphertext.withUnsafeBytes { _ = write(sink, $0.baseAddress!, $0.count) }
                } else {
                    _ = write(sink, raw.baseAddress!, n)
                }
                if let writer {
                    try writer.append(.stdout, bytes)
                    try writer.flushIfDue()
                }
            }
        }
        let outcome = try writer?.finish()
        let seconds = Date().timeIntervalSince(started)
        let relayCPU = cpuSeconds(CLOCK_THREAD_CPUTIME_ID) - relayCPUStart, processCPU = cpuSeconds(CLOCK_PROCESS_CPUTIME_ID) - processCPUStart
        if let outcome { try? FileManager.default.removeItem(atPath: outcome.path) }
        return RelayRun(seconds: seconds, relayCPU: relayCPU, processCPU: processCPU, fileSize: outcome?.summary.fileSize ?? 0)
    }

    private func cpuSeconds(_ clock: clockid_t) -> Double {
        var spec = timespec()
        clock_gettime(clock, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    private static let runs = Int(ProcessInfo.processInfo.environment["GATEHOUSE_RECORDING_BENCH_RUNS"] ?? "") ?? 7

    private func relayThroughput() throws {
        report.append("### Relay throughput, 256 MiB of bulk output (median of \(Self.runs); the three modes interleaved, rotating which goes first)\n")
        report.append("\"Inline\" is the same writer sealing on the relay's thread, as it did before it was pipelined.\n")
        report.append("| relay | recording off | on, inline | on, pipelined | cost inline | cost pipelined | relay thread CPU off / inline / pipelined | process CPU off / inline / pipelined |")
        report.append("|---|---|---|---|---|---|---|---|")
        var fileSize: UInt64 = 0
        var samples: [String] = []
        for kind in Relay.allCases {
            var runs: [Mode: [RelayRun]] = [:]
            for run in 0..<Self.runs {
                // Rotate the order, so a change in background load hits every mode alike.
                let order = Mode.allCases.indices.map { Mode.allCases[($0 + run) % Mode.allCases.count] }
                for mode in order { runs[mode, default: []].append(try relay(kind, mode: mode, run: run)) }
                fileSize = runs[.pipelined]?.last?.fileSize ?? fileSize
            }
            let mib = Double(Self.total) / 1_048_576
            func seconds(_ mode: Mode) -> Double { median(runs[mode]!.map(\.seconds)) }
            func cpu(_ path: KeyPath<RelayRun, Double>) -> String {
                Mode.allCases.map { String(format: "%.2f", median(runs[$0]!.map { $0[keyPath: path] })) }.joined(separator: " / ") + " s"
            }
            let off = seconds(.off), inline = seconds(.inline), pipelined = seconds(.pipelined)
            report.append(String(format: "| %@ | %.0f MiB/s | %.0f MiB/s | %.0f MiB/s | %.1f%% | %.1f%% | %@ | %@ |", kind.rawValue,
                                 mib / off, mib / inline, mib / pipelined, (inline - off) / off * 100, (pipelined - off) / off * 100,
                                 cpu(\.relayCPU), cpu(\.processCPU)))
            for mode in Mode.allCases {
                samples.append("- \(kind == .plain ? "pipe" : "ChaCha20"), \(mode): " + runs[mode]!.map { String(format: "%.3f", $0.seconds) }.joined(separator: " ") + " s")
            }
        }
        report.append("")
        report.append("Samples:\n")
        report += samples
        let overhead = (Double(fileSize) - Double(Self.total)) / Double(Self.total) * 100
        report.append("")
        report.append(String(format: "Recording size: %llu bytes for %d bytes of payload: **%.3f%% overhead** (target ≤ 2%%).\n", fileSize, Self.total, overhead))
        // The recorder alone: appends from memory, no pipe.
        let writer = try RecordingWriter(directory: scratch, header: sampleHeader(id: "bench-alone"), signer: testSigner, options: noIndex())
        let data = pseudoRandomBytes(1 << 20, seed: 78)
        let started = Date()
        let callerCPUStart = cpuSeconds(CLOCK_THREAD_CPUTIME_ID)
        for i in 0..<(Self.total / Self.chunk) {
            try data.withUnsafeBytes { raw in
                let start = (i * Self.chunk) % raw.count
                try writer.append(.stdout, UnsafeRawBufferPointer(rebasing: raw[start..<start + Self.chunk]))
            }
            try writer.flushIfDue()
        }
        let callerCPU = cpuSeconds(CLOCK_THREAD_CPUTIME_ID) - callerCPUStart
        let outcome = try writer.finish()
        let seconds = Date().timeIntervalSince(started)
        try? FileManager.default.removeItem(atPath: outcome.path)
        report.append(String(format: "Recorder alone, from memory (copy, SHA-256 payload digest + chain, pwrite, fdatasync twice a second): %.0f MiB/s, %.2f ns per byte end to end; the appending thread itself spent %.2f ns per byte (the copy and framing; hashing and writing run on the writer's queue).\n",
                             Double(Self.total) / 1_048_576 / seconds, seconds * 1e9 / Double(Self.total), callerCPU * 1e9 / Double(Self.total)))
    }

    // MARK: Where the recorder's time goes

    /// The per-byte costs the recorder is made of, each alone over 256 MiB: what the relay thread
    /// still pays (the copy) and what the sealing queue pays (SHA-256, pwrite into the page cache).
    private func componentCosts() throws {
        let data = pseudoRandomBytes(1 << 20, seed: 79)
        let record = 256 * 1024
        func nsPerByte(_ body: () throws -> Void) rethrows -> Double {
            let started = cpuSeconds(CLOCK_THREAD_CPUTIME_ID)
            try body()
            return (cpuSeconds(CLOCK_THREAD_CPUTIME_ID) - started) * 1e9 / Double(Self.total)
        }
        var sink: UInt8 = 0
        let hash = nsPerByte {
            data.withUnsafeBytes { raw in
                for i in 0..<(Self.total / record) {
                    let start = (i * record) % raw.count
                    sink ^= SHA256.hash(data: UnsafeRawBufferPointer(rebasing: raw[start..<start + record])).withUnsafeBytes { $0[0] }
                }
            }
        }
        var batch: [UInt8] = []
        batch.reserveCapacity(1 << 20 + Self.chunk)
        let copy = nsPerByte {
            data.withUnsafeBytes { raw in
                for i in 0..<(Self.total / Self.chunk) {
                    if batch.count >= 1 << 20 { sink ^= batch[batch.count - 1]; batch.removeAll(keepingCapacity: true) }
                    let start = (i * Self.chunk) % raw.count
                    batch.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[start..<start + Self.chunk]))
                }
            }
        }
        let path = scratch + "/pwrite-alone"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { close(fd); unlink(path) }
        let write = nsPerByte {
            data.withUnsafeBytes { raw in
                for i in 0..<(Self.total / raw.count) { _ = pwrite(fd, raw.baseAddress!, raw.count, off_t(i * raw.count)) }
            }
        }
        report.append("Where the time goes, each alone over 256 MiB (thread CPU time; checksum \(sink)): SHA-256 in 256 KiB records \(String(format: "%.2f", hash)) ns/byte; copying 64 KiB reads into a 1 MiB batch \(String(format: "%.2f", copy)) ns/byte; pwrite of 1 MiB batches into the page cache \(String(format: "%.2f", write)) ns/byte.\n")
    }

    // MARK: Seeking

    private func seekInALargeRecording() throws {
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: scratch, header: sampleHeader(id: "bench-1gib"), signer: testSigner, clock: clock.read, options: noIndex())
        let lines = Array((0..<2000).map { "line \($0) of some ordinary log output, long enough to look real\r\n" }.joined().utf8)
        var written = 0
        var step = 0
        while written < 1 << 30 {
            let size = 4096 + (step * 7919) % 60000
            let start = (step * 131) % (lines.count - size)
            try writer.append(.stdout, Array(lines[start..<start + size]))
            written += size
            step += 1
            if step % 5000 == 0 { try writer.append(.stdout, Array("\u{1B}[2J\u{1B}[H".utf8)) }  // an occasional full redraw
            clock.advance(seconds: 0.02)
            try writer.flushIfDue()
        }
        let outcome = try writer.finish()
        let path = outcome.path
        var started = Date()
        let built = try SeekIndex.build(path: path)
        let buildSeconds = Date().timeIntervalSince(started)
        _ = try SeekIndex.load(recordingPath: path)  // writes the sidecar
        started = Date()
        let playback = try RecordingPlayback(path: path)
        let openSeconds = Date().timeIntervalSince(started)
        var player = Player(source: playback)
        var timings: [Double] = []
        var redrawBytes: [Int] = []
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let target = UInt64.random(in: 0...built.durationMicros, using: &generator)
            let begin = Date()
            let outputs = try player.start(at: target)
            _ = try player.advance(wallMicros: 0)
            timings.append(Date().timeIntervalSince(begin))
            redrawBytes.append(outputs.reduce(0) { if case .write(let b) = $1 { $0 + b.count } else { $0 } })
        }
        timings.sort()
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: SeekIndex.sidecarPath(path))
        report.append("### Seeking in a 1 GiB recording\n")
        report.append(String(format: "%.2f GiB file, %llu records, %.0f s of recording time; seek index: %d entries, %d keyframes.\n",
                             Double(outcome.summary.fileSize) / 1_073_741_824, outcome.recordCount, Double(built.durationMicros) / 1e6,
                             built.entries.count, built.keyframes.count))
        report.append("| step | time |")
        report.append("|---|---|")
        report.append(String(format: "| rebuild the seek index from the file (only needed for a crashed recording: the writer saves it) | %.2f s |", buildSeconds))
        report.append(String(format: "| open with the saved `.ghidx` sidecar | %.1f ms |", openSeconds * 1000))
        report.append(String(format: "| seek to a random time (screen redraw included), median of 50 | %.1f ms |", timings[timings.count / 2] * 1000))
        report.append(String(format: "| seek, slowest of 50 | %.1f ms |", timings.last! * 1000))
        report.append("")
        report.append("A seek replays output from the last screen reset before the target, or at most ~1 MiB (median \(redrawBytes.sorted()[redrawBytes.count / 2]) bytes here), to redraw the screen.\n")
    }

    // MARK: Session index

    private func sessionIndexListing() throws {
        let directory = scratch + "/index-10k"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines = Data()
        for i in 0..<10_000 {
            let header = sampleHeader(id: "s\(i)", command: i % 7 == 0 ? nil : "systemctl status unit-\(i % 50)",
                                      subject: "user\(i % 40)@example.com", target: "host-\(i % 100)", scopes: ["scope-\(i % 5)"],
                                      start: 1_790_000_000_000_000 + UInt64(i) * 60_000_000)
            let summary = RecordingSummary(header: header, recordingID: header.recordingID, end: .normal, durationMicros: 1_000_000,
                                           exit: .status(UInt32(i % 3)), totals: StreamTotals(stdin: 10, stdout: 1000, stderr: 5),
                                           recordCount: 12, finalHash: String(repeating: "ab", count: 32), fileSize: 2000)
            lines.append(try encoder.encode(summary)); lines.append(0x0A)
        }
        try lines.write(to: URL(fileURLWithPath: directory + "/" + SessionIndex.fileName))
        var best = Double.infinity
        var matched = 0
        for _ in 0..<3 {
            let started = Date()
            let index = try SessionIndex.load(directory: directory)
            matched = index.list(SessionFilter(subject: "user7@example.com", commandContains: "unit-7")).count
            _ = index.list()
            best = min(best, Date().timeIntervalSince(started))
        }
        report.append("### Session index\n")
        report.append(String(format: "Loading an index of 10,000 sessions (%d KiB) and listing with and without filters: **%.0f ms** (best of 3; %d matched the filter). The CLI's own time is below.\n",
                             lines.count / 1024, best * 1000, matched))
    }
}
