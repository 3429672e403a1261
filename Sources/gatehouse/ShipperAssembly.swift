import Audit
import Bastion
import CertificateAuthority
import Foundation
import Logging
import RecordingShipping
import SSHCertificates
import StateStore
import Synchronization

/// `serve` with `recordings_store: {kind: s3}`: the shipper that moves each finished recording
/// to the bucket, started before the bastion so the bastion records into the shipper's spool
/// (`RECORDINGS/<replica_id>/`). What it needs from the server (the recording key to seal a
/// recovered recording, the audit chain for its events) exists only once the server does,
/// hence `attach`.
final class ShipperAssembly: Sendable {
    let shipper: RecordingShipper
    private let server = Attached()

    /// The server, once there is one.
    final class Attached: Sendable {
        private let context = Mutex<ServerContext?>(nil)
        func withLock<T>(_ body: (inout ServerContext?) -> T) -> T { context.withLock { body(&$0) } }
    }

    init(store: S3RecordingsStore, recordingsRoot: String, catalog: RecordingCatalog?, logger: Logger) throws {
        let server = self.server
        shipper = try RecordingShipper(store: store, recordingsRoot: recordingsRoot, catalog: catalog, signer: {
            // Recovery seals a dead replica's recording with the recording key; it runs only
            // after `attach`, as the loop starts only then.
            server.withLock { $0! }.authorities.signingKey(.recording)
        }, onEvent: { event in
            guard let audited = Self.auditEvent(event) else {
                // A failed attempt is retried with backoff: logged, not audited at every retry.
                if case .failed(let id, let reason) = event {
                    logger.warning("recording not shipped yet; retrying", metadata: ["recording": "\(id)", "reason": "\(reason)"])
                }
                return
            }
            server.withLock({ $0 })?.record(audited)
        }, logger: logger)
    }

    /// Where the bastion records.
    var spoolDirectory: String { shipper.spool.ownDirectory }

    /// Heartbeat once (before any session), then ship until the process ends.
    func attach(_ context: ServerContext) throws {
        server.withLock { $0 = context }
        try awaitBlocking { [shipper] in try await shipper.heartbeat() }
        Task.detached { [shipper] in await shipper.run() }
    }

    /// Tells the shipper when a session's recordings are finished.
    var observer: any SessionObserver { ShippingObserver(shipper: shipper) }

    /// The audit record of a shipping event; nil for a failed attempt (it is retried).
    static func auditEvent(_ event: ShippingEvent) -> AuditEvent? {
        switch event {
        case .shipped(let id, let key, let bytes, let from):
            return AuditEvent(actor: "gatehouse", action: "recording.ship", object: id, outcome: .success,
                              details: ["object_key": key, "bytes": String(bytes), "replica": from])
        case .recovered(let id, let replica, let discarded):
            return AuditEvent(actor: "gatehouse", action: "recording.recover", object: id, outcome: .success,
                              details: ["replica": replica, "discarded_bytes": String(discarded)])
        case .alreadyShipped(let id, let key):
            return AuditEvent(actor: "gatehouse", action: "recording.ship", object: id, outcome: .success, details: ["object_key": key, "note": "already in the bucket"])
        case .failed:
            return nil
        case .heldBack(let id, let reason):
            return AuditEvent(actor: "gatehouse", action: "recording.ship", object: id, outcome: .refused, details: ["reason": reason, "note": "held back locally"])
        }
    }
}

struct ShippingObserver: SessionObserver {
    let shipper: RecordingShipper
    func sessionStarted(_ summary: SessionSummary) {}
    func sessionEnded(_ summary: SessionSummary, outcome: SessionOutcome) { shipper.sessionEnded(sessionID: summary.sessionID) }
}
