import Foundation
import PostgresNIO

/// Where a recording is, in the shared index.
public enum RecordingShipState: String, Sendable, Equatable {
    /// Finished in a replica's spool, not yet in the bucket.
    case local
    /// Being uploaded under a lease.
    case shipping
    /// In the bucket, verified by HEAD (size and SHA-256).
    case shipped
}

/// One row of `recordings`: a recording as every replica sees it.
public struct RecordingCatalogEntry: Sendable, Equatable {
    public var recordingID: String
    public var sessionID: String
    public var channel: Int
    /// The replica whose spool held the file.
    public var replicaID: String
    public var subject: String
    public var target: String
    public var login: String
    public var certificateKeyID: String
    public var certificateSerial: UInt64
    public var startedAt: Date
    public var endedAt: Date?
    /// How the recording ended: normal, crash, recorder-failure.
    public var endState: String
    public var state: RecordingShipState
    /// Full key in the bucket, prefix included (set once shipped).
    public var objectKey: String?
    public var size: Int64?
    /// Hex SHA-256 of the whole file.
    public var sha256: String?
    /// The recording's index line (RecordingSummary JSON), opaque to the store.
    public var summary: String
    public var shippedAt: Date?

    public init(recordingID: String, sessionID: String, channel: Int, replicaID: String, subject: String, target: String,
                login: String, certificateKeyID: String, certificateSerial: UInt64, startedAt: Date, endedAt: Date?,
                endState: String, state: RecordingShipState, objectKey: String? = nil, size: Int64? = nil, sha256: String? = nil,
                summary: String, shippedAt: Date? = nil) {
        self.recordingID = recordingID; self.sessionID = sessionID; self.channel = channel; self.replicaID = replicaID
        self.subject = subject; self.target = target; self.login = login; self.certificateKeyID = certificateKeyID
        self.certificateSerial = certificateSerial; self.startedAt = startedAt; self.endedAt = endedAt; self.endState = endState
        self.state = state; self.objectKey = objectKey; self.size = size; self.sha256 = sha256; self.summary = summary
        self.shippedAt = shippedAt
    }
}

/// The recordings index, shipping leases and replica heartbeats replicas share (schema
/// migration 3). Every decision that must not be taken twice is one statement: a lease is
/// taken by one `INSERT … ON CONFLICT … DO UPDATE … WHERE` (lapsed or ours), and a recording
/// is marked shipped only in a transaction that finds the lease still held by the shipper.
/// Times that decide (lease expiry, heartbeat age) are the database's `now()`, never a
/// replica's clock.
public final class RecordingCatalog: Sendable {
    public let store: PostgresStore

    public init(store: PostgresStore) {
        self.store = store
    }

    // MARK: Replicas

    /// Records that `replicaID` is alive now.
    public func heartbeat(replicaID: String) async throws(StateStoreError) {
        try requireNoNUL(["replica_id": replicaID], operation: "replica heartbeat", endpoint: store.endpoint)
        _ = try await store.query("replica heartbeat", """
            INSERT INTO replicas (replica_id, last_seen) VALUES (\(replicaID), now())
            ON CONFLICT (replica_id) DO UPDATE SET last_seen = now()
            """)
    }

    /// Replicas other than `excluding` whose last heartbeat is older than `deadAfter`.
    public func staleReplicas(deadAfter: Duration, excluding: String) async throws(StateStoreError) -> [String] {
        let seconds = Self.seconds(deadAfter)
        let rows = try await store.query("stale replicas", """
            SELECT replica_id FROM replicas
            WHERE replica_id <> \(excluding) AND last_seen < now() - make_interval(secs => \(seconds))
            ORDER BY replica_id
            """)
        do { return try rows.map { try $0.decode(String.self) } } catch {
            throw StateStoreError.from(error, operation: "stale replicas", endpoint: store.endpoint)
        }
    }

    // MARK: Leases

    /// Takes (or renews) the lease on `recordingID` for `owner` for `duration`; true when
    /// `owner` holds it afterwards. One statement: a lease another owner holds unexpired is
    /// left alone and nothing comes back.
    public func takeLease(recordingID: String, owner: String, duration: Duration) async throws(StateStoreError) -> Bool {
        let operation = "recording lease take"
        try requireNoNUL(["recording_id": recordingID, "owner": owner], operation: operation, endpoint: store.endpoint)
        let seconds = Self.seconds(duration)
        let rows = try await store.query(operation, """
            INSERT INTO recording_leases AS l (recording_id, owner, lease_until)
            VALUES (\(recordingID), \(owner), now() + make_interval(secs => \(seconds)))
            ON CONFLICT (recording_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
            WHERE l.lease_until < now() OR l.owner = excluded.owner
            RETURNING owner
            """)
        return !rows.isEmpty
    }

    /// Gives the lease up (only when `owner` holds it).
    public func releaseLease(recordingID: String, owner: String) async throws(StateStoreError) {
        _ = try await store.query("recording lease release",
                                  "DELETE FROM recording_leases WHERE recording_id = \(recordingID) AND owner = \(owner)")
    }

    /// The lease's owner, when one holds it unexpired.
    public func leaseOwner(recordingID: String) async throws(StateStoreError) -> String? {
        let rows = try await store.query("recording lease read",
                                         "SELECT owner FROM recording_leases WHERE recording_id = \(recordingID) AND lease_until >= now()")
        do { return try rows.first?.decode(String.self) } catch {
            throw StateStoreError.from(error, operation: "recording lease read", endpoint: store.endpoint)
        }
    }

    // MARK: Index

    /// Inserts the entry, or updates one not yet shipped (a recovered recording's summary
    /// replaces the one before recovery). A shipped row is never moved back.
    public func upsertUnshipped(_ e: RecordingCatalogEntry) async throws(StateStoreError) {
        let operation = "recording index upsert"
        try requireNoNUL(["recording_id": e.recordingID, "session_id": e.sessionID, "replica_id": e.replicaID, "subject": e.subject,
                          "target": e.target, "login": e.login, "certificate_key_id": e.certificateKeyID, "summary": e.summary],
                         operation: operation, endpoint: store.endpoint)
        guard e.state != .shipped else {
            throw StateStoreError(operation: operation, endpoint: store.endpoint, kind: .data("a shipped recording is recorded by markShipped"))
        }
        let serial = String(e.certificateSerial)
        let channel = Int32(clamping: e.channel)
        _ = try await store.query(operation, """
            INSERT INTO recordings AS r (recording_id, session_id, channel, replica_id, subject, target, login, certificate_key_id,
                                         certificate_serial, started_at, ended_at, end_state, state, summary)
            VALUES (\(e.recordingID), \(e.sessionID), \(channel), \(e.replicaID), \(e.subject), \(e.target), \(e.login),
                    \(e.certificateKeyID), \(serial)::numeric, \(e.startedAt), \(e.endedAt), \(e.endState), \(e.state.rawValue), \(e.summary))
            ON CONFLICT (recording_id) DO UPDATE SET ended_at = excluded.ended_at, end_state = excluded.end_state,
                state = excluded.state, summary = excluded.summary
            WHERE r.state <> 'shipped'
            """)
    }

    /// Marks the recording shipped with what HEAD verified, in one transaction that first
    /// finds `owner`'s lease unexpired (and locks it): a shipper whose lease lapsed and was
    /// taken over cannot record a result. Throws `.data("… lease …")` then.
    public func markShipped(recordingID: String, owner: String, objectKey: String, size: Int64, sha256: String) async throws(StateStoreError) {
        let operation = "recording index mark shipped"
        try requireNoNUL(["object_key": objectKey], operation: operation, endpoint: store.endpoint)
        let endpoint = store.endpoint
        try await store.transaction(operation) { connection, logger in
            let held = try await connection.rows("""
                SELECT 1 FROM recording_leases WHERE recording_id = \(recordingID) AND owner = \(owner) AND lease_until >= now() FOR UPDATE
                """, logger)
            guard !held.isEmpty else {
                throw StateStoreError(operation: operation, endpoint: endpoint, kind: .data("\(owner) no longer holds the lease on \(recordingID)"))
            }
            let updated = try await connection.rows("""
                UPDATE recordings SET state = 'shipped', object_key = \(objectKey), size = \(size), sha256 = \(sha256), shipped_at = now()
                WHERE recording_id = \(recordingID) RETURNING 1
                """, logger)
            guard !updated.isEmpty else {
                throw StateStoreError(operation: operation, endpoint: endpoint, kind: .data("no index row for \(recordingID)"))
            }
        }
    }

    static let columns = """
        recording_id, session_id, channel, replica_id, subject, target, login, certificate_key_id, certificate_serial::text,
        started_at, ended_at, end_state, state, object_key, size, sha256, summary, shipped_at
        """

    /// One recording by its id.
    public func entry(recordingID: String) async throws(StateStoreError) -> RecordingCatalogEntry? {
        try await entries("recording index read", "SELECT \(unescaped: Self.columns) FROM recordings WHERE recording_id = \(recordingID)").first
    }

    /// Every recording of a session, by channel.
    public func entries(sessionID: String) async throws(StateStoreError) -> [RecordingCatalogEntry] {
        try await entries("recording index read", "SELECT \(unescaped: Self.columns) FROM recordings WHERE session_id = \(sessionID) ORDER BY channel")
    }

    /// Every recording, oldest first.
    public func list() async throws(StateStoreError) -> [RecordingCatalogEntry] {
        try await entries("recording index list", "SELECT \(unescaped: Self.columns) FROM recordings ORDER BY started_at, recording_id")
    }

    func entries(_ operation: String, _ query: PostgresQuery) async throws(StateStoreError) -> [RecordingCatalogEntry] {
        let rows = try await store.query(operation, query)
        do {
            return try rows.map { row in
                let (id, session, channel, replica, subject, target, login, keyID, serial) =
                    try row.decode((String, String, Int, String, String, String, String, String, String).self)
                let columns = row.makeRandomAccess()
                let started = try columns[9].decode(Date.self)
                let ended = try columns[10].decode(Date?.self)
                let endState = try columns[11].decode(String.self)
                let stateText = try columns[12].decode(String.self)
                let objectKey = try columns[13].decode(String?.self)
                let size = try columns[14].decode(Int64?.self)
                let sha = try columns[15].decode(String?.self)
                let summary = try columns[16].decode(String.self)
                let shippedAt = try columns[17].decode(Date?.self)
                guard let state = RecordingShipState(rawValue: stateText), let serialValue = UInt64(serial) else {
                    throw StateStoreError(operation: operation, endpoint: store.endpoint, kind: .data("row \(id) has state \(stateText), serial \(serial)"))
                }
                return RecordingCatalogEntry(recordingID: id, sessionID: session, channel: channel, replicaID: replica, subject: subject,
                                             target: target, login: login, certificateKeyID: keyID, certificateSerial: serialValue,
                                             startedAt: started, endedAt: ended, endState: endState, state: state, objectKey: objectKey,
                                             size: size, sha256: sha, summary: summary, shippedAt: shippedAt)
            }
        } catch {
            throw StateStoreError.from(error, operation: operation, endpoint: store.endpoint)
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        let (s, a) = duration.components
        return Double(s) + Double(a) / 1e18
    }
}
