import Foundation
@_exported import ProcessSupport
import XCTest
@testable import SSHCertificates

/// Runs a real program (ssh-keygen, sshd, ssh) and captures its output.
struct ProcessResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

@discardableResult
func runTool(_ executable: String, _ arguments: [String], stdin: String? = nil, check: Bool = true,
         file: StaticString = #filePath, line: UInt = #line) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : "/usr/bin/\(executable)")
    p.arguments = arguments
    let out = Pipe(), err = Pipe(), input = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = input
    try p.run()
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    // Read both pipes before waiting so a chatty child cannot block on a full pipe.
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let result = ProcessResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
    if check && result.status != 0 {
        XCTFail("\(executable) \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)", file: file, line: line)
    }
    return result
}

/// A fresh directory under the system temp dir, removed by the caller's tearDown.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("gatehouse-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// ssh-keygen's `-t`/`-b` arguments for each algorithm.
func keygenArguments(_ algorithm: SSHKeyAlgorithm) -> [String] {
    switch algorithm {
    case .ed25519: return ["-t", "ed25519"]
    case .ecdsaP256: return ["-t", "ecdsa", "-b", "256"]
    case .ecdsaP384: return ["-t", "ecdsa", "-b", "384"]
    case .ecdsaP521: return ["-t", "ecdsa", "-b", "521"]
    case .rsa: return ["-t", "rsa", "-b", "2048"]
    }
}

func readText(_ url: URL) throws -> String { try String(contentsOf: url, encoding: .utf8) }

func writeText(_ text: String, to url: URL, mode: Int = 0o600) throws {
    try Data(text.utf8).write(to: url)
    try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
}

var nowSeconds: UInt64 { UInt64(Date().timeIntervalSince1970) }

/// A long-running child (sshd), started by ProcessSupport's `spawnDaemon` (posix_spawn, never
/// Foundation's Process: sshd closes every inherited descriptor, which Foundation on Linux takes
/// as the child's exit).
final class Daemon {
    let pid: pid_t

    init(_ executable: String, _ arguments: [String]) throws {
        pid = try spawnDaemon(executable, arguments)
    }

    func stop() {
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}
