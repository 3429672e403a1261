import CLibSSH
import Foundation
import Recording

/// How a relayed session ended.
struct RelayEnding {
    var reason: String
    var exitStatus: Int32?
    var exitSignal: String?
    /// The target ended the session itself (exit status or signal); anything else is a fault.
    var clean: Bool
}

extension FrontConnection {
    /// Copies bytes both ways until the session ends. Both sessions are non-blocking and share
    /// one poll context on this thread. Flow control is end to end: bytes move only up to the
    /// receiving channel's window, and unread bytes stay in libssh's channel buffer, which stops
    /// growing our window to the sender; so a slow reader slows the writer and memory stays
    /// bounded by the SSH windows, whatever the volume.
    func relay(front: ssh_channel, event: ssh_event, target: TargetConnection, maxDuration: Int?, idleTimeout: Int?) -> RelayEnding {
        guard let back = target.channel else { return RelayEnding(reason: "no target channel", clean: false) }
        ssh_set_blocking(session, 0)
        ssh_set_blocking(target.session, 0)
        defer {
            ssh_set_blocking(session, 1)
        }
        let chunk = 64 * 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var eofToTarget = false, eofToFront = false
        let began = Date()
        var lastActivity = began, lastKeepalive = began
        let keepalive = TimeInterval(configuration.limits.keepaliveSeconds)

        var recordingError: RecordingWriteError?
        /// Moves what the destination can take now; returns bytes moved, or nil on a dead channel
        /// or a recorder failure. Bytes are recorded before they are forwarded: nothing crosses
        /// unrecorded.
        func pump(from source: ssh_channel, stderr: Bool, to destination: ssh_channel, asStderr: Bool, stream: RecordStream) -> Int? {
            var moved = 0
            while true {
                let window = Int(ssh_channel_window_size(destination))
                guard window > 0 else { return moved }
                let n = ssh_channel_read_nonblocking(source, buffer, UInt32(min(window, chunk)), stderr ? 1 : 0)
                if n == SSH_ERROR { return moved > 0 ? moved : nil }
                guard n > 0 else { return moved }
                if let recorder, stream != .stdin || recordsInput {
                    do { try recorder.append(stream, UnsafeRawBufferPointer(start: buffer, count: Int(n))) } catch {
                        recordingError = error
                        return nil
                    }
                }
                let written = asStderr ? ssh_channel_write_stderr(destination, buffer, UInt32(n)) : ssh_channel_write(destination, buffer, UInt32(n))
                if written != n { return nil }
                moved += Int(n)
                if moved >= 4 * chunk { return moved }  // let the other directions and the poll run
            }
        }

        while true {
            var progressed = true
            while progressed {
                progressed = false
                if !eofToTarget, let n = pump(from: front, stderr: false, to: back, asStderr: false, stream: .stdin), n > 0 { bytesIn += UInt64(n); progressed = true }
                if !eofToFront {
                    if let n = pump(from: back, stderr: false, to: front, asStderr: false, stream: .stdout), n > 0 { bytesOut += UInt64(n); progressed = true }
                    if let n = pump(from: back, stderr: true, to: front, asStderr: true, stream: .stderr), n > 0 { bytesErr += UInt64(n); progressed = true }
                }
                if progressed { lastActivity = Date() }
                if serviceForwards(event: event) { progressed = true }
            }
            // Half-close: pass each side's EOF on once everything before it has been delivered.
            if !eofToTarget, ssh_channel_is_eof(front) != 0, Self.drained(front) {
                ssh_channel_send_eof(back)
                eofToTarget = true
            }
            let targetDone = ssh_channel_is_eof(back) != 0 && Self.drained(back)
            if !eofToFront, targetDone {
                eofToFront = true
            }
            // The target closed its channel and everything it sent has been delivered.
            if ssh_channel_is_closed(back) != 0 || ssh_is_connected(target.session) == 0 {
                if Self.drained(back) || ssh_channel_window_size(front) == 0 && ssh_is_connected(session) == 0 {
                    return endWithTarget(front: front, event: event, target: target)
                }
            }
            if ssh_channel_is_closed(front) != 0 || ssh_is_connected(session) == 0 {
                // sshd leaves a command without a pty running when its channel closes; an agent
                // that vanished must not leave work running on the target, so it is hung up first.
                ssh_channel_request_send_signal(back, "HUP")
                ssh_channel_request_send_signal(back, "TERM")
                ssh_channel_send_eof(back)
                ssh_channel_close(back)
                ssh_blocking_flush_target(target)
                return RelayEnding(reason: "client disconnected", exitStatus: targetExitStatus, exitSignal: targetExitSignal?.signal, clean: false)
            }
            if let recorder, recordingError == nil, !recordingFailed {
                do { try recorder.flushIfDue() } catch { recordingError = error }
            }
            if recordingError != nil || recordingFailed {
                // Fail closed: a session that can no longer be recorded does not go on.
                let reason = recordingError.map { "\($0)" } ?? "the recorder failed"
                ssh_channel_request_send_signal(back, "HUP")
                ssh_channel_close(back)
                audit("session.recording", "target \"\(target.target.name)\"", .failure, ["reason": reason])
                finishFront(front, event: event, stderr: "gatehouse: the session can no longer be recorded (\(reason)) and was ended.\n", exitStatus: 255)
                return RelayEnding(reason: "recording failed: \(reason)", clean: false)
            }
            let now = Date()
            if let maxDuration, now.timeIntervalSince(began) > TimeInterval(maxDuration) {
                ssh_channel_close(back)
                finishFront(front, event: event, stderr: "gatehouse: the session reached its scope's maximum duration of \(maxDuration)s and was ended.\n", exitStatus: 255)
                return RelayEnding(reason: "maximum duration reached", clean: false)
            }
            if let idleTimeout, now.timeIntervalSince(lastActivity) > TimeInterval(idleTimeout) {
                ssh_channel_close(back)
                finishFront(front, event: event, stderr: "gatehouse: the session was idle for \(idleTimeout)s and was ended.\n", exitStatus: 255)
                return RelayEnding(reason: "idle timeout", clean: false)
            }
            if keepalive > 0, now.timeIntervalSince(lastKeepalive) >= keepalive {
                ssh_send_keepalive(session)
                ssh_send_keepalive(target.session)
                lastKeepalive = now
            }
            _ = ssh_event_dopoll(event, 250)
        }
    }

    /// Pushes queued packets to the target before the connection is torn down.
    func ssh_blocking_flush_target(_ target: TargetConnection) {
        ssh_set_blocking(target.session, 1)
        let until = Date().addingTimeInterval(1)
        while Date() < until, ssh_is_connected(target.session) != 0, let channel = target.channel, ssh_channel_is_eof(channel) == 0 {
            _ = ssh_channel_poll_timeout(channel, 100, 0)
        }
    }

    /// Nothing left in the channel's receive buffers.
    static func drained(_ channel: ssh_channel) -> Bool {
        ssh_channel_poll(channel, 0) <= 0 && ssh_channel_poll(channel, 1) <= 0
    }

    private func endWithTarget(front: ssh_channel, event: ssh_event, target: TargetConnection) -> RelayEnding {
        if let signal = targetExitSignal {
            finishFront(front, event: event, exitSignal: signal)
            return RelayEnding(reason: "target process killed by signal \(signal.signal)", exitSignal: signal.signal, clean: true)
        }
        if let status = targetExitStatus {
            finishFront(front, event: event, exitStatus: status)
            return RelayEnding(reason: "target process exited", exitStatus: status, clean: true)
        }
        let lost = ssh_is_connected(target.session) == 0
        let reason = lost ? "the connection to target \(target.target.name) was lost" : "target \(target.target.name) closed the session without an exit status"
        finishFront(front, event: event, stderr: "gatehouse: \(reason).\n", exitStatus: 255)
        return RelayEnding(reason: reason, clean: false)
    }
}
