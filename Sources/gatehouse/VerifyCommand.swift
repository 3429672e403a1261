import ArgumentParser
import CertificateAuthority
import Foundation
import Recording

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify recordings: checksums, hash chain, signatures, completeness. Closes crashed ones.",
        discussion: """
            An unfinished recording whose writer is gone (crash, kill -9) is first recovered: its torn tail is cut \
            back to the last good record and a crash end signed by the recording key is appended. Corruption \
            before the end is reported, never repaired. Exit status 1 when any recording fails.
            """)
    @OptionGroup var store: RecordingsOptions
    @Option(help: "The state directory holding the CA store (trusted recording keys).") var state: String = "./var/gatehouse"
    @Argument(help: "Recording id (<session>-ch<n>) or session id.") var id: String?
    @Flag(help: "Verify every recording in the directory.") var all = false
    @Flag(name: .customLong("no-recover"), help: "Only report unfinished recordings; do not close them.") var noRecover = false

    func validate() throws {
        if all == (id != nil) { throw ValidationError("give a recording id or --all") }
    }

    func run() throws {
        let ca: CAStore
        do { ca = try CAStore.open(at: state) } catch { throw CLIError("\(error)") }
        let trusted = ca.trustedPublicKeys(.recording)
        guard !trusted.isEmpty else { throw CLIError("the CA store in \(state) has no trusted recording keys") }
        let paths: [String]
        if all {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: store.recordings)) ?? []
            paths = names.sorted().filter { RecordingFiles.recordingID(ofPath: $0) != nil }.map { store.recordings + "/" + $0 }
        } else {
            paths = [try store.resolve(id!)]
        }
        var failures = 0
        for path in paths {
            if !noRecover {
                do {
                    if case .closed(let last, let discarded, _) = try RecordingRecovery.recover(path: path, signer: ca.signingKey(.recording)) {
                        print("RECOVERED \(path): writer had died; sealed after record \(last) as ended by crash (\(discarded) torn bytes cut)")
                    }
                } catch RecoveryError.live {
                    print("LIVE \(path): still being recorded")
                    continue
                } catch {
                    // Corruption is reported by the verification below, in full.
                }
            }
            let report = RecordingVerifier.verify(path: path, trustedKeys: trusted)
            print(report.verdict)
            if !report.isIntact { failures += 1 }
        }
        if all { print("\(paths.count - failures) of \(paths.count) recordings verified") }
        if failures > 0 { throw ExitCode(1) }
    }
}
