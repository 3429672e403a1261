import ConfigurationSupport
import Foundation
import Logging
import ObjectStorage
import Recording
import RecordingShipping
import StateStore
import Synchronization

/// `sessions`, `replay`, `export` and `verify` with `--config F` naming a file whose
/// `recordings_store:` is `kind: s3`: recordings no longer on this machine are read from the
/// bucket. The index comes from the database when the file's `store:` is postgres (every
/// replica's recordings, shipped or not), else from a LIST of the bucket. A recording is
/// fetched to a private temporary directory (removed at exit) and then read by the same code
/// as a local one.
enum RecordingsArchiveAccess {
    /// The archive of `configFile`, nil when its recordings store is local.
    static func withArchive<T: Sendable>(_ configFile: String, _ body: @escaping @Sendable (RecordingArchive) async throws -> T) throws -> T? {
        let recordingsStore: RecordingsStoreConfiguration
        let store: StoreConfiguration
        do {
            recordingsStore = try RecordingsStoreConfiguration.load(file: configFile)
            store = try StoreConfiguration.load(file: configFile)
        } catch { throw CLIError("\(error)") }
        guard case .s3(let s3) = recordingsStore else { return nil }
        let client = S3Client(configuration: s3.objectStore)
        var postgres: PostgresStore?
        if case .postgres(let configuration) = store {
            var quiet = Logger(label: "gatehouse.store")
            quiet.logLevel = .critical
            do { postgres = try PostgresStore(configuration: configuration, logger: quiet) } catch { throw CLIError("\(error)") }
        }
        let database = postgres
        do {
            return try awaitBlocking {
                do {
                    if let database { try await database.checkVersion() }
                    let value = try await body(RecordingArchive(client: client, catalog: database.map { RecordingCatalog(store: $0) }))
                    await database?.shutdown()
                    return value
                } catch {
                    await database?.shutdown()
                    throw error
                }
            }
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("recordings store (\(s3.objectStore.bucket)): \(error)")
        }
    }

    /// Finds `id` in the archive and fetches it; nil when the archive does not know it.
    static func fetch(_ id: String, configFile: String, recordingsDirectory: String) throws -> String? {
        let fetched: (String?, String?)? = try withArchive(configFile) { archive in
            guard let recording = try await archive.find(id) else { return (nil, nil) }
            guard recording.location == "shipped" else {
                // Not in the bucket yet: on its replica's spool, when that is mounted here.
                let path = RecordingFiles.path(directory: recordingsDirectory + "/" + (recording.replicaID ?? ""), recordingID: recording.summary.recordingID)
                if recording.replicaID != nil, FileManager.default.fileExists(atPath: path) { return (path, nil) }
                throw CLIError("recording \(recording.summary.recordingID) is not in the bucket yet (\(recording.location) on replica \(recording.replicaID ?? "?"))")
            }
            let path = try FetchedRecordings.newPath(recordingID: recording.summary.recordingID)
            try await archive.fetch(recording, to: path)
            return (path, recording.objectKey.map { "s3://\(archive.client.configuration.bucket)/\($0)" })
        }
        guard let (path, origin) = fetched ?? nil, let path else { return nil }
        if let origin { FetchedRecordings.register(path, origin: origin) }
        return path
    }
}

/// Recordings fetched from the bucket: each in its own 0700 temporary directory (keeping the
/// recording's file name, which tools read the id from), removed when the process exits.
enum FetchedRecordings {
    private static let fetched = Mutex<[String: String]>([:])
    private static let cleanup: Void = { atexit { FetchedRecordings.removeAll() } }()

    static func newPath(recordingID: String) throws -> String {
        _ = cleanup
        var template = Array((NSTemporaryDirectory() + "/gatehouse-fetch-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CLIError("cannot create a temporary directory: \(String(cString: strerror(errno)))") }
        let directory = String(cString: made)
        fetched.withLock { $0[directory] = "" }
        return RecordingFiles.path(directory: directory, recordingID: recordingID)
    }

    static func register(_ path: String, origin: String) {
        fetched.withLock { $0[path] = origin }
    }

    /// "s3://bucket/key" for a fetched recording, nil for a local one.
    static func origin(of path: String) -> String? { fetched.withLock { $0[path] } }

    static func removeAll() {
        for (path, origin) in fetched.withLock({ $0 }) where origin.isEmpty {
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}
