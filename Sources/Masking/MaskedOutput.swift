/// What one `feed` or `flush` releases: the bytes for the agent, and the mask records of the
/// ranges among the released raw bytes that were masked (raw stream offsets, so a recording
/// that keeps the raw bytes can rebuild `bytes` with `MaskedView`).
public struct MaskedOutput: Sendable, Equatable {
    public var bytes: [UInt8] = []
    public var masks: [MaskRecord] = []
    /// The raw bytes behind `bytes`, when the masker was asked for them (`StreamMasker.collectsRaw`):
    /// a recording that keeps the target's bytes writes them in release order, after their masks.
    public var raw: [UInt8] = []
    /// The raw stream offset released so far (the raw bytes `..<rawReleased` are accounted for).
    public var rawReleased: UInt64 = 0

    public init() {}
}
