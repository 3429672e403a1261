import Foundation
import PostgresNIO
import Synchronization

/// The CA store and the revocation list shared by replicas: the files `CAStore` keeps under a
/// state directory (`ca/<name>/state.json`, `ca/<name>/keys/<id>.key`, `revocations.json`),
/// kept in `shared_files`, each sealed under the key-encryption key.
///
/// Every replica materialises them in its own state directory and runs the same `CAStore` on
/// them as a single machine does, so rotation phases, grace periods and the KRL behave exactly
/// the same. A change (rotation step, revocation, first initialisation) is made by `publish`:
/// under an advisory lock, pull what others published, let `CAStore` change the files, then
/// write every file it created, changed or deleted as a new generation and `NOTIFY`. Replicas
/// `pull` on the notification and every half second as the fallback.
///
/// Generations are taken under the lock, so they commit in order and "every row newer than
/// the last one applied" never skips one. Within a publish, keys come before the states that
/// name them, and deletions last: applying rows in generation order keeps `CAStore`'s rule that
/// a kill -9 at any point leaves a store that loads.
public final class SharedAuthorityFiles: Sendable {
    /// `pg_advisory_xact_lock` key serialising publishers ("GATECAFS").
    public static let publishLockKey: Int64 = 0x4741_5445_4341_4653
    /// The channel a publish notifies, with the last generation as payload.
    public static let channel = "gatehouse_shared_files"

    public let connection: BlockingConnection
    public let stateDirectory: String
    /// Who publishes: the replica or the admin, stored with each row.
    public let actor: String
    let key: KeyEncryptionKey
    /// The generation applied for each path, and the highest: persisted in
    /// `STATE/shared-files.json`, so a restarted replica refuses a table rolled back under it.
    private let applied: Mutex<Applied>

    struct Applied: Codable {
        var generations: [String: Int64] = [:]
        var highest: Int64 = 0
    }

    public init(connection: BlockingConnection, key: KeyEncryptionKey, stateDirectory: String, actor: String) {
        self.connection = connection
        self.key = key
        self.stateDirectory = stateDirectory
        self.actor = actor
        let saved = FileManager.default.contents(atPath: "\(stateDirectory)/shared-files.json").flatMap { try? JSONDecoder().decode(Applied.self, from: $0) }
        applied = Mutex(saved ?? Applied())
    }

    /// The highest generation this replica applied.
    public var appliedGeneration: Int64 { applied.withLock { $0.highest } }

    // MARK: Pulling

    /// Applies what others published since the last pull; returns the paths written.
    @discardableResult
    public func pull() throws(StateStoreError) -> [String] {
        try connection.run("shared CA files pull") { session in try pull(session) }
    }

    func pull(_ session: BlockingConnection.Session) throws -> [String] {
        let since = applied.withLock { $0.highest }
        let rows = try session.query("""
            SELECT path, generation, sealed, deleted FROM shared_files WHERE generation > \(since) ORDER BY generation
            """)
        var written: [String] = []
        for row in rows {
            let (path, generation, buffer, deleted) = try row.decode((String, Int64, ByteBuffer, Bool).self)
            let sealed = Array(buffer.readableBytesView)
            guard Self.isSharedPath(path) else { throw data("shared_files holds \(path), which is not a CA store file") }
            if let known = applied.withLock({ $0.generations[path] }), known >= generation {
                throw data("shared_files holds generation \(generation) of \(path), older than the \(known) this replica applied: the table was rolled back; refusing it")
            }
            guard let content = key.open(sealed, path: path, generation: generation) else {
                throw data("\(path) (generation \(generation)) does not open with this replica's key-encryption key: the replicas' keys differ, or the row was written without the key")
            }
            let target = "\(stateDirectory)/\(path)"
            if deleted {
                unlink(target)
            } else {
                try Self.writeDurably(content, to: target)
            }
            written.append(path)
            try record([path: generation])
        }
        return written
    }

    private func data(_ text: String) -> StateStoreError {
        StateStoreError(operation: "shared CA files pull", endpoint: connection.endpoint, kind: .data(text))
    }

    private func record(_ generations: [String: Int64]) throws {
        let snapshot = applied.withLock { a -> Applied in
            for (path, generation) in generations {
                a.generations[path] = generation
                a.highest = max(a.highest, generation)
            }
            return a
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try Self.writeDurably(Array(try encoder.encode(snapshot)), to: "\(stateDirectory)/shared-files.json")
    }

    // MARK: Publishing

    /// Runs `change` on the state directory's CA files with every other publisher shut out and
    /// what they published applied first; then publishes every file it created, changed or
    /// deleted, and notifies the replicas. If `change` throws, or the publish cannot commit,
    /// the files are put back as they were and nothing is published.
    public func publish<T>(_ operation: String, _ change: () throws -> T) throws -> T {
        var before: [String: [UInt8]]?
        do {
            return try connection.transaction(operation) { session in
                try session.query("SELECT pg_advisory_xact_lock(\(Self.publishLockKey))")
                try pull(session)
                let original = try Self.localFiles(stateDirectory)
                before = original
                let value = try change()
                let after = try Self.localFiles(stateDirectory)
                let changed = after.filter { original[$0.key] != $0.value }.map(\.key)
                let removed = original.keys.filter { after[$0] == nil }
                // Keys before the states that name them, revocations after; deletions last.
                func rank(_ path: String) -> Int { path.contains("/keys/") ? 0 : path.hasSuffix("state.json") ? 1 : 2 }
                let order = changed.sorted { (rank($0), $0) < (rank($1), $1) }.map { ($0, false) } + removed.sorted().map { ($0, true) }
                var generations: [String: Int64] = [:]
                for (path, deleted) in order {
                    let generation = try session.query("SELECT nextval('shared_file_generations')").first!.decode(Int64.self)
                    let sealed = ByteBuffer(bytes: try key.seal(deleted ? [] : after[path]!, path: path, generation: generation))
                    try session.query("""
                        INSERT INTO shared_files (path, generation, sealed, deleted, changed_by, changed_at)
                        VALUES (\(path), \(generation), \(sealed), \(deleted), \(actor), now())
                        ON CONFLICT (path) DO UPDATE SET generation = EXCLUDED.generation, sealed = EXCLUDED.sealed,
                            deleted = EXCLUDED.deleted, changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at
                        """)
                    generations[path] = generation
                }
                if let last = generations.values.max() {
                    try session.query("SELECT pg_notify(\(Self.channel), \(String(last)))")
                }
                try record(generations)
                return value
            }
        } catch {
            if let before { Self.restore(before, in: stateDirectory) }
            throw error
        }
    }

    /// Whether the database holds a CA store yet.
    public func databaseHoldsStore() throws(StateStoreError) -> Bool {
        try connection.run("shared CA files check") { session in
            try session.query("SELECT 1 FROM shared_files WHERE path = 'ca/user/state.json' AND NOT deleted").count > 0
        }
    }

    // MARK: Files

    /// The CA store's files under `root`, by path relative to it.
    static func localFiles(_ root: String) throws -> [String: [UInt8]] {
        var files: [String: [UInt8]] = [:]
        let fm = FileManager.default
        if let data = fm.contents(atPath: "\(root)/revocations.json") { files["revocations.json"] = Array(data) }
        for name in ["user", "target", "host", "recording"] {
            if let data = fm.contents(atPath: "\(root)/ca/\(name)/state.json") { files["ca/\(name)/state.json"] = Array(data) }
            for file in (try? fm.contentsOfDirectory(atPath: "\(root)/ca/\(name)/keys")) ?? [] where isSharedPath("ca/\(name)/keys/\(file)") {
                if let data = fm.contents(atPath: "\(root)/ca/\(name)/keys/\(file)") { files["ca/\(name)/keys/\(file)"] = Array(data) }
            }
        }
        return files
    }

    static func isSharedPath(_ path: String) -> Bool {
        if path == "revocations.json" { return true }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0] == "ca", ["user", "target", "host", "recording"].contains(parts[1]) else { return false }
        if parts.count == 3 { return parts[2] == "state.json" }
        guard parts.count == 4, parts[2] == "keys", parts[3].hasSuffix(".key"), parts[3].count > 4 else { return false }
        return parts[3].utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }
    }

    static func restore(_ files: [String: [UInt8]], in root: String) {
        let now = (try? localFiles(root)) ?? [:]
        for (path, content) in files where now[path] != content { try? writeDurably(content, to: "\(root)/\(path)") }
        for path in now.keys where files[path] == nil { unlink("\(root)/\(path)") }
    }

    /// Write to a temporary file, fsync, rename over, fsync the directory: a crash leaves the
    /// old file or the new one, never a torn one. Files and new directories are private (0600,
    /// 0700): they hold CA private keys.
    static func writeDurably(_ content: [UInt8], to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        let written = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == content.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw POSIXError(.init(rawValue: errno) ?? .EIO)
        }
        let d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if d >= 0 { fsync(d); close(d) }
    }
}
