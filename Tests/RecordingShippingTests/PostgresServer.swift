// A copy of Tests/StateStoreTests/PostgresServer.swift (test targets cannot import each other).
import Foundation
import ProcessSupport

/// A real PostgreSQL 15 (Debian's postgresql-15) for the tests: `initdb` into a temporary
/// directory, `postgres` on 127.0.0.1 only at a free port, stopped by its pid.
///
/// PostgreSQL refuses to run as root. When the tests run as root (as `make test` does in a
/// container), initdb and postgres run as the dedicated system user `gatehouse-pg` (created
/// here once with `useradd --system` when missing; no home, no login shell), switched to with
/// `setpriv`, which execs in place: the pid this process spawns *is* the postmaster's, so it
/// is stopped (SIGINT, PostgreSQL's fast shutdown) and reaped by that pid. As any other user
/// they run as that user.
///
/// Authentication is what production uses: `scram-sha-256` over TCP for the role `gatehouse`
/// with a random password (trust only on the Unix socket inside the temporary directory).
final class PostgresServer: @unchecked Sendable {
    static let bin = "/usr/lib/postgresql/15/bin"
    static let systemUser = "gatehouse-pg"

    let directory: String
    let port: Int
    let pid: pid_t
    let username = "gatehouse"
    let password: String
    private var stopped = false

    /// Starts a server; throws with the server's log when it does not accept connections
    /// within `deadline` seconds.
    init(deadline: TimeInterval = 60) throws {
        guard FileManager.default.isExecutableFile(atPath: "\(Self.bin)/initdb") else {
            throw Failure("PostgreSQL 15 is not installed (\(Self.bin)/initdb): apt-get install postgresql-15 (make deps does)")
        }
        let account = try Self.account()
        var template = Array("/tmp/gatehouse-pg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Failure("mkdtemp: \(String(cString: strerror(errno)))") }
        directory = String(cString: made)
        password = (0..<24).map { _ in String("abcdefghijkmnopqrstuvwxyz23456789".randomElement()!) }.joined()
        do {
            try Data((password + "\n").utf8).write(to: URL(fileURLWithPath: "\(directory)/pwfile"))
            if let account { _ = chown(directory, account.uid, account.gid); _ = chown("\(directory)/pwfile", account.uid, account.gid) }
            let (program, arguments) = Self.invocation(account, [
                "\(Self.bin)/initdb", "-D", "\(directory)/data", "-U", username, "--pwfile", "\(directory)/pwfile",
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync",
            ])
            let initdb = try runBinary(program, arguments, environment: ["PATH": "/usr/bin:/bin", "LANG": "C"])
            guard initdb.status == 0 else { throw Failure("initdb failed (\(initdb.status)): \(initdb.err)") }
            var lastError = ""
            for _ in 0..<3 {
                let port = try freePort()
                let pid = try Self.spawn(account, log: "\(directory)/postgres.log", [
                    "\(Self.bin)/postgres", "-D", "\(directory)/data", "-k", directory, "-p", String(port),
                    "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "logging_collector=off",
                ])
                switch Self.waitUntilAccepting(pid: pid, port: port, socketDirectory: directory, deadline: deadline) {
                case .ready:
                    self.port = port
                    self.pid = pid
                    return
                case .exited(let status):
                    // Most likely the free port was taken meanwhile: try another.
                    lastError = "postgres exited with status \(status): " + Self.tail("\(directory)/postgres.log")
                case .timedOut:
                    kill(pid, SIGKILL)
                    var status: Int32 = 0
                    waitpid(pid, &status, 0)
                    throw Failure("postgres did not accept connections within \(Int(deadline)) s: " + Self.tail("\(directory)/postgres.log"))
                }
            }
            throw Failure(lastError)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// Stops the server by its pid (SIGINT: fast shutdown, which ends every session and
    /// checkpoints), waits for it to exit, and removes the directory.
    func stop() {
        guard !stopped else { return }
        stopped = true
        kill(pid, SIGINT)
        var status: Int32 = 0
        let until = Date().addingTimeInterval(30)
        var exited = false
        while Date() < until {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { exited = true; break }
            usleep(20_000)
        }
        if !exited {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }

    /// A new, empty database (each test gets its own; the server is shared).
    func createDatabase(_ name: String = "t_" + UUID().uuidString.prefix(8).lowercased()) throws -> String {
        let r = try runBinary("\(Self.bin)/createdb", ["-h", directory, "-p", String(port), "-U", username, name],
                              environment: ["PATH": "/usr/bin:/bin"])
        guard r.status == 0 else { throw Failure("createdb \(name) failed: \(r.err)") }
        return name
    }

    /// Runs SQL as the superuser `gatehouse` over the Unix socket (psql, stop on the first error).
    @discardableResult
    func psql(_ database: String, _ sql: String) throws -> String {
        let r = try runBinary("\(Self.bin)/psql", ["-h", directory, "-p", String(port), "-U", username, "-d", database,
                                                   "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                              environment: ["PATH": "/usr/bin:/bin"])
        guard r.status == 0 else { throw Failure("psql failed: \(r.err)") }
        return r.out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func url(_ database: String, password: String? = nil) -> String {
        "postgres://\(username):\(password ?? self.password)@127.0.0.1:\(port)/\(database)"
    }

    // MARK: Starting

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    struct Account { let uid: uid_t; let gid: gid_t }

    /// The account to run PostgreSQL as: nil when not root (run as ourselves), else
    /// `gatehouse-pg`, created when missing.
    static func account() throws -> Account? {
        guard geteuid() == 0 else { return nil }
        if getpwnam(systemUser) == nil {
            let r = try runBinary("/usr/sbin/useradd", ["--system", "--no-create-home", "--home-dir", "/nonexistent",
                                                         "--shell", "/usr/sbin/nologin", "--user-group", systemUser])
            guard r.status == 0 || getpwnam(systemUser) != nil else { throw Failure("useradd \(systemUser) failed: \(r.err)") }
        }
        guard let entry = getpwnam(systemUser) else { throw Failure("no user \(systemUser)") }
        return Account(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    static func privileges(_ account: Account?) -> [String] {
        guard let account else { return [] }
        return ["--reuid=\(account.uid)", "--regid=\(account.gid)", "--clear-groups", "--"]
    }

    /// The program and arguments that run `command` as `account` (setpriv execs in place).
    static func invocation(_ account: Account?, _ command: [String]) -> (String, [String]) {
        guard account != nil else { return (command[0], Array(command.dropFirst())) }
        return ("/usr/bin/setpriv", privileges(account) + command)
    }

    /// posix_spawn with stdout and stderr to `log`, stdin from /dev/null, default signal
    /// dispositions and no blocked signals (the test process may have either).
    static func spawn(_ account: Account?, log: String, _ command: [String]) throws -> pid_t {
        let (argv0, rest) = invocation(account, command)
        let arguments = [argv0] + rest
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), defaults = sigset_t()
        sigemptyset(&none)
        sigemptyset(&defaults)
        for sig in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let environment: [String] = ["PATH=/usr/bin:/bin", "LANG=C"]
        let envp = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv0, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw Failure("cannot start \(argv0): \(String(cString: strerror(rc)))") }
        return pid
    }

    enum Readiness { case ready, exited(Int32), timedOut }

    /// Polls `pg_isready` (the server's own readiness probe: it answers only once the server
    /// accepts sessions, not merely TCP) until `deadline`, and notices an early exit.
    static func waitUntilAccepting(pid: pid_t, port: Int, socketDirectory: String, deadline: TimeInterval) -> Readiness {
        let until = Date().addingTimeInterval(deadline)
        while Date() < until {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { return .exited(status) }
            if let r = try? runBinary("\(bin)/pg_isready", ["-q", "-h", "127.0.0.1", "-p", String(port), "-t", "2"],
                                      environment: ["PATH": "/usr/bin:/bin"]), r.status == 0 {
                return .ready
            }
            usleep(50_000)
        }
        return .timedOut
    }

    static func tail(_ path: String) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n").suffix(15).joined(separator: "\n")
    }
}
