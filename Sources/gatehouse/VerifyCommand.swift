import ArgumentParser
import Audit
import CertificateAuthority
import Foundation
import Recording
import SSHCertificates

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify recordings: checksums, hash chain, signatures, completeness. Closes crashed ones.",
        discussion: """
            An unfinished recording whose writer is gone (crash, kill -9) is first recovered: its torn tail is cut \
            back to the last good record and a crash end signed by the recording key is appended. Corruption \
            before the end is reported, never repaired. Exit status 1 when any recording fails.

            Recordings are checked against the current recording keys and the verify-only ones a rotation \
            retired, each only for recordings that started while it was active. --trusted-keys FILE (from \
            `gatehouse ca export recording --history`) verifies without the state directory (and without recovery).
            """)
    @OptionGroup var store: RecordingsOptions
    @OptionGroup var trust: RecordingTrustOptions
    @Argument(help: "Recording id (<session>-ch<n>) or session id.") var id: String?
    @Flag(help: "Verify every recording in the directory.") var all = false
    @Flag(name: .customLong("no-recover"), help: "Only report unfinished recordings; do not close them.") var noRecover = false

    static let defaultState = "./var/gatehouse"

    func validate() throws {
        if all == (id != nil) { throw ValidationError("give a recording id or --all") }
    }

    func run() throws {
        let trusted = try trust.load(defaultState: Self.defaultState)!
        // Recovery signs a crash end, so it needs the store's signing key; with an exported key
        // file unfinished recordings are only reported.
        let ca: CAStore?
        if trust.trustedKeys == nil {
            do { ca = try CAStore.open(at: trust.state ?? Self.defaultState) } catch { throw CLIError("\(error)") }
        } else {
            ca = nil
        }
        let signer = ca?.signingKey(.recording)
        let paths: [String]
        if all, let archived = try store.archived() {
            // Every recording the recordings store's index knows, fetched from the bucket.
            for pending in archived where pending.location != "shipped" {
                print("PENDING \(pending.summary.recordingID): \(pending.location) on replica \(pending.replicaID ?? "?"), not in the bucket yet")
            }
            paths = try archived.filter { $0.location == "shipped" }.map { try store.resolve($0.summary.recordingID) }
        } else if all {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: store.recordings)) ?? []
            paths = names.sorted().filter { RecordingFiles.recordingID(ofPath: $0) != nil }.map { store.recordings + "/" + $0 }
        } else {
            paths = [try store.resolve(id!)]
        }
        var failures = 0
        for path in paths {
            // A copy fetched from the bucket was closed before it was shipped: never recovered
            // here, and reported under its object's name.
            let origin = FetchedRecordings.origin(of: path)
            if origin == nil, !noRecover, let signer {
                do {
                    if case .closed(let last, let discarded, _) = try RecordingRecovery.recover(path: path, signer: signer) {
                        print("RECOVERED \(path): writer had died; sealed after record \(last) as ended by crash (\(discarded) torn bytes cut)")
                        // Closing a recording signs it: audited with the key that signed.
                        try? ca?.audit.append(AuditEvent(actor: adminActor, action: "recording.recover", object: path, outcome: .success,
                                                            details: ["last_record": String(last), "discarded_bytes": String(discarded),
                                                                      "ca_fingerprint": signer.publicKey.fingerprint]))
                    }
                } catch RecoveryError.live {
                    print("LIVE \(path): still being recorded")
                    continue
                } catch {
                    // Corruption is reported by the verification below, in full.
                }
            }
            var report = RecordingVerifier.verify(path: path, trust: trusted)
            if let origin { report.path = origin }
            print(report.verdict)
            if !report.isIntact { failures += 1 }
        }
        if all { print("\(paths.count - failures) of \(paths.count) recordings verified") }
        if failures > 0 { throw ExitCode(1) }
    }
}
