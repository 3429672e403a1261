/// What the agent sees, rebuilt from raw bytes and mask records. The live masker releases its
/// output through this same function, so a replay from a recording's raw bytes and records is
/// byte-identical to what the agent received.
public enum MaskedView {
    /// The masked view of a whole stream: `raw` starts at stream offset 0 and `records` are the
    /// stream's mask records (in any order; they never overlap).
    public static func render(raw: [UInt8], records: [MaskRecord], mode: MaskingMode) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(raw.count)
        raw.withUnsafeBufferPointer { append(raw: $0, at: 0, records: records.sorted { $0.offset < $1.offset }, mode: mode, to: &output) }
        return output
    }

    /// Appends the view of `raw`, which starts at stream offset `offset`, to `output`. `records`
    /// must be sorted by offset; the ones that do not touch this piece are skipped, and a record
    /// that spans several pieces is handled piece by piece (its marker goes with the piece that
    /// holds its first byte), so a replayer can render a recording chunk by chunk.
    public static func append(raw: UnsafeBufferPointer<UInt8>, at offset: UInt64, records: some Collection<MaskRecord>,
                              mode: MaskingMode, to output: inout [UInt8]) {
        let end = offset + UInt64(raw.count)
        var position = offset
        var previous: MaskRecord? = nil
        for record in records {
            // A block masked in several records (a key longer than one window) shows one marker.
            let continues = previous.map { $0.end == record.offset && $0.rule == record.rule } ?? false
            previous = record
            guard record.end > offset && record.offset < end else { continue }
            let start = max(record.offset, position)
            if start > position { output.append(contentsOf: raw[Int(position - offset)..<Int(start - offset)]) }
            let stop = min(record.end, end)
            switch mode {
            case .marker:
                if record.offset >= offset && !continues { appendMarker(record.rule, to: &output) }
            case .sameWidth:
                for byte in raw[Int(start - offset)..<Int(stop - offset)] { appendSameWidth(byte, to: &output) }
            case .sameLength:
                for byte in raw[Int(start - offset)..<Int(stop - offset)] { output.append(byte == 0x0A || byte == 0x0D || byte == 0x09 ? byte : UInt8(ascii: "*")) }
            }
            position = stop
        }
        if position < end { output.append(contentsOf: raw[Int(position - offset)...]) }
    }

    /// The text that replaces a masked range in `marker` mode.
    public static func marker(for rule: String) -> String { "[masked:\(rule)]" }

    static func appendMarker(_ rule: String, to output: inout [UInt8]) {
        output.append(contentsOf: "[masked:".utf8)
        output.append(contentsOf: rule.utf8)
        output.append(UInt8(ascii: "]"))
    }

    /// One `*` per character: a UTF-8 continuation byte adds nothing, so a character's width
    /// stays one whatever piece its bytes arrive in; line breaks and tabs stay what they are.
    @inline(__always)
    static func appendSameWidth(_ byte: UInt8, to output: inout [UInt8]) {
        switch byte {
        case 0x0A, 0x0D, 0x09: output.append(byte)
        case 0x80...0xBF: break
        default: output.append(UInt8(ascii: "*"))
        }
    }
}
