import CLibSSH
import Masking
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
///
/// Masked, an agent-bound lane passes what it reads through its `StreamMasker` first. The
/// masker releases bytes once it knows no secret can start in them; the pump then records the
/// release — each mask record, then the raw bytes it covers (or, with `masking.record: masked`,
/// only what the agent will see) — and holds the masked bytes for the recorder as above. A tail
/// the masker holds back (≤ 4 KiB) goes out when the stream ends or has been quiet for
/// `SessionMasking.quietFlush`.
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
        /// Agent-bound lanes of a masked session.
        var masker: StreamMasker? = nil
        var lastFed = ContinuousClock.now

        var maskerHolds: Int { masker?.heldBackCount ?? 0 }
        /// Nothing read from this lane waits here: all of it reached the destination.
        var isIdle: Bool { held.isEmpty && maskerHolds == 0 }
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

    /// The session's masking (nil: the agent reads what the target sent).
    let masking: SessionMasking?
    /// Masks made, by rule, for the session's end record.
    private(set) var maskCounts: [String: Int] = [:]
    /// Told each mask's rule as it is made (the masks counter of `/metrics`).
    var onMask: ((String) -> Void)?
    private var maskOutput = MaskedOutput()
    /// The last bytes the agent sent, in a masked terminal session: a read that is exactly their
    /// echo is released at once (the agent typed it; nothing in it can be news to the agent).
    private var typed: [UInt8] = []

    /// A session channel carries stderr from the target and holds its EOF for the exit status; a
    /// forwarded channel does neither. `masking` applies to the target's stdout and stderr.
    init(front: ssh_channel, back: ssh_channel, recorder: RecordingWriter, carriesStderr: Bool, masking: SessionMasking? = nil) {
        self.front = front
        self.back = back
        self.recorder = recorder
        self.masking = masking
        holdsEOFForExit = carriesStderr
        var lanes = [
            Lane(stream: .stdin, source: front, readsStderr: false, destination: back, writesStderr: false),
            Lane(stream: .stdout, source: back, readsStderr: false, destination: front, writesStderr: false),
        ]
        if carriesStderr { lanes.append(Lane(stream: .stderr, source: back, readsStderr: true, destination: front, writesStderr: true)) }
        if let masking {
            for index in lanes.indices where lanes[index].stream != .stdin {
                lanes[index].masker = StreamMasker(rules: masking.rules, mode: masking.mode, collectsRaw: masking.recordsOriginal)
            }
        }
        self.lanes = lanes
    }

    func delivered(_ stream: RecordStream) -> UInt64 { lanes.first { $0.stream == stream }?.delivered ?? 0 }

    /// Bytes read and not yet released, on every lane (held for the recorder or by a masker).
    var holding: Bool { lanes.contains { !$0.isIdle } }

    /// Everything `side` sent has been read, recorded and released to the other side.
    func delivered(from side: ssh_channel) -> Bool {
        Self.drained(side) && lanes.allSatisfy { $0.source != side || $0.isIdle }
    }

    /// When a masker's held-back tail is due (the connection's loop wakes for it), if any.
    var maskFlushDue: ContinuousClock.Instant? {
        guard let masking else { return nil }
        return lanes.compactMap { $0.maskerHolds > 0 ? $0.lastFed + masking.quietFlush : nil }.min()
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
            if masking != nil, try flushQuietMaskers() { readAny = true }
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
        let waiting = lane.held.count + lane.maskerHolds
        let room = min(window - waiting, Self.maxHeld - waiting, Self.chunk)
        guard room > 0 else { return false }
        let n = ssh_channel_read_nonblocking(lane.source, scratch, UInt32(room), lane.readsStderr ? 1 : 0)
        if n == SSH_ERROR {
            if ssh_channel_is_closed(lane.source) != 0 || ssh_channel_is_eof(lane.source) != 0 { return false }
            throw .channel("reading from the \(lane.source == front ? "agent" : "target") failed")
        }
        guard n > 0 else { return false }
        let bytes = UnsafeRawBufferPointer(start: scratch, count: Int(n))
        if lanes[index].masker != nil {
            lanes[index].lastFed = .now
            lanes[index].masker!.feed(bytes, into: &maskOutput)
            try recordRelease(lane: index)
            if lanes[index].maskerHolds > 0, isEcho(bytes) {
                // A keystroke's echo waits for no quiet period (the pty's echo latency).
                lanes[index].masker!.flush(into: &maskOutput)
                try recordRelease(lane: index)
            }
            return true
        }
        if lane.stream == .stdin, masking?.mode == .sameWidth {
            typed.append(contentsOf: bytes)
            if typed.count > 256 { typed.removeFirst(typed.count - 256) }
        }
        let position: UInt64
        do { position = try recorder.append(lane.stream, bytes) } catch { throw .recording(error) }
        lanes[index].held.hold(bytes, until: position)
        return true
    }

    /// `bytes` is what the agent just typed, echoed back by the target's terminal.
    private func isEcho(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard masking?.mode == .sameWidth, !bytes.isEmpty, bytes.count <= typed.count,
              typed.suffix(bytes.count).elementsEqual(bytes) else { return false }
        typed.removeAll(keepingCapacity: true)
        return true
    }

    /// Records what a masker released and holds the masked bytes until the recorder has it:
    /// with the original kept, each mask record and then the raw bytes it covers (a reader
    /// meets a span's mask before its bytes); otherwise only the masked bytes.
    private func recordRelease(lane index: Int) throws(Failure) {
        defer {
            maskOutput.bytes.removeAll(keepingCapacity: true)
            maskOutput.raw.removeAll(keepingCapacity: true)
            maskOutput.masks.removeAll(keepingCapacity: true)
        }
        guard !maskOutput.bytes.isEmpty || !maskOutput.masks.isEmpty else { return }
        let stream = lanes[index].stream
        var position: UInt64 = 0
        do {
            if masking?.recordsOriginal ?? true {
                for mask in maskOutput.masks {
                    position = try recorder.mask(RecordedMask(stream: stream, offset: mask.offset, length: UInt32(clamping: mask.length), rule: mask.rule))
                }
                if !maskOutput.raw.isEmpty { position = try recorder.append(stream, maskOutput.raw) }
            } else if !maskOutput.bytes.isEmpty {
                position = try recorder.append(stream, maskOutput.bytes)
            }
        } catch { throw .recording(error) }
        for mask in maskOutput.masks {
            maskCounts[mask.rule, default: 0] += 1
            onMask?(mask.rule)
        }
        guard !maskOutput.bytes.isEmpty else { return }
        maskOutput.bytes.withUnsafeBytes { lanes[index].held.hold($0, until: position) }
    }

    /// Releases a masker's held-back tail once its stream has ended, or has been quiet for
    /// `quietFlush` with nothing left to read.
    private func flushQuietMaskers() throws(Failure) -> Bool {
        guard let quietFlush = masking?.quietFlush else { return false }
        var flushed = false
        let now = ContinuousClock.now
        for index in lanes.indices where lanes[index].maskerHolds > 0 {
            let source = lanes[index].source
            let ended = ssh_channel_is_closed(source) != 0 || ssh_is_connected(ssh_channel_get_session(source)) == 0
                || (ssh_channel_is_eof(source) != 0 && Self.drained(source))
            let quiet = now - lanes[index].lastFed >= quietFlush && ssh_channel_poll(source, lanes[index].readsStderr ? 1 : 0) <= 0
            guard ended || quiet else { continue }
            lanes[index].masker!.flush(into: &maskOutput)
            try recordRelease(lane: index)
            flushed = true
        }
        return flushed
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
            // No more than the window: masked output can be longer than what was read for it.
            let window = Int(ssh_channel_window_size(lane.destination))
            let sent = lanes[index].held.release(through: written, limit: window) { bytes -> Int32 in
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
        if !eofToTarget, ssh_channel_is_eof(front) != 0, Self.drained(front), lanes.allSatisfy({ $0.source != front || $0.isIdle }) {
            if ssh_channel_is_closed(back) == 0 { ssh_channel_send_eof(back) }
            eofToTarget = true
        }
        if !eofToAgent, ssh_channel_is_eof(back) != 0, Self.drained(back), lanes.allSatisfy({ $0.source != back || $0.isIdle }) {
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
    /// Held bytes before this are in the file and may go (some may still wait for the window).
    private var releasable = 0

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

    /// Hands `write` the held bytes whose position is through `written`, at most `limit` of them
    /// (the destination's window); it answers how many it took (libssh writes all or fails).
    /// Returns the count released, nil when a write failed.
    mutating func release(through written: UInt64, limit: Int, _ write: (UnsafeRawBufferPointer) -> Int32) -> Int? {
        while firstMark < marks.count, marks[firstMark].position <= written {
            releasable = marks[firstMark].end
            firstMark += 1
        }
        let end = min(releasable, head + max(0, limit))
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
            releasable = 0
        } else if head >= 256 * 1024 {
            // Under steady flow the buffer never empties: drop the released prefix so it cannot grow.
            bytes.removeSubrange(0..<head)
            marks.removeSubrange(0..<firstMark)
            for i in marks.indices { marks[i].end -= head }
            releasable -= head
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
        releasable = 0
    }
}

/// How a session's agent-bound output is masked: the rules of the scope that allowed it, how a
/// masked span is shown (by the kind of session), and what the recording keeps.
struct SessionMasking {
    let rules: MaskingRules
    let mode: MaskingMode
    /// The recording keeps the target's bytes and mask records (`masking.record: raw`).
    let recordsOriginal: Bool
    /// How long a quiet stream's held-back tail waits for more bytes: 50 ms for a byte stream;
    /// 1 ms in a terminal, where the tail is usually a keystroke's echo (a secret split by a
    /// longer pause is not caught: docs/masking.md).
    var quietFlush: Duration { mode == .sameWidth ? .milliseconds(1) : .milliseconds(50) }
}
