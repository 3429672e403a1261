import SSHCertificates

public enum RecoveryError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    /// A writer still holds the recording: it is live, not crashed.
    case live(path: String)
    /// Damage before the end of the file: reported, never repaired.
    case corrupted(path: String, problem: VerificationProblem)
    case unreadable(path: String, reason: String)
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): "cannot open \(path) for recovery: \(reason)"
        case .live(let path): "\(path) is being written by a live session; not recovering it"
        case .corrupted(let path, let problem): "\(path) is corrupted, not repairing it: \(problem)"
        case .unreadable(let path, let reason): "\(path) cannot be recovered: \(reason)"
        case .writeFailed(let path, let reason): "recovering \(path) failed: \(reason)"
        }
    }
}

public enum RecoveryOutcome: Sendable, Equatable {
    /// The recording already ends with a trailer or crash end; nothing was changed.
    case alreadyClosed(RecordingEnd)
    /// A crash end was appended after record `lastRecord`; `discardedBytes` of torn tail were cut.
    case closed(lastRecord: UInt64, discardedBytes: UInt64, summary: RecordingSummary)
}

/// Closes recordings whose writer died (crash, kill -9, power loss): cuts a torn tail back to the
/// last good record and appends a crash end signed by the current recording key. Everything
/// before the tail must verify (CRCs, sequence, chain against every checkpoint signature) or the
/// file is left untouched and the damage reported: corruption is never repaired silently.
public enum RecordingRecovery {
    public static func recover(path: String, signer: SSHPrivateKey, updateIndex: Bool = true,
                               now: UInt64 = WallClock.microseconds()) throws(RecoveryError) -> RecoveryOutcome {
        // Take the writer's lock first: a live recording is never touched.
        let file = try RecordingFile(recovering: path)
        defer { file.close() }
        let scan: RecordingScan
        do { scan = try RecordingScan.run(path: path) } catch let failure as RecordingScan.HeaderFailure {
            throw .unreadable(path: path, reason: "\(failure.problem)")
        } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
        if let end = scan.end, scan.problems.isEmpty { return .alreadyClosed(end) }
        for problem in scan.problems where problem.kind != .unfinished && problem.kind != .truncated {
            throw .corrupted(path: path, problem: problem)
        }
        let discarded = scan.fileSize - scan.goodEnd
        let frame: [UInt8]
        do {
            let payload = try CrashEndPayload.make(sequence: scan.recordCount, time: scan.lastTime, totals: scan.totals,
                                                   chainHash: scan.chainHash, discardedBytes: discarded,
                                                   recoveredAtMicros: now, signer: signer)
            frame = FrameEncoder.frame(type: .crashEnd, sequence: scan.recordCount, time: scan.lastTime, payload: payload.encoded())
        } catch {
            throw .writeFailed(path: path, reason: "signing the crash end failed: \(error)")
        }
        guard file.truncate(to: scan.goodEnd) else { throw .writeFailed(path: path, reason: "cannot cut the torn tail") }
        do throws(RecordingWriteError) {
            try withRawBytes(frame) { (raw) throws(RecordingWriteError) in try file.write(raw, at: scan.goodEnd) }
            try file.sync()
        } catch {
            throw .writeFailed(path: path, reason: "\(error)")
        }
        let finalHash = frame.withUnsafeBytes { FrameLayout.nextChainHash(previous: scan.chainHash, frame: $0) }
        let id = RecordingFiles.recordingID(ofPath: path) ?? scan.header.recordingID
        let summary = RecordingSummary(header: scan.header, recordingID: id, end: .crash, durationMicros: scan.lastTime, exit: scan.exit,
                                       totals: scan.totals, recordCount: scan.recordCount + 1, finalHash: hexString(finalHash),
                                       fileSize: scan.goodEnd + UInt64(frame.count))
        if updateIndex { try? SessionIndex.record(summary, directory: RecordingFiles.directory(of: path)) }
        return .closed(lastRecord: scan.recordCount - 1, discardedBytes: discarded, summary: summary)
    }

    /// Recovers every unfinished, non-live recording in `directory` (at server start).
    public static func recoverAll(directory: String, signer: SSHPrivateKey) -> [(path: String, result: Result<RecoveryOutcome, RecoveryError>)] {
        guard let names = try? FileManagerShim.list(directory) else { return [] }
        var results: [(String, Result<RecoveryOutcome, RecoveryError>)] = []
        for name in names.sorted() where RecordingFiles.recordingID(ofPath: name) != nil {
            let path = directory + "/" + name
            if RecordingFile.isLive(path) { continue }
            do { results.append((path, .success(try recover(path: path, signer: signer)))) } catch {
                results.append((path, .failure(error)))
            }
        }
        return results
    }
}

import Foundation

enum FileManagerShim {
    static func list(_ directory: String) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: directory) }
}
