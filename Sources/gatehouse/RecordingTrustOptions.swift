import ArgumentParser
import CertificateAuthority
import Foundation
import Recording
import SSHCertificates

/// Where the recording keys a recording is checked against come from: the CA store (current
/// and verify-only keys, each with the interval it was active) or an exported key file
/// (`gatehouse ca export recording --history`), so recordings can be checked without the
/// state directory.
struct RecordingTrustOptions: ParsableArguments {
    @Option(help: "The state directory holding the CA store (trusted and verify-only recording keys).") var state: String?
    @Option(name: .customLong("trusted-keys"),
            help: "A file of recording keys (`gatehouse ca export recording --history`): verify without the state directory.")
    var trustedKeys: String?

    func validate() throws {
        if state != nil && trustedKeys != nil { throw ValidationError("give --state or --trusted-keys, not both") }
    }

    /// The keys from --trusted-keys, or from the store in --state (`defaultState` when neither
    /// is given, nil to make the check optional).
    func load(defaultState: String?) throws -> [TrustedKey]? {
        if let trustedKeys {
            let keys: [TrustedKey]
            do { keys = try TrustedKeyFile.parse(try readFile(trustedKeys), source: trustedKeys) } catch let e as CLIError { throw e } catch {
                throw CLIError("\(error)")
            }
            guard !keys.isEmpty else { throw CLIError("\(trustedKeys) holds no keys") }
            return keys
        }
        guard let directory = state ?? defaultState else { return nil }
        let ca: CAStore
        do { ca = try CAStore.open(at: directory) } catch { throw CLIError("\(error)") }
        let keys = ca.verificationKeys(.recording)
        guard !keys.isEmpty else { throw CLIError("the CA store in \(directory) has no recording keys") }
        return keys
    }

    /// For replay and export: when trust was given, the recording's key must be trusted for its
    /// start time (the full check of every byte is `gatehouse verify`).
    /// `defaultState`: the --config file's state directory, checked when given.
    func checkHeader(of path: String, defaultState: String? = nil) throws {
        guard let keys = try load(defaultState: defaultState) else { return }
        let report = RecordingVerifier.verify(path: path, trust: keys)
        if let problem = report.problems.first(where: { [.untrustedKey, .keyOutsideInterval, .notARecording].contains($0.kind) }) {
            throw CLIError("\(path): \(problem) (refused: an untrusted recording; run without --state/--trusted-keys to read it unchecked)")
        }
    }
}
