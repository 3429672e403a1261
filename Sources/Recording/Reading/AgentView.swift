import Masking

/// Which view of a masked recording to show.
public enum RecordingView: Sendable, Equatable {
    /// What the agent saw (the default): masked spans shown as the agent was shown them.
    case agent
    /// The bytes the target sent (`--unmasked`; audited by the CLI). Only a recording that
    /// kept them (`masking.record: raw`) has them.
    case original
}

public enum RecordingViewError: Error, Equatable, CustomStringConvertible {
    case originalNotKept

    public var description: String {
        "the recording keeps only what the agent saw (masking.record: masked): there is no unmasked view"
    }
}

/// Turns the data records of a recording that kept the target's bytes into what the agent saw.
/// The pump writes each mask record just before the bytes it covers, so a reader going forward
/// (an export, the player, `--follow`) always has a span's mask when it meets the span's bytes.
public struct AgentViewFilter {
    private let mode: MaskingMode
    private var offsets: [RecordStream: UInt64]
    /// Masks read and not yet passed, per stream, in offset order; with the last one passed,
    /// so a block masked in several records still shows one marker.
    private var pending: [RecordStream: [MaskRecord]] = [:]
    private var previous: [RecordStream: MaskRecord] = [:]

    /// Nil when `view` needs no filtering of this recording; throws when it asks for what the
    /// recording does not keep. `start` is each stream's offset where reading begins.
    public static func make(header: SessionHeader, view: RecordingView,
                            start: StreamTotals = StreamTotals()) throws(RecordingViewError) -> AgentViewFilter? {
        guard let masking = header.masking else { return nil }
        switch view {
        case .original:
            guard masking.keepsOriginal else { throw .originalNotKept }
            return nil
        case .agent:
            guard masking.keepsOriginal else { return nil }  // the data records are the agent's view
            return AgentViewFilter(mode: MaskingMode(rawValue: masking.view) ?? .marker, start: start)
        }
    }

    init(mode: MaskingMode, start: StreamTotals) {
        self.mode = mode
        offsets = [.stdout: start.stdout, .stderr: start.stderr]
    }

    public mutating func apply(_ record: Record) -> Record {
        switch record.content {
        case .mask(let recorded):
            pending[recorded.stream, default: []].append(MaskRecord(offset: recorded.offset, length: Int(recorded.length), rule: recorded.rule))
            return record
        case .data(let stream, let bytes) where stream != .stdin:
            let start = offsets[stream] ?? 0
            offsets[stream] = start + UInt64(bytes.count)
            guard let masks = pending[stream], !masks.isEmpty else { return record }
            var shown: [UInt8] = []
            shown.reserveCapacity(bytes.count)
            let context = previous[stream].map { [$0] + masks } ?? masks
            bytes.withUnsafeBufferPointer { MaskedView.append(raw: $0, at: start, records: context, mode: mode, to: &shown) }
            let end = start + UInt64(bytes.count)
            if let passed = masks.last(where: { $0.end <= end }) { previous[stream] = passed }
            pending[stream] = masks.filter { $0.end > end }
            var masked = record
            masked.content = .data(stream, shown)
            return masked
        default:
            return record
        }
    }
}
