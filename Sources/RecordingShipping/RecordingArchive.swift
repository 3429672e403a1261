import Foundation
import ObjectStorage
import Recording
import StateStore

/// A recording as the archive knows it: its index line and where it is.
public struct ArchivedRecording: Sendable, Equatable {
    public var summary: RecordingSummary
    /// local, shipping or shipped (from the database); shipped when listed from the bucket.
    public var location: String
    /// The replica whose spool held it (database only).
    public var replicaID: String?
    /// Full key in the bucket, when shipped.
    public var objectKey: String?
    /// Hex SHA-256 of the file as shipped (database only).
    public var sha256: String?
}

/// Reading recordings back for `sessions list`, `replay`, `export` and `verify`: the index from
/// the database (every replica's recordings, shipped or not) or, without one, from a LIST of
/// the bucket and each recording's summary object; the recording itself fetched to a file.
public struct RecordingArchive: Sendable {
    public let client: S3Client
    public let catalog: RecordingCatalog?

    public init(client: S3Client, catalog: RecordingCatalog?) {
        self.client = client
        self.catalog = catalog
    }

    /// Every recording, oldest first.
    public func list() async throws -> [ArchivedRecording] {
        if let catalog {
            return try await catalog.list().map(Self.archived)
        }
        var found: [ArchivedRecording] = []
        for object in try await client.listObjects() where object.name.hasSuffix(".json") {
            let data = try await client.getObject(object.name, limit: 1 << 20)
            guard let summary = try? RecordingSummary.decoder().decode(RecordingSummary.self, from: data) else { continue }
            found.append(ArchivedRecording(summary: summary, location: "shipped", replicaID: nil,
                                           objectKey: client.key(RecordingShipper.objectName(recordingID: summary.recordingID)), sha256: nil))
        }
        return found.sorted { ($0.summary.startTimeMicros, $0.summary.recordingID) < ($1.summary.startTimeMicros, $1.summary.recordingID) }
    }

    /// One recording by id ("<session>-ch<n>"), or by session id when the session has one
    /// recording (or a channel 0).
    public func find(_ id: String) async throws -> ArchivedRecording? {
        if let catalog {
            if let entry = try await catalog.entry(recordingID: id) { return try Self.archived(entry) }
            let entries = try await catalog.entries(sessionID: id)
            if entries.count == 1 { return try Self.archived(entries[0]) }
            return try entries.first { $0.channel == 0 }.map(Self.archived)
        }
        for candidate in [id, id + "-ch0"] {
            do {
                let data = try await client.getObject(RecordingShipper.summaryObjectName(recordingID: candidate), limit: 1 << 20)
                let summary = try RecordingSummary.decoder().decode(RecordingSummary.self, from: data)
                return ArchivedRecording(summary: summary, location: "shipped", replicaID: nil,
                                         objectKey: client.key(RecordingShipper.objectName(recordingID: candidate)), sha256: nil)
            } catch let error as S3ServiceError where error.status == 404 {
                continue
            }
        }
        return nil
    }

    /// Downloads the shipped recording to `path`. When the index knows the file's SHA-256, the
    /// download must hash to it (a different object under the key is refused, not verified).
    public func fetch(_ recording: ArchivedRecording, to path: String) async throws {
        let name = RecordingShipper.objectName(recordingID: recording.summary.recordingID)
        try await client.getObject(name, toFile: path)
        if let expected = recording.sha256 {
            let digest = try FileDigest(path: path)
            guard digest.sha256 == expected else {
                throw ShippingError.conflict(recordingID: recording.summary.recordingID,
                                             reason: "the object \(client.key(name)) hashes to \(digest.sha256), the index recorded \(expected) when it was shipped")
            }
        }
    }

    static func archived(_ entry: RecordingCatalogEntry) throws -> ArchivedRecording {
        let summary = try RecordingSummary.decoder().decode(RecordingSummary.self, from: Data(entry.summary.utf8))
        return ArchivedRecording(summary: summary, location: entry.state.rawValue, replicaID: entry.replicaID,
                                 objectKey: entry.objectKey, sha256: entry.sha256)
    }
}
