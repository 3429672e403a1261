import ArgumentParser
import Audit
import Foundation
import Recording
import StateStore

/// `--unmasked` for replay and export: the original bytes of a masked recording hold the secrets
/// the agent never saw, so reading them needs the state directory and leaves an audit record
/// there (`recording.unmasked`) before a byte is shown. If the record cannot be written, nothing
/// is shown.
struct UnmaskedOption: ParsableArguments {
    @Flag(help: "Show the bytes the target sent, not the masked view the agent saw (needs --state; audited there).")
    var unmasked = false

    /// The view to read `path` in, after auditing an unmasked read. `state` is the directory
    /// holding the audit log (--state).
    /// With `config` naming a PostgreSQL store, the record goes to the replicas' shared chain.
    func view(of path: String, command: String, state: String?, config: String? = nil) throws -> RecordingView {
        guard unmasked else { return .agent }
        let header: SessionHeader
        do { header = try RecordingReader(path: path, allowTornTail: true).header } catch { throw CLIError("\(error)") }
        guard let masking = header.masking else { return .original }  // never masked: nothing to disclose
        guard masking.keepsOriginal else { throw CLIError("\(path): \(RecordingViewError.originalNotKept)") }
        guard let state else {
            throw CLIError("--unmasked shows secrets the agent never saw: give --state DIR so the read is audited in DIR/audit.log")
        }
        do {
            let audit: any AuditSink
            if let config, case .postgres(let database) = try StoreConfiguration.load(file: config) {
                audit = SharedAuditLog(connection: try BlockingConnection(store: database), spool: nil)
            } else {
                audit = try AuditLog(path: state + "/audit.log")
            }
            try audit.append(AuditEvent(actor: adminActor, action: "recording.unmasked", object: "recording \(header.recordingID)", outcome: .success,
                                        details: ["command": command, "path": path, "session": header.sessionID, "key_id": header.certificateKeyID,
                                                  "serial": String(header.certificateSerial)]))
        } catch {
            throw CLIError("the unmasked read could not be audited in \(state)/audit.log (\(error)), so it is refused")
        }
        return .original
    }
}
