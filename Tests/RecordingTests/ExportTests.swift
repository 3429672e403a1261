import Foundation
import XCTest
@testable import Recording
import SSHCertificates

final class ExportTests: XCTestCase {
    private var dir: TemporaryDirectory!
    override func setUpWithError() throws { dir = try TemporaryDirectory() }

    // XCTest keeps test case instances alive to the end of the run: drop the directory now.
    override func tearDown() { dir = nil }

    /// A recording whose output mixes valid text, a UTF-8 character split across two records,
    /// invalid bytes, colours and carriage-return overwrites.
    private func makeTerminalRecording() throws -> String {
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(id: "term"), signer: testSigner, clock: clock.read, options: noIndex())
        try writer.append(.stdout, Array("That was ok\rThis is better.\r\n".utf8))
        clock.advance(seconds: 0.5)
        try writer.append(.stdin, Array("ls\r".utf8))
        try writer.append(.stdout, Array("caf".utf8) + [0xC3])       // "é" split across two records…
        clock.advance(seconds: 0.25)
        try writer.append(.stdout, [0xA9] + Array(" \u{1B}[1;31mred\u{1B}[0m\r\n".utf8))  // …completed here
        try writer.resize(cols: 120, rows: 40)
        try writer.marker("step 2")
        clock.advance(seconds: 1.0)
        try writer.append(.stderr, [0xFF, 0xFE] + Array("bad bytes\n".utf8))          // two invalid bytes
        try writer.append(.stdout, Array("\u{1B}]0;title\u{07}progress 10%\rprogress 100%\n".utf8))
        try writer.exit(status: 3)
        try writer.finish()
        return writer.path
    }

    func testRawExportIsByteExactPerStream() throws {
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(), signer: testSigner, clock: clock.read, options: noIndex())
        var expected: [RecordStream: [UInt8]] = [.stdin: [], .stdout: [], .stderr: []]
        for step in 0..<300 {
            let stream = RecordStream.allCases[step % 3]
            let chunk = pseudoRandomBytes(1 + step * 97 % 5000, seed: UInt64(step))
            try writer.append(stream, chunk)
            expected[stream]! += chunk
            clock.advance(seconds: 0.004)
        }
        try writer.finish()
        for stream in RecordStream.allCases {
            let (bytes, report) = try RecordingExporter.export(path: writer.path, format: .raw, stream: stream)
            XCTAssertEqual(sha256Hex(bytes), sha256Hex(expected[stream]!), "\(stream)")
            XCTAssertEqual(report.replacedBytes, 0)
            XCTAssertFalse(report.unfinished)
        }
    }

    func testTTYRecFramesCarryAbsoluteTimesAndEveryOutputByte() throws {
        let path = try makeTerminalRecording()
        let (bytes, _) = try RecordingExporter.export(path: path, format: .ttyrec)
        var frames: [(seconds: UInt32, micros: UInt32, data: [UInt8])] = []
        var offset = 0
        func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) } }
        while offset < bytes.count {
            let length = Int(u32(offset + 8))
            frames.append((u32(offset), u32(offset + 4), Array(bytes[offset + 12..<offset + 12 + length])))
            offset += 12 + length
        }
        XCTAssertEqual(offset, bytes.count)
        let records = try readAll(path)
        let output = records.compactMap { r -> (UInt64, [UInt8])? in
            if case .data(let s, let b) = r.content, s != .stdin { return (r.timeMicros, b) } else { return nil }
        }
        XCTAssertEqual(frames.map(\.data), output.map(\.1))
        let start = sampleHeader().startTimeMicros
        XCTAssertEqual(frames.map { UInt64($0.seconds) * 1_000_000 + UInt64($0.micros) }, output.map { start + $0.0 })
    }

    func testAsciicastV2HeaderEventsAndReplacementCount() throws {
        let path = try makeTerminalRecording()
        let (bytes, report) = try RecordingExporter.export(path: path, format: .asciicastV2)
        XCTAssertEqual(report.replacedBytes, 2)
        XCTAssertTrue(report.note.contains("2 invalid UTF-8 bytes replaced by U+FFFD"), report.note)
        let lines = try jsonLines(bytes)
        let header = try XCTUnwrap(lines.first as? [String: Any])
        XCTAssertEqual(header["version"] as? Int, 2)
        XCTAssertEqual(header["width"] as? Int, 80)
        XCTAssertEqual(header["height"] as? Int, 24)
        XCTAssertEqual(header["timestamp"] as? Int, 1_790_000_000)
        XCTAssertEqual((header["env"] as? [String: String])?["TERM"], "xterm-256color")
        let events = lines.dropFirst().map { $0 as! [Any] }
        XCTAssertEqual(events.map { $0[1] as! String }, ["o", "i", "o", "o", "r", "m", "o", "o"])
        XCTAssertEqual(events.map { $0[0] as! Double }, [0, 0.5, 0.5, 0.75, 0.75, 0.75, 1.75, 1.75])
        XCTAssertEqual(events[2][2] as? String, "caf")
        XCTAssertEqual(events[3][2] as? String, "é \u{1B}[1;31mred\u{1B}[0m\r\n")
        XCTAssertEqual(events[4][2] as? String, "120x40")
        XCTAssertEqual(events[5][2] as? String, "step 2")
        XCTAssertEqual(events[6][2] as? String, "\u{FFFD}\u{FFFD}bad bytes\n")
    }

    func testAsciicastV3FieldByField() throws {
        let path = try makeTerminalRecording()
        let (bytes, report) = try RecordingExporter.export(path: path, format: .asciicastV3)
        XCTAssertEqual(report.replacedBytes, 2)
        let lines = try jsonLines(bytes)
        let header = try XCTUnwrap(lines.first as? [String: Any])
        XCTAssertEqual(Set(header.keys), ["version", "term", "timestamp", "command", "title"])
        XCTAssertEqual(header["version"] as? Int, 3)
        let term = try XCTUnwrap(header["term"] as? [String: Any])
        XCTAssertEqual(term["cols"] as? Int, 80)
        XCTAssertEqual(term["rows"] as? Int, 24)
        XCTAssertEqual(term["type"] as? String, "xterm-256color")
        XCTAssertEqual(header["timestamp"] as? Int, 1_790_000_000)
        XCTAssertEqual(header["command"] as? String, "cat /etc/hosts")
        let events = lines.dropFirst().map { $0 as! [Any] }
        for event in events { XCTAssertEqual(event.count, 3) }
        XCTAssertEqual(events.map { $0[1] as! String }, ["o", "i", "o", "o", "r", "m", "o", "o", "x"])
        // Intervals since the previous event, not absolute times.
        XCTAssertEqual(events.map { $0[0] as! Double }, [0, 0.5, 0, 0.25, 0, 0, 1.0, 0, 0])
        XCTAssertEqual(events.last?[2] as? String, "3")
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).contains("[0.250000, \"o\", "), "six-decimal intervals")
    }

    func testAsciinemaAcceptsTheV2Export() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/asciinema") else {
            throw XCTSkip("asciinema is not installed (apt-get install asciinema)")
        }
        let path = try makeTerminalRecording()
        let (bytes, _) = try RecordingExporter.export(path: path, format: .asciicastV2)
        let cast = dir.path + "/term.cast"
        writeBytes(bytes, to: cast)
        // asciinema reads keys from /dev/tty, so it runs under script(1) for a controlling
        // terminal; its stdout goes to a file so the bytes are not rewritten by a pty.
        let printedPath = dir.path + "/printed"
        let errorsPath = dir.path + "/errors"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qec", "/usr/bin/asciinema cat '\(cast)' > '\(printedPath)' 2> '\(errorsPath)'", "/dev/null"]
        process.environment = ["HOME": dir.path, "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let printed = Data(fileBytes(printedPath))
        let complaints = String(decoding: fileBytes(errorsPath), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, complaints)
        let expected = "That was ok\rThis is better.\r\ncafé \u{1B}[1;31mred\u{1B}[0m\r\n\u{FFFD}\u{FFFD}bad bytes\n\u{1B}]0;title\u{07}progress 10%\rprogress 100%\n"
        XCTAssertEqual(String(decoding: printed, as: UTF8.self), expected)
    }

    /// `asciinema play` (Debian's asciinema 2.2, which reads v2) plays the export through to the
    /// end and writes exactly the recorded output: the markers, resizes and input events it
    /// does not show are accepted, not errors.
    func testAsciinemaPlaysTheV2Export() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/asciinema") else {
            throw XCTSkip("asciinema is not installed (make deps)")
        }
        let path = try makeTerminalRecording()
        let (bytes, _) = try RecordingExporter.export(path: path, format: .asciicastV2)
        let cast = dir.path + "/term.cast"
        writeBytes(bytes, to: cast)
        let printedPath = dir.path + "/played"
        let errorsPath = dir.path + "/play-errors"
        // `play` wants a terminal for its keys: script(1) gives it one; its output goes to a file.
        // -s 8 plays the 1.75 s recording in about a quarter of a second.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qec", "/usr/bin/asciinema play -s 8 '\(cast)' > '\(printedPath)' 2> '\(errorsPath)'", "/dev/null"]
        process.environment = ["HOME": dir.path, "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin", "TERM": "xterm-256color"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let complaints = String(decoding: fileBytes(errorsPath), as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, complaints)
        XCTAssertEqual(complaints, "")
        let expected = "That was ok\rThis is better.\r\ncafé \u{1B}[1;31mred\u{1B}[0m\r\n\u{FFFD}\u{FFFD}bad bytes\n\u{1B}]0;title\u{07}progress 10%\rprogress 100%\n"
        XCTAssertEqual(String(decoding: fileBytes(printedPath), as: UTF8.self), expected)
    }

    func testTextExportReadsLikeTheScreen() throws {
        let path = try makeTerminalRecording()
        let (bytes, report) = try RecordingExporter.export(path: path, format: .text)
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self), "This is better.\ncafé red\n\u{FFFD}\u{FFFD}bad bytes\nprogress 100%\n")
        XCTAssertEqual(report.replacedBytes, 2)
    }

    func testTextRendererAppliesLineEditing() {
        var renderer = TextRenderer()
        let input = "12345\rab\nabc\u{8}\u{8}X\nfoo\u{1B}[2Kbar\nx\u{1B}[10Gy\nkeep\u{1B}[3D\u{1B}[Kend\n\u{1B}(Bplain\u{1B}P1;2q\u{1B}\\\n"
        var out = renderer.feed(Array(input.utf8))
        out += renderer.finish()
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "ab345\naXc\n   bar\nx        y\nkend\nplain\n")
    }

    func testUTF8DecoderCarriesSplitSequencesAndReplacesMaximalSubparts() {
        var decoder = UTF8StreamDecoder()
        var out = decoder.decode([0xF0, 0x9F])                     // first half of 🎉
        out += decoder.decode([0x8E, 0x89, 0x41])                   // second half, "A"
        out += decoder.decode([0xE2, 0x82, 0x41])                   // truncated € then "A": one U+FFFD for 2 bytes
        out += decoder.decode([0xC0, 0xAF, 0xED, 0xA0, 0x80])       // overlong and surrogate: each byte replaced
        out += decoder.decode([0xE2])                               // left incomplete at the end
        out += decoder.finish()
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "🎉A\u{FFFD}A" + String(repeating: "\u{FFFD}", count: 5) + "\u{FFFD}")
        XCTAssertEqual(String(decoding: out, as: UTF8.self).replacingOccurrences(of: "\u{FFFD}", with: "").count, 3)
        XCTAssertEqual(decoder.replacedBytes, 2 + 5 + 1)
    }

    func testAnUnfinishedRecordingExportsUpToItsLastCompleteRecord() throws {
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: dir.path, header: sampleHeader(id: "live"), signer: testSigner, clock: clock.read, options: noIndex())
        try writer.append(.stdout, Array("so far".utf8))
        clock.advance(seconds: 1)
        try writer.flushIfDue()
        writer.waitUntilWritten()
        let (bytes, report) = try RecordingExporter.export(path: writer.path, format: .raw)
        XCTAssertEqual(bytes, Array("so far".utf8))
        XCTAssertTrue(report.unfinished)
        try writer.finish()
    }

    private func jsonLines(_ bytes: [UInt8]) throws -> [Any] {
        try String(decoding: bytes, as: UTF8.self).split(separator: "\n").map {
            try JSONSerialization.jsonObject(with: Data($0.utf8), options: [.fragmentsAllowed])
        }
    }
}

/// A session without a pty (an exec) has no terminal size: the asciicast export declares the
/// documented default 80x24 instead of 0x0, which players render as nothing.
final class NonPtyAsciicastTests: XCTestCase {
    func makeExecRecording(in directory: String) throws -> String {
        var header = sampleHeader(id: "exec", command: "uptime")
        header.terminalType = nil
        header.columns = 0
        header.rows = 0
        let clock = ManualClock()
        let writer = try RecordingWriter(directory: directory, header: header, signer: testSigner, clock: clock.read, options: noIndex())
        try writer.append(.stdout, Array(" 12:00:00 up 3 days,  load average: 0.00\n".utf8))
        clock.advance(seconds: 0.5)
        try writer.append(.stderr, Array("a line with \u{2028} and \"quotes\"\n".utf8))
        try writer.exit(status: 0)
        try writer.finish()
        return writer.path
    }

    func testNonPtyExportDeclaresTheDefaultSize() throws {
        let dir = try TemporaryDirectory()
        let path = try makeExecRecording(in: dir.path)
        let (v2, _) = try RecordingExporter.export(path: path, format: .asciicastV2)
        let v2Header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(v2.split(separator: 0x0A)[0])) as? [String: Any])
        XCTAssertEqual(v2Header["width"] as? Int, 80)
        XCTAssertEqual(v2Header["height"] as? Int, 24)
        let (v3, _) = try RecordingExporter.export(path: path, format: .asciicastV3)
        let v3Header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(v3.split(separator: 0x0A)[0])) as? [String: Any])
        let term = try XCTUnwrap(v3Header["term"] as? [String: Any])
        XCTAssertEqual(term["cols"] as? Int, 80)
        XCTAssertEqual(term["rows"] as? Int, 24)
        for line in v3.split(separator: 0x0A) { XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line))) }
    }

    /// Debian's asciinema (2.x reads v2) parses and plays the export. It insists on a terminal,
    /// so it runs under util-linux `script`, which gives it a pty.
    func testAsciinemaPlaysTheNonPtyExport() throws {
        for tool in ["/usr/bin/asciinema", "/usr/bin/script"] where !FileManager.default.isExecutableFile(atPath: tool) {
            throw XCTSkip("\(tool) is not installed (apt-get install asciinema util-linux)")
        }
        let dir = try TemporaryDirectory()
        let (v2, _) = try RecordingExporter.export(path: try makeExecRecording(in: dir.path), format: .asciicastV2)
        let cast = dir.path + "/exec.cast"
        writeBytes(v2, to: cast)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qec", "asciinema play -s 20 '\(cast)'", "/dev/null"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("load average: 0.00"), text)
        XCTAssertTrue(text.contains("a line with \u{2028} and \"quotes\""), text)
    }
}
