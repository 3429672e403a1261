import CLibSSH
import Foundation
import Recording

/// One forwarded channel: the agent's end and the target's end of a port forward, an agent
/// connection or an X11 connection, with its own recording. Bytes move through the same pump as
/// a session's: only up to the receiving window, released once the recording holds them.
final class ForwardedChannel {
    enum Kind: String {
        case local = "port-forwarding-local"
        case remote = "port-forwarding-remote"
        case agent = "agent-forwarding"
        case x11 = "x11"
    }

    let kind: Kind
    /// The recording's channel number within the connection.
    let number: Int
    /// What the channel carries, as recorded and audited ("direct-tcpip 127.0.0.1:5432 from …").
    let summary: String
    let pump: ChannelPump
    let opened = ContinuousClock.now
    var front: ssh_channel { pump.front }
    var back: ssh_channel { pump.back }
    var recorder: RecordingWriter { pump.recorder }
    var fromAgent: UInt64 { pump.delivered(.stdin) }
    var toAgent: UInt64 { pump.delivered(.stdout) }

    init(kind: Kind, number: Int, summary: String, front: ssh_channel, back: ssh_channel, recorder: RecordingWriter) {
        self.kind = kind
        self.number = number
        self.summary = summary
        pump = ChannelPump(front: front, back: back, recorder: recorder, carriesStderr: false)
    }

    enum Step {
        case running(progressed: Bool)
        case finished(reason: String, clean: Bool)
        /// The recorder failed: the connection must stop, fail closed.
        case recordingFailed(RecordingWriteError)
    }

    /// Moves what both windows and the recorder allow, and passes EOF and close on.
    func step(scratch: UnsafeMutableRawPointer) -> Step {
        let progressed: Bool
        do throws(ChannelPump.Failure) {
            progressed = try pump.run(scratch: scratch)
        } catch {
            switch error {
            case .recording(let failure):
                pump.deliverWrittenAfterFailure()
                return .recordingFailed(failure)
            case .channel(let reason): return .finished(reason: reason, clean: false)
            }
        }
        do { try recorder.flushIfDue() } catch {
            pump.deliverWrittenAfterFailure()
            return .recordingFailed(error)
        }
        // A side that closed is finished only once everything it sent reached the other side
        // (a reply that arrives with the close is still released once it is recorded).
        if pump.eofToTarget && pump.eofToAgent && !pump.holding { return .finished(reason: "both ends finished", clean: true) }
        if ssh_channel_is_closed(back) != 0, pump.delivered(from: back) { return .finished(reason: "the target closed the channel", clean: true) }
        if ssh_channel_is_closed(front) != 0, pump.delivered(from: front) { return .finished(reason: "the agent closed the channel", clean: true) }
        return .running(progressed: progressed)
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
