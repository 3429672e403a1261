/// One masked range of a stream: where it starts in the raw bytes the target sent (counted
/// from the stream's first byte), how many raw bytes it covers, and the rule that found it.
/// A recording keeps the raw bytes and these records; `MaskedView` rebuilds what the agent saw.
public struct MaskRecord: Sendable, Hashable, Codable {
    public let offset: UInt64
    public let length: Int
    public let rule: String

    public init(offset: UInt64, length: Int, rule: String) { (self.offset, self.length, self.rule) = (offset, length, rule) }

    public var end: UInt64 { offset + UInt64(length) }
}
