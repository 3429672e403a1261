import Foundation
import XCTest
@testable import Recording
import SSHCertificates

/// The layout promised in docs/recording-format.md, checked against real files.
final class FormatTests: XCTestCase {
    func testCRC32CIsCastagnoli() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        // Unaligned starts and every tail length take the same path as the byte-at-a-time loop.
        let bytes = pseudoRandomBytes(100, seed: 3)
        for start in 0..<9 {
            var slow: UInt32 = 0xFFFF_FFFF
            for byte in bytes[start...] {
                slow ^= UInt32(byte)
                for _ in 0..<8 { slow = slow & 1 != 0 ? (slow >> 1) ^ 0x82F6_3B78 : slow >> 1 }
            }
            XCTAssertEqual(CRC32C.checksum(Array(bytes[start...])), ~slow)
        }
    }

    func testPreambleFrameAndHeaderLayout() throws {
        let dir = try TemporaryDirectory()
        let path = try makeSmallRecording(in: dir.path).path
        let bytes = fileBytes(path)
        XCTAssertEqual(Array(bytes[0..<8]), [0x47, 0x48, 0x52, 0x45, 0x43, 0x00, 0x01, 0x00])
        let frames = frameMap(bytes)
        XCTAssertEqual(frames.map(\.sequence), Array(0...10))
        XCTAssertEqual(frames.last.map { $0.offset + $0.size }, bytes.count)
        // Record 1: stdout "hello\r\n" at time 0.
        let first = frames[1]
        XCTAssertEqual(Array(bytes[first.offset..<first.offset + 5]), [7, 0, 0, 0, 0x03])
        XCTAssertEqual(Array(bytes[first.offset + 25..<first.offset + 32]), Array("hello\r\n".utf8))
        let headCRC = CRC32C.checksum(Array(bytes[first.offset..<first.offset + 21]))
        XCTAssertEqual(Array(bytes[first.offset + 21..<first.offset + 25]), withUnsafeBytes(of: headCRC.littleEndian) { Array($0) })
        XCTAssertEqual(hexString(Array(bytes[first.offset + 32..<first.offset + 64])), sha256Hex(Array("hello\r\n".utf8)))
        // The header is sorted JSON naming the recording key.
        let header = frames[0]
        let json = try JSONSerialization.jsonObject(with: Data(bytes[header.offset + 25..<header.offset + header.size - 32])) as? [String: Any]
        XCTAssertEqual(json?["format"] as? String, "gatehouse-recording")
        XCTAssertEqual(json?["version"] as? Int, 1)
        XCTAssertEqual(json?["recordingKey"] as? String, testSigner.publicKey.openSSHLine)
        let session = try XCTUnwrap(json?["session"] as? [String: Any])
        XCTAssertEqual(Set(session.keys), ["sessionID", "channel", "certificateKeyID", "certificateSerial", "scopes", "context", "subject",
                                           "sourceAddress", "target", "login", "command", "terminalType", "columns", "rows",
                                           "startTimeMicros", "inputRecorded"])
        // Resize payload: u16 columns, u16 rows.
        let resize = frames[3]
        XCTAssertEqual(Array(bytes[resize.offset + 25..<resize.offset + 29]), [100, 0, 30, 0])
    }

    func testRandomMutationsNeverCrashAndNeverPass() throws {
        let dir = try TemporaryDirectory()
        let path = try makeSmallRecording(in: dir.path).path
        let original = fileBytes(path)
        var state: UInt64 = 12345
        func random(_ bound: Int) -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int((state >> 33) % UInt64(bound)) }
        for _ in 0..<400 {
            var bytes = original
            for _ in 0...random(4) {
                switch random(4) {
                case 0: bytes[random(bytes.count)] = UInt8(random(256))
                case 1: bytes.insert(UInt8(random(256)), at: random(bytes.count))
                case 2: if bytes.count > 1 { bytes.remove(at: random(bytes.count)) }
                default: bytes = Array(bytes[0..<random(bytes.count)])
                }
                if bytes.isEmpty { break }
            }
            writeBytes(bytes, to: path)
            let report = RecordingVerifier.verify(path: path, trustedKeys: [testSigner.publicKey])
            if bytes != original { XCTAssertFalse(report.isIntact, "a mutated file passed") }
            _ = try? RecordingExporter.export(path: path, format: .asciicastV3)
            _ = try? SeekIndex.build(path: path)
        }
    }
}
