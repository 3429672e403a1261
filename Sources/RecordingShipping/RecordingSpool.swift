import Foundation
import Recording

/// The recordings directory shared by replicas: `RECORDINGS/<replica-id>/`, one spool per
/// replica, each written only by its replica and read by all.
///
/// Every replica must see every other replica's spool at the same path (one host, or a shared
/// filesystem): that is how a live replica finds a dead one's unfinished recordings. On a
/// shared filesystem across hosts, the writer's lock (`flock`) must reach other hosts too (NFS
/// v4 maps it to a byte-range lock; a filesystem without cross-host locks makes the heartbeat
/// the only guard against recovering a live recording).
public struct RecordingSpool: Sendable, Equatable {
    /// The configuration's `recordings:` directory.
    public let root: String
    public let replicaID: String

    public init(root: String, replicaID: String) {
        self.root = root
        self.replicaID = replicaID
    }

    /// Where this replica's bastion writes its recordings (give this to the bastion as its
    /// recording directory).
    public var ownDirectory: String { directory(of: replicaID) }

    public func directory(of replica: String) -> String { root + "/" + replica }

    /// Creates this replica's spool (0700).
    public func prepare() throws {
        try FileManager.default.createDirectory(atPath: ownDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    /// The recording files in `replica`'s spool, sorted by name (absent spool: none).
    public func recordings(of replica: String) -> [String] {
        let directory = directory(of: replica)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().filter { RecordingFiles.recordingID(ofPath: $0) != nil }.map { directory + "/" + $0 }
    }

    /// Letters, digits, '-', '_', '.', 1-64 bytes, not starting with '.': the id names a
    /// directory, so nothing that climbs out of the spool root or hides.
    public static func isValidReplicaID(_ id: String) -> Bool {
        guard !id.isEmpty, id.utf8.count <= 64, !id.hasPrefix(".") else { return false }
        return id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x5F || byte == 0x2E
        }
    }
}
