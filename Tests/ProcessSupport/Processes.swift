import Foundation

// Process helpers shared by the test targets that start real programs (sshd, ssh, gatehouse,
// glewlwyd): posix_spawn and waitpid with a clean signal mask, never Foundation's Process, for
// children and daemons alike, and always a deadline when waiting.

public struct BinaryResult {
    public let status: Int32
    public let stdout: Data
    public let stderr: Data
    public var out: String { String(decoding: stdout, as: UTF8.self) }
    public var err: String { String(decoding: stderr, as: UTF8.self) }
}

/// A child process with pipes on stdin, stdout and stderr, started with posix_spawn and reaped
/// with waitpid. Foundation's Process is not used: on Linux it can miss a child's exit while
/// another Process is running, and then waits forever.
public final class Child: @unchecked Sendable {
    public let pid: pid_t
    public let stdin: FileHandle
    public let stdout: FileHandle
    public let stderr: FileHandle

    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws {
        var input: [Int32] = [0, 0], output: [Int32] = [0, 0], error: [Int32] = [0, 0]
        guard pipe(&input) == 0, pipe(&output) == 0, pipe(&error) == 0 else { throw NSError(domain: "pipe", code: Int(errno)) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, error[1], 2)
        for fd in input + output + error { posix_spawn_file_actions_addclose(&actions, fd) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        // The child starts with no blocked signals and default dispositions, whatever this
        // (multi-threaded) test process has blocked or ignored.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(input[0]); close(output[1]); close(error[1])
        guard rc == 0 else {
            close(input[1]); close(output[0]); close(error[0])
            throw NSError(domain: "spawn", code: Int(rc), userInfo: [NSLocalizedDescriptionKey: "cannot start \(executable)"])
        }
        self.pid = pid
        stdin = FileHandle(fileDescriptor: input[1], closeOnDealloc: true)
        stdout = FileHandle(fileDescriptor: output[0], closeOnDealloc: true)
        stderr = FileHandle(fileDescriptor: error[0], closeOnDealloc: true)
    }

    /// Waits up to `timeout` seconds, then kills the child: a test never hangs on a stuck process.
    /// Returns nil when the child had to be killed.
    public func wait(timeout: TimeInterval) -> Int32? {
        let until = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while Date() < until {
            if waitpid(pid, &status, WNOHANG) == pid { return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        _ = wait()
        return nil
    }

    /// Waits for the exit and returns the shell-style status (128+N for a signal).
    public func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if status & 0x7f == 0 { return (status >> 8) & 0xff }
        return 128 + (status & 0x7f)
    }
}

/// Runs a program with binary stdin and captures both outputs. Output pipes are drained on
/// their own threads so neither side can block the other, whatever the volume.
public func runBinary(_ executable: String, _ arguments: [String], stdin: Data = Data(), environment: [String: String]? = nil) throws -> BinaryResult {
    let child = try Child(executable, arguments, environment: environment)
    let group = DispatchGroup()
    nonisolated(unsafe) var outData = Data(), errData = Data()
    group.enter()
    DispatchQueue.global().async { outData = child.stdout.readDataToEndOfFile(); group.leave() }
    group.enter()
    DispatchQueue.global().async { errData = child.stderr.readDataToEndOfFile(); group.leave() }
    if !stdin.isEmpty { try? child.stdin.write(contentsOf: stdin) }
    try? child.stdin.close()
    group.wait()
    let status = child.wait()
    return BinaryResult(status: status, stdout: outData, stderr: errData)
}

@discardableResult
public func runChecked(_ executable: String, _ arguments: [String]) throws -> BinaryResult {
    let r = try runBinary(executable, arguments)
    if r.status != 0 { throw NSError(domain: "run", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: "\(executable) failed: \(r.err)"]) }
    return r
}

public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

public func waitForPidFile(_ path: String) throws -> pid_t {
    let until = Date().addingTimeInterval(10)
    while Date() < until {
        if let text = try? String(contentsOfFile: path, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) { return pid }
        usleep(20_000)
    }
    throw NSError(domain: "sshd", code: 1, userInfo: [NSLocalizedDescriptionKey: "sshd did not write \(path)"])
}

public func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// Starts a long-running child with posix_spawn (Foundation's Process mistakes sshd closing its
/// inherited descriptors for an exit). The caller stops it by pid.
public func spawnDaemon(_ executable: String, _ arguments: [String]) throws -> pid_t {
    var pid: pid_t = 0
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    guard rc == 0 else { throw NSError(domain: "spawn", code: Int(rc), userInfo: [NSLocalizedDescriptionKey: "cannot start \(executable)"]) }
    return pid
}
