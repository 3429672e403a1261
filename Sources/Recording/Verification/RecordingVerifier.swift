import SSHCertificates

/// The verdict on one recording.
public struct VerificationReport: Sendable {
    public var path: String
    /// Nil when not even the header could be read.
    public var header: SessionHeader?
    /// Fingerprint of the key named in the header.
    public var recordingKey: String?
    /// How the recording ended; nil when it has no trailer or crash end.
    public var end: RecordingEnd?
    /// Records that passed every check.
    public var verifiedRecords: UInt64
    /// Last record whose signature covers everything before it.
    public var signedThrough: UInt64?
    public var totals: StreamTotals
    public var exit: ExitOutcome?
    /// Hex chain hash through the last verified record.
    public var finalHash: String
    public var problems: [VerificationProblem]

    /// True only for a recording that is complete (trailer or crash end), intact and signed by a trusted key.
    public var isIntact: Bool { problems.isEmpty && end != nil }

    /// One line for `gatehouse verify`.
    public var verdict: String {
        if let first = problems.first {
            let more = problems.count > 1 ? " (+\(problems.count - 1) more)" : ""
            return "FAILED \(path): \(first)\(more)"
        }
        let how = switch end {
        case .normal?: "ended normally"
        case .recorderFailure?: "ended by a recorder failure (the session was stopped)"
        case .crash?: "ended by crash (closed by recovery)"
        case nil: "unfinished"
        }
        return "OK \(path): \(verifiedRecords) records, \(how), signed through record \(signedThrough.map(String.init) ?? "-"), \(totals)"
    }
}

public enum RecordingVerifier {
    /// Checks checksums, sequence and time order, the hash chain, every checkpoint, trailer and
    /// crash-end signature against `trustedKeys`, and completeness. Never throws: a recording that
    /// cannot even be opened is a report with a problem.
    public static func verify(path: String, trustedKeys: [SSHPublicKey]) -> VerificationReport {
        verify(path: path, trust: trustedKeys.map { TrustedKey(key: $0) })
    }

    /// As above, each key trusted only for recordings that started inside its interval (the
    /// current and verify-only recording keys, `CAStore.verificationKeys(.recording)` or a
    /// `TrustedKeyFile`).
    public static func verify(path: String, trust trustedKeys: [TrustedKey]) -> VerificationReport {
        let scan: RecordingScan
        do { scan = try RecordingScan.run(path: path, trustedKeys: trustedKeys) } catch {
            let problem: VerificationProblem = switch error {
            case let failure as RecordingScan.HeaderFailure: failure.problem
            case RecordingReadError.notARecording(_, let reason): VerificationProblem(kind: .notARecording, record: nil, offset: 0, message: "not a Gatehouse recording: \(reason)")
            default: VerificationProblem(kind: .notARecording, record: nil, offset: nil, message: "\(error)")
            }
            return VerificationReport(path: path, header: nil, recordingKey: nil, end: nil, verifiedRecords: 0, signedThrough: nil,
                                      totals: StreamTotals(), exit: nil, finalHash: "", problems: [problem])
        }
        return VerificationReport(path: path, header: scan.header, recordingKey: scan.headerKey.fingerprint, end: scan.end,
                                  verifiedRecords: scan.recordCount, signedThrough: scan.signedThrough, totals: scan.totals,
                                  exit: scan.exit, finalHash: hexString(scan.chainHash), problems: scan.problems)
    }
}
