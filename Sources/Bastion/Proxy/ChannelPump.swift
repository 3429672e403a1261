import CLibSSH
import Recording

/// The one byte pump: moves bytes between the agent's end of a channel and the target's end, in
/// both directions, through the channel's recorder. Session channels and forwarded channels use
/// it alike; what ends them (exit status, close) is their owner's business.
///
/// Recorded before released. A chunk read from one side is appended to the recorder and held
/// here until the recorder reports it in the file (`RecordingWriter.writtenPosition`); only then
/// is it written to the other side. So whatever happens to the recorder — a full disk, a failed
/// write, the process killed — the other side has never seen a byte the recording lacks. The
/// recorder's sealing queue writes a batch as soon as it is idle (`handOverIfIdle`), so an
/// interactive byte waits one pwrite, and bulk output overlaps reading with writing.
///
/// Flow control stays end to end: a lane reads only what the destination's window can take
/// beyond what it already holds, and unread bytes stay in libssh's channel buffer, which stops
/// our window to the sender growing. Memory per lane is bounded by the window and `maxHeld`.
final class ChannelPump {
    /// One direction of one stream.
    struct Lane {
        let stream: RecordStream
        let source: ssh_channel
        let readsStderr: Bool
        let destination: ssh_channel
        let writesStderr: Bool
        var held = HeldBytes()
        var delivered: UInt64 = 0
    }

    enum Failure: Error {
        /// The recorder failed: fail closed, nothing held is released.
        case recording(RecordingWriteError)
        /// A channel broke (write refused, read error).
        case channel(String)
    }

    static let chunk = 64 * 1024
    /// Bytes one lane holds while they are being written: the batch the sealer works on plus the
    /// one being filled.
    static let maxHeld = 1 << 20

    let front: ssh_channel
    let back: ssh_channel
    let recorder: RecordingWriter
    private(set) var lanes: [Lane]
    private(set) var eofToTarget = false
    private(set) var eofToAgent = false

    /// A session channel's EOF to the agent waits for its exit status: clients whose own input
    /// is at EOF close the channel when the output ends, and the exit status must reach them
    /// first (it goes out once the recording is finished). A forward passes EOF at once.
    let holdsEOFForExit: Bool

    /// A session channel carries stderr from the target and holds its EOF for the exit status; a
    /// forwarded channel does neither.
    init(front: ssh_channel, back: ssh_channel, recorder: RecordingWriter, carriesStderr: Bool) {
        self.front = front
        self.back = back
        self.recorder = recorder
        holdsEOFForExit = carriesStderr
        var lanes = [
            Lane(stream: .stdin, source: front, readsStderr: false, destination: back, writesStderr: false),
            Lane(stream: .stdout, source: back, readsStderr: false, destination: front, writesStderr: false),
        ]
        if carriesStderr { lanes.append(Lane(stream: .stderr, source: back, readsStderr: true, destination: front, writesStderr: true)) }
        self.lanes = lanes
    }

    func delivered(_ stream: RecordStream) -> UInt64 { lanes.first { $0.stream == stream }?.delivered ?? 0 }

    /// Bytes recorded and not yet released, on every lane.
    var holding: Bool { lanes.contains { !$0.held.isEmpty } }

    /// Everything `side` sent has been read, recorded and released to the other side.
    func delivered(from side: ssh_channel) -> Bool {
        Self.drained(side) && lanes.allSatisfy { $0.source != side || $0.held.isEmpty }
    }

    /// One turn: releases what is in the file, reads what the windows allow, hands the batch to
    /// the recorder's sealer when it is idle, and passes each side's EOF on once everything
    /// before it was delivered. Returns whether anything moved.
    func run(scratch: UnsafeMutableRawPointer) throws(Failure) -> Bool {
        var progressed = try release()
        var rounds = 0
        while rounds < 8 {
            rounds += 1
            var readAny = false
            for index in lanes.indices {
                if try read(lane: index, scratch: scratch) { readAny = true }
            }
            if holding {
                do { try recorder.handOverIfIdle() } catch { throw .recording(error) }
            }
            if try release() { progressed = true }
            guard readAny else { break }
            progressed = true
        }
        passEOF()
        if !progressed, !holding { for index in lanes.indices { lanes[index].held.trim() } }
        return progressed
    }

    private func read(lane index: Int, scratch: UnsafeMutableRawPointer) throws(Failure) -> Bool {
        let lane = lanes[index]
        guard ssh_channel_is_closed(lane.destination) == 0 else { return false }
        let window = Int(ssh_channel_window_size(lane.destination))
        let room = min(window - lane.held.count, Self.maxHeld - lane.held.count, Self.chunk)
        guard room > 0 else { return false }
        let n = ssh_channel_read_nonblocking(lane.source, scratch, UInt32(room), lane.readsStderr ? 1 : 0)
        if n == SSH_ERROR {
            if ssh_channel_is_closed(lane.source) != 0 || ssh_channel_is_eof(lane.source) != 0 { return false }
            throw .channel("reading from the \(lane.source == front ? "agent" : "target") failed")
        }
        guard n > 0 else { return false }
        let bytes = UnsafeRawBufferPointer(start: scratch, count: Int(n))
        let position: UInt64
        do { position = try recorder.append(lane.stream, bytes) } catch { throw .recording(error) }
        lanes[index].held.hold(bytes, until: position)
        return true
    }

    /// After the recorder failed: waits for its sealer, then delivers what it did write (and
    /// nothing else), so the other side ends holding exactly the recorded bytes.
    func deliverWrittenAfterFailure() {
        _ = recorder.failureNotice  // drains the sealing queue: the written position is final
        _ = try? release()
        for index in lanes.indices { lanes[index].held = HeldBytes() }
    }

    /// Writes to each destination what the recorder has in the file.
    private func release() throws(Failure) -> Bool {
        let written = recorder.writtenPosition
        var moved = false
        for index in lanes.indices where !lanes[index].held.isEmpty {
            let lane = lanes[index]
            let sent = lanes[index].held.release(through: written) { bytes -> Int32 in
                lane.writesStderr ? ssh_channel_write_stderr(lane.destination, bytes.baseAddress, UInt32(bytes.count))
                                  : ssh_channel_write(lane.destination, bytes.baseAddress, UInt32(bytes.count))
            }
            switch sent {
            case .some(let count):
                lanes[index].delivered += UInt64(count)
                if count > 0 { moved = true }
            case .none:
                throw .channel("writing to the \(lane.destination == front ? "agent" : "target") failed")
            }
        }
        return moved
    }

    /// Half-close: each side's EOF goes on once its bytes are all delivered.
    private func passEOF() {
        if !eofToTarget, ssh_channel_is_eof(front) != 0, Self.drained(front), lanes.allSatisfy({ $0.source != front || $0.held.isEmpty }) {
            if ssh_channel_is_closed(back) == 0 { ssh_channel_send_eof(back) }
            eofToTarget = true
        }
        if !eofToAgent, ssh_channel_is_eof(back) != 0, Self.drained(back), lanes.allSatisfy({ $0.source != back || $0.held.isEmpty }) {
            if !holdsEOFForExit, ssh_channel_is_closed(front) == 0 { ssh_channel_send_eof(front) }
            eofToAgent = true
        }
    }

    /// The target's side has nothing left to give: closed or at EOF, with every byte delivered.
    var targetFinished: Bool {
        (ssh_channel_is_closed(back) != 0 || ssh_channel_is_eof(back) != 0) && delivered(from: back)
    }

    /// Nothing left in the channel's receive buffers.
    static func drained(_ channel: ssh_channel) -> Bool {
        ssh_channel_poll(channel, 0) <= 0 && ssh_channel_poll(channel, 1) <= 0
    }
}

/// Bytes recorded and waiting for the recorder's write, in arrival order, each run marked with
/// the recorder position that must be written before it may go.
struct HeldBytes {
    private var bytes: [UInt8] = []
    private var head = 0
    private var marks: [(end: Int, position: UInt64)] = []
    private var firstMark = 0

    var count: Int { bytes.count - head }
    var isEmpty: Bool { head == bytes.count }

    mutating func hold(_ input: UnsafeRawBufferPointer, until position: UInt64) {
        bytes.append(contentsOf: input)
        if firstMark < marks.count, marks[marks.count - 1].position == position {
            marks[marks.count - 1].end = bytes.count
        } else {
            marks.append((bytes.count, position))
        }
    }

    /// Hands `write` every held byte whose position is through `written`; it answers how many it
    /// took (libssh writes all or fails). Returns the count released, nil when a write failed.
    mutating func release(through written: UInt64, _ write: (UnsafeRawBufferPointer) -> Int32) -> Int? {
        var end = head
        while firstMark < marks.count, marks[firstMark].position <= written {
            end = marks[firstMark].end
            firstMark += 1
        }
        guard end > head else { return 0 }
        let count = end - head
        let rc = bytes.withUnsafeBytes { raw in write(UnsafeRawBufferPointer(rebasing: raw[head..<end])) }
        guard rc == Int32(count) else { return nil }
        head = end
        if head == bytes.count {
            bytes.removeAll(keepingCapacity: true)
            head = 0
            marks.removeAll(keepingCapacity: true)
            firstMark = 0
        } else if head >= 256 * 1024 {
            // Under steady flow the buffer never empties: drop the released prefix so it cannot grow.
            bytes.removeSubrange(0..<head)
            marks.removeSubrange(0..<firstMark)
            for i in marks.indices { marks[i].end -= head }
            head = 0
            firstMark = 0
        }
        return count
    }

    /// Gives back the buffer of an idle lane, so an idle session costs no held memory.
    mutating func trim() {
        guard isEmpty, bytes.capacity > 0 else { return }
        bytes = []
        marks = []
        head = 0
        firstMark = 0
    }
}
