/// One thing wrong with a recording, located by record number and byte offset.
public struct VerificationProblem: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        case notARecording = "not-a-recording"
        case headChecksum = "head-checksum"
        case payloadChecksum = "payload-checksum"
        case recordsMissing = "records-missing"
        case recordsSwapped = "records-swapped"
        case recordsReordered = "records-reordered"
        case recordDuplicated = "record-duplicated"
        case timeOrder = "time-order"
        case malformedRecord = "malformed-record"
        case chainMismatch = "chain-mismatch"
        case totalsMismatch = "totals-mismatch"
        case badSignature = "bad-signature"
        case untrustedKey = "untrusted-key"
        /// Signed by a known key, but one that was not active at the time the recording claims.
        case keyOutsideInterval = "key-outside-interval"
        case truncated
        case unfinished
        case dataAfterEnd = "data-after-end"
    }

    public var kind: Kind
    /// Record number (sequence position, 0 = header) where the problem was found.
    public var record: UInt64?
    /// Byte offset of that record's head in the file.
    public var offset: UInt64?
    public var message: String

    public var description: String {
        var location = ""
        if let record { location += "record \(record)" }
        if let offset { location += (location.isEmpty ? "" : " ") + "at byte \(offset)" }
        return (location.isEmpty ? "" : location + ": ") + message
    }
}
