import Crypto
import Foundation
import Synchronization
import XCTest
@testable import Recording
import SSHCertificates

/// A clock the test moves by hand, so flush and checkpoint deadlines are exact, not slept for.
final class ManualClock: Sendable {
    private let nanos = Mutex<UInt64>(1_000_000_000)
    func advance(seconds: Double) { nanos.withLock { $0 += UInt64(seconds * 1e9) } }
    var read: @Sendable () -> UInt64 { { [self] in nanos.withLock { $0 } } }
}

/// A directory removed when the test ends.
final class TemporaryDirectory {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("ghrec-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func sampleHeader(id: String = "s1", command: String? = "cat /etc/hosts", inputRecorded: Bool = true,
                  subject: String = "alice@example.com", target: String = "web-01", scopes: [String] = ["ops-read"],
                  start: UInt64 = 1_790_000_000_000_000) -> SessionHeader {
    SessionHeader(sessionID: id, channel: 0, certificateKeyID: "agent-42", certificateSerial: 7, scopes: scopes,
                  context: "task-9f2", subject: subject, sourceAddress: "127.0.0.1:50000", target: target, login: "deploy",
                  command: command, terminalType: "xterm-256color", columns: 80, rows: 24, startTimeMicros: start,
                  inputRecorded: inputRecorded)
}

let testSigner: SSHPrivateKey = try! SSHPrivateKey.generate(.ed25519)

func noIndex() -> RecordingWriter.Options {
    var options = RecordingWriter.Options()
    options.updateIndex = false
    return options
}

/// Deterministic bytes covering every byte value, including invalid UTF-8.
func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    var bytes = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        bytes[i] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}

func sha256Hex(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

/// All records of a finished recording, in order.
func readAll(_ path: String, allowTornTail: Bool = false) throws -> [Record] {
    let reader = try RecordingReader(path: path, allowTornTail: allowTornTail)
    var records: [Record] = []
    while let record = try reader.next() { records.append(record) }
    return records
}

func streamBytes(_ records: [Record], _ stream: RecordStream) -> [UInt8] {
    var out: [UInt8] = []
    for record in records { if case .data(let s, let bytes) = record.content, s == stream { out += bytes } }
    return out
}

func fileBytes(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }
func writeBytes(_ bytes: [UInt8], to path: String) { FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

/// A small finished recording: header, resize, stdin, stdout, stderr, marker, a checkpoint,
/// more output, exit, trailer.
func makeSmallRecording(in directory: String, id: String = "small") throws -> (path: String, clock: ManualClock) {
    let clock = ManualClock()
    let writer = try RecordingWriter(directory: directory, header: sampleHeader(id: id), signer: testSigner, clock: clock.read, options: noIndex())
    try writer.append(.stdout, Array("hello\r\n".utf8))
    clock.advance(seconds: 0.1)
    try writer.append(.stdin, Array("ls\r".utf8))
    clock.advance(seconds: 0.1)
    try writer.resize(cols: 100, rows: 30)
    try writer.append(.stderr, Array("warn\n".utf8))
    clock.advance(seconds: 0.1)
    try writer.marker("command started")
    clock.advance(seconds: 5.0)
    try writer.append(.stdout, [0xFF, 0xFE, 0x00, 0x1B, 0x5B, 0x32, 0x4A])  // checkpoint becomes due here
    clock.advance(seconds: 0.2)
    try writer.append(.stdout, Array("bye\n".utf8))
    try writer.exit(status: 3)
    try writer.finish()
    return (writer.path, clock)
}

/// Frames of a file as (offset, size, type, sequence), read without any checks beyond layout.
func frameMap(_ bytes: [UInt8]) -> [(offset: Int, size: Int, type: UInt8, sequence: UInt64)] {
    var frames: [(Int, Int, UInt8, UInt64)] = []
    var offset = FrameLayout.preambleSize
    while offset + FrameLayout.headSize <= bytes.count {
        let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
        var sequence: UInt64 = 0
        for i in 0..<8 { sequence |= UInt64(bytes[offset + 5 + i]) << (8 * UInt64(i)) }
        let size = FrameLayout.overhead + length
        guard offset + size <= bytes.count else { break }
        frames.append((offset, size, bytes[offset + 4], sequence))
        offset += size
    }
    return frames
}
