/// What a component outside this module (the shipper) may ask of a recording file without
/// opening it for writing: whether a writer holds it, and its exact summary.
public enum RecordingInspection {
    /// True while a writer (in any process on this host) holds the file's lock.
    public static func isLive(_ path: String) -> Bool { RecordingFile.isLive(path) }

    /// The index line for the recording at `path`, read from the whole file (framing checks,
    /// no signatures), as `SessionIndex` builds it for a recording it has no line for.
    public static func summary(path: String) throws -> RecordingSummary { try SessionIndex.fullSummary(path: path) }
}
