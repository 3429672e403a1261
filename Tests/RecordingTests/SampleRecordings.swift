import Foundation
import XCTest
@testable import Recording
import SSHCertificates

/// Writes sample recordings for trying the CLI by hand and for scripts: runs only with
/// GATEHOUSE_RECORDING_SAMPLES=<dir> and GATEHOUSE_RECORDING_KEY=<OpenSSH private key file>
/// (e.g. the recording key in a CA store: STATE/ca/recording/keys/*.key).
final class SampleRecordings: XCTestCase {
    func testWriteSampleRecordings() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let directory = environment["GATEHOUSE_RECORDING_SAMPLES"], let keyPath = environment["GATEHOUSE_RECORDING_KEY"] else {
            throw XCTSkip("set GATEHOUSE_RECORDING_SAMPLES and GATEHOUSE_RECORDING_KEY to write sample recordings")
        }
        let signer = try OpenSSHPrivateKeyFile.parse(String(contentsOfFile: keyPath, encoding: .utf8))
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let now = WallClock.microseconds()
        // An interactive shell with colours, a progress bar, a marker and a typed command.
        let clock = ManualClock()
        var header = sampleHeader(id: "demo-shell", command: nil, subject: "alice@example.com", target: "web-01",
                                  scopes: ["ops-read"], start: now - 3_600_000_000)
        header.columns = 100; header.rows = 30
        let shell = try RecordingWriter(directory: directory, header: header, signer: signer, clock: clock.read)
        try shell.append(.stdout, Array("deploy@web-01:~$ ".utf8))
        for key in "systemctl status nginx\r" { clock.advance(seconds: 0.12); try shell.append(.stdin, Array(String(key).utf8)); try shell.append(.stdout, Array(String(key).utf8)) }
        try shell.marker("command: systemctl status nginx")
        clock.advance(seconds: 0.3)
        try shell.append(.stdout, Array("\r\n\u{1B}[1;32m●\u{1B}[0m nginx.service - A high performance web server\r\n     Active: \u{1B}[1;32mactive (running)\u{1B}[0m\r\n".utf8))
        for percent in stride(from: 0, through: 100, by: 10) {
            clock.advance(seconds: 0.4)
            try shell.append(.stdout, Array("\rcopying [\(String(repeating: "#", count: percent / 10))\(String(repeating: " ", count: 10 - percent / 10))] \(percent)%".utf8))
        }
        clock.advance(seconds: 12)  // an idle stretch for --idle-limit
        try shell.append(.stdout, Array("\r\ndeploy@web-01:~$ exit\r\n".utf8))
        try shell.exit(status: 0)
        try shell.finish()
        // An exec session with invalid UTF-8 on stderr and a non-zero exit.
        let exec = try RecordingWriter(directory: directory, header: sampleHeader(id: "demo-exec", command: "cat /var/log/app.bin",
                                                                                   subject: "bob@example.com", target: "db-01", scopes: ["db-read"], start: now - 1_800_000_000),
                                       signer: signer)
        try exec.append(.stdout, pseudoRandomBytes(200_000, seed: 5))
        try exec.append(.stderr, [0xFF] + Array("cat: short read\n".utf8))
        try exec.exit(status: 1)
        try exec.finish()
        // A session whose writer died: no trailer, torn tail.
        let crashed = try RecordingWriter(directory: directory, header: sampleHeader(id: "demo-crashed", command: "tail -f /var/log/syslog",
                                                                                      subject: "alice@example.com", target: "web-02", start: now - 600_000_000),
                                          signer: signer, clock: clock.read, options: noIndex())
        try crashed.append(.stdout, Array("Nov 22 17:00:01 web-02 CRON[1]: session opened\n".utf8))
        clock.advance(seconds: 1)
        try crashed.flushIfDue()
        crashed.waitUntilWritten()
        let path = crashed.path
        let bytes = fileBytes(path)
        let last = frameMap(bytes).last!
        writeBytes(bytes + Array(bytes[last.offset..<last.offset + min(last.size - 1, 30)]), to: path + ".tmp")  // a torn write
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: path + ".tmp", toPath: path)
    }
}
