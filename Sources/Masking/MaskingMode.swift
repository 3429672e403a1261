/// How a masked range is shown to the agent.
public enum MaskingMode: String, Sendable, CaseIterable {
    /// `[masked:rule-name]` in place of the secret: for exec byte streams, where the agent reads
    /// text and the marker tells it (and the model) that something was there and why.
    case marker
    /// One `*` per character (line breaks and tabs kept), so a terminal's layout and cursor
    /// arithmetic stay right in a pty session.
    case sameWidth = "same-width"
    /// One `*` per byte (line breaks and tabs kept): the byte count never changes, for file
    /// transfers (the sftp subsystem, `scp -f`) whose framing counts bytes.
    case sameLength = "same-length"
}
