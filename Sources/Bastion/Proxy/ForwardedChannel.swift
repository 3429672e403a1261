import CLibSSH
import Foundation
import Recording

/// One forwarded channel: the agent's end and the target's end of a port forward, an agent
/// connection or an X11 connection, with its own recording. Bytes move the way the session's
/// do: only up to the receiving window, recorded before they are forwarded.
final class ForwardedChannel {
    enum Kind: String {
        case local = "port-forwarding-local"
        case remote = "port-forwarding-remote"
        case agent = "agent-forwarding"
        case x11 = "x11"
    }

    let kind: Kind
    /// The recording's channel number within the connection (the session channel is 0).
    let number: Int
    /// What the channel carries, as recorded and audited ("direct-tcpip 127.0.0.1:5432 from …").
    let summary: String
    let front: ssh_channel
    let back: ssh_channel
    let recorder: RecordingWriter
    let opened = Date()
    private(set) var fromAgent: UInt64 = 0
    private(set) var toAgent: UInt64 = 0
    private var eofToBack = false, eofToFront = false

    init(kind: Kind, number: Int, summary: String, front: ssh_channel, back: ssh_channel, recorder: RecordingWriter) {
        self.kind = kind
        self.number = number
        self.summary = summary
        self.front = front
        self.back = back
        self.recorder = recorder
    }

    enum Step {
        case running(progressed: Bool)
        case finished(reason: String, clean: Bool)
        /// The recorder failed: the connection must stop, fail closed.
        case recordingFailed(RecordingWriteError)
    }

    /// Moves what both windows allow and passes EOF and close on. `buffer` is the connection's
    /// scratch space of `chunk` bytes.
    func pump(buffer: UnsafeMutableRawPointer, chunk: Int) -> Step {
        var progressed = false
        do {
            if let n = try move(from: front, to: back, stream: .stdin, buffer: buffer, chunk: chunk) {
                fromAgent += UInt64(n)
                progressed = progressed || n > 0
            } else {
                return .finished(reason: "the agent's side of the channel failed", clean: false)
            }
            if let n = try move(from: back, to: front, stream: .stdout, buffer: buffer, chunk: chunk) {
                toAgent += UInt64(n)
                progressed = progressed || n > 0
            } else {
                return .finished(reason: "the target's side of the channel failed", clean: false)
            }
            try recorder.flushIfDue()
        } catch let error as RecordingWriteError {
            return .recordingFailed(error)
        } catch {
            return .finished(reason: "\(error)", clean: false)
        }
        // Half-close each way once everything before the EOF has been delivered.
        if !eofToBack, ssh_channel_is_eof(front) != 0, FrontConnection.drained(front) {
            if ssh_channel_is_closed(back) == 0 { ssh_channel_send_eof(back) }
            eofToBack = true
        }
        if !eofToFront, ssh_channel_is_eof(back) != 0, FrontConnection.drained(back) {
            if ssh_channel_is_closed(front) == 0 { ssh_channel_send_eof(front) }
            eofToFront = true
        }
        if eofToBack && eofToFront { return .finished(reason: "both ends finished", clean: true) }
        if ssh_channel_is_closed(back) != 0 && FrontConnection.drained(back) { return .finished(reason: "the target closed the channel", clean: true) }
        if ssh_channel_is_closed(front) != 0 { return .finished(reason: "the agent closed the channel", clean: true) }
        return .running(progressed: progressed)
    }

    /// Returns the bytes moved, or nil when the channel is dead.
    private func move(from source: ssh_channel, to destination: ssh_channel, stream: RecordStream,
                      buffer: UnsafeMutableRawPointer, chunk: Int) throws -> Int? {
        var moved = 0
        while ssh_channel_is_closed(destination) == 0 {
            let window = Int(ssh_channel_window_size(destination))
            guard window > 0 else { break }
            let n = ssh_channel_read_nonblocking(source, buffer, UInt32(min(window, chunk)), 0)
            if n == SSH_ERROR { return moved > 0 ? moved : (ssh_channel_is_closed(source) != 0 ? 0 : nil) }
            guard n > 0 else { break }
            try recorder.append(stream, UnsafeRawBufferPointer(start: buffer, count: Int(n)))
            guard ssh_channel_write(destination, buffer, UInt32(n)) == n else { return nil }
            moved += Int(n)
            if moved >= 4 * chunk { break }  // let the other channels run
        }
        return moved
    }

    /// Closes both ends and frees them (libssh finishes the close handshake on its own).
    func close() {
        for channel in [front, back] {
            if ssh_channel_is_closed(channel) == 0 { ssh_channel_close(channel) }
            ssh_channel_free(channel)
        }
    }
}

/// A port the target listens on for the agent (`ssh -R`).
struct RemoteListener {
    /// What the agent's client asked for and will recognise in forwarded-tcpip opens.
    let address: String
    let requestedPort: Int
    /// The port the target's sshd bound (differs when the client asked for port 0).
    let boundPort: Int
    var clientPort: Int { requestedPort == 0 ? boundPort : requestedPort }
}
