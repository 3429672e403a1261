import Foundation

/// What HEAD (and an upload's verification) knows of a stored object.
public struct ObjectInfo: Sendable, Equatable {
    /// The key relative to the configured prefix.
    public let name: String
    public let size: Int64
    /// Without the surrounding quotes.
    public let etag: String
    /// `x-amz-checksum-sha256` as the store reports it (base64, `-N` for a multipart object),
    /// when the object was stored with one and the store returns it.
    public let checksumSHA256: String?
    /// `FULL_OBJECT` or `COMPOSITE`, when reported.
    public let checksumType: String?
}

/// One entry of a listing.
public struct ObjectSummary: Sendable, Equatable {
    /// The key relative to the configured prefix.
    public let name: String
    public let size: Int64
    public let etag: String
}

/// One page of ListObjectsV2.
public struct ObjectListPage: Sendable, Equatable {
    public let objects: [ObjectSummary]
    /// Set when the listing goes on: pass it to the next call.
    public let nextContinuationToken: String?
}

/// The result of an upload, after verification against the store's own description.
public struct UploadResult: Sendable, Equatable {
    public let info: ObjectInfo
    /// 1 for a single PUT, the number of parts otherwise.
    public let parts: Int
    /// The checksum computed locally from the bytes sent (composite `-N` for multipart).
    public let expectedChecksumSHA256: String
}

extension String {
    /// ETags come quoted (`"abc…"`); comparisons want the bare value.
    var unquotedETag: String {
        var s = Substring(self)
        if s.hasPrefix("W/") { s = s.dropFirst(2) }
        if s.hasPrefix("\""), s.hasSuffix("\""), s.count >= 2 { s = s.dropFirst().dropLast() }
        return String(s)
    }
}
