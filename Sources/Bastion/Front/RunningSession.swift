import CLibSSH
import Foundation
import Recording

/// A session channel's relay once its target channel is open: the pump, the recorder, the
/// target's exit, and the limits that can end it.
final class RunningSession {
    let pump: ChannelPump
    let target: TargetConfiguration
    let start: SessionStart
    let scope: String
    let pty: PTYRequest?
    let maxDuration: Int?
    let idleTimeout: Int?
    let summary: SessionSummary
    let began = ContinuousClock.now
    private var lastActivity = ContinuousClock.now
    var exitStatus: Int32?
    var exitSignal: (signal: String, core: Bool, message: String, language: String)?
    /// The recorder's failure, once seen: the session ends fail closed.
    private(set) var recordingError: RecordingWriteError?

    var front: ssh_channel { pump.front }
    var back: ssh_channel { pump.back }
    var recorder: RecordingWriter { pump.recorder }

    init(front: ssh_channel, back: ssh_channel, recorder: RecordingWriter, masking: SessionMasking?, target: TargetConfiguration, start: SessionStart, scope: String,
         pty: PTYRequest?, maxDuration: Int?, idleTimeout: Int?, summary: SessionSummary) {
        pump = ChannelPump(front: front, back: back, recorder: recorder, carriesStderr: true, masking: masking)
        self.target = target
        self.start = start
        self.scope = scope
        self.pty = pty
        self.maxDuration = maxDuration
        self.idleTimeout = idleTimeout
        self.summary = summary
    }

    /// How the session ended.
    struct Ending {
        enum Kind {
            /// The target ended it (exit status, signal, or its channel or connection closed).
            case targetEnded
            /// A scope limit or the connection's end: the agent reads `message`.
            case limit(message: String)
            case recordingFailed(String)
            /// The agent closed its channel or went away.
            case agentGone
        }
        var kind: Kind
        var reason: String
        /// The target ended the session itself; anything else is a fault.
        var clean: Bool
        var exitStatus: Int32? = nil
        var exitSignal: (signal: String, core: Bool, message: String, language: String)? = nil
    }

    /// Moves bytes and checks whether the session is over.
    func step(scratch: UnsafeMutableRawPointer) -> (progressed: Bool, ending: Ending?) {
        var progressed = false
        do throws(ChannelPump.Failure) {
            progressed = try pump.run(scratch: scratch)
        } catch {
            switch error {
            case .recording(let failure): return (true, failed(failure))
            case .channel(let reason):
                if ssh_channel_is_closed(front) != 0 { return (true, Ending(kind: .agentGone, reason: "client disconnected", clean: false)) }
                return (true, Ending(kind: .targetEnded, reason: reason, clean: false))
            }
        }
        if let recordingError { return (true, failed(recordingError)) }
        do { try recorder.flushIfDue() } catch { return (true, failed(error)) }
        let now = ContinuousClock.now
        if progressed { lastActivity = now }

        let targetGone = ssh_channel_is_closed(back) != 0 || ssh_is_connected(ssh_channel_get_session(back)) == 0
        if pump.targetFinished || targetGone && !pump.holding, exitStatus != nil || exitSignal != nil || targetGone {
            if let exitSignal {
                return (true, Ending(kind: .targetEnded, reason: "target process killed by signal \(exitSignal.signal)", clean: true, exitSignal: exitSignal))
            }
            if let exitStatus {
                return (true, Ending(kind: .targetEnded, reason: "target process exited", clean: true, exitStatus: exitStatus))
            }
            let lost = ssh_is_connected(ssh_channel_get_session(back)) == 0
            return (true, Ending(kind: .targetEnded, reason: lost ? "the connection to target \(target.name) was lost"
                                                                : "target \(target.name) closed the session without an exit status", clean: false))
        }
        if ssh_channel_is_closed(front) != 0 {
            return (true, Ending(kind: .agentGone, reason: "client disconnected", clean: false))
        }
        if let maxDuration, now - began > .seconds(maxDuration) {
            return (true, Ending(kind: .limit(message: "gatehouse: the session reached its scope's maximum duration of \(maxDuration)s and was ended.\n"),
                                 reason: "maximum duration reached", clean: false))
        }
        if let idleTimeout, now - lastActivity > .seconds(idleTimeout) {
            return (true, Ending(kind: .limit(message: "gatehouse: the session was idle for \(idleTimeout)s and was ended.\n"),
                                 reason: "idle timeout", clean: false))
        }
        return (progressed, nil)
    }

    private func failed(_ error: RecordingWriteError) -> Ending {
        recordingError = error
        return Ending(kind: .recordingFailed("\(error)"), reason: "recording failed: \(error)", clean: false)
    }

    func resize(columns: Int32, rows: Int32) {
        if recordingError == nil {
            do { try recorder.resize(cols: Int(columns), rows: Int(rows)) } catch { recordingError = error; return }
        }
        ssh_channel_change_pty_size(back, columns, rows)
    }

    /// sshd leaves a command without a pty running when its channel closes; a session the
    /// bastion ends must not leave work running on the target, so it is hung up first.
    func hangUpTarget() {
        guard ssh_channel_is_closed(back) == 0 else { return }
        ssh_channel_request_send_signal(back, "HUP")
        ssh_channel_request_send_signal(back, "TERM")
        ssh_channel_send_eof(back)
        ssh_channel_close(back)
    }

    /// Closes the recording with the session's outcome: its exit and the signed trailer are in
    /// the file (and synced) before the agent learns the exit status. Nil when it failed.
    func finishRecording(exitStatus: Int32?, exitSignal: String?, marker: String?) -> RecordingOutcome? {
        guard recordingError == nil else { return nil }
        do {
            if let marker { try recorder.marker(marker) }
            if let exitSignal { try recorder.exit(signal: exitSignal) } else if let exitStatus { try recorder.exit(status: UInt32(bitPattern: exitStatus)) }
            return try recorder.finish()
        } catch {
            recordingError = error
            return nil
        }
    }

    func releaseBack(callbacks: UnsafeMutablePointer<ssh_channel_callbacks_struct>) {
        ssh_remove_channel_callbacks(back, callbacks)
        if ssh_channel_is_closed(back) == 0 { ssh_channel_close(back) }
        ssh_channel_free(back)
    }
}
