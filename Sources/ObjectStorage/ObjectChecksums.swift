import Crypto
import Foundation

/// The digests an upload carries so the store can check the bytes it received, and that are
/// compared with what the store reports afterwards.
public struct PartDigest: Sendable, Equatable {
    public let size: Int
    public let md5: [UInt8]
    public let sha256: [UInt8]

    public init<D: DataProtocol>(_ bytes: D) {
        size = bytes.count
        md5 = Array(Insecure.MD5.hash(data: bytes))
        sha256 = Array(SHA256.hash(data: bytes))
    }

    /// `Content-MD5`: S3 refuses the body (BadDigest) when it does not hash to this.
    public var contentMD5: String { Data(md5).base64EncodedString() }
    /// `x-amz-checksum-sha256`: the same check with SHA-256, also kept with the object.
    public var checksumSHA256: String { Data(sha256).base64EncodedString() }
    /// The payload hash the signature covers.
    public var sha256Hex: String { SigV4Signer.hex(sha256) }
    /// What S3 gives as ETag for a single PUT without SSE-KMS/SSE-C: the hex MD5.
    public var md5Hex: String { SigV4Signer.hex(md5) }
}

/// The checksums S3 reports for an object sent in parts: not a digest of the whole object but
/// a digest of the parts' digests, suffixed with the part count.
public enum MultipartChecksum {
    /// `x-amz-checksum-sha256` of a multipart object (COMPOSITE): base64(SHA-256(part SHA-256s)) + "-N".
    public static func compositeSHA256(_ parts: [PartDigest]) -> String {
        let digest = SHA256.hash(data: parts.flatMap(\.sha256))
        return Data(digest).base64EncodedString() + "-\(parts.count)"
    }

    /// The ETag of a multipart object: hex(MD5(part MD5s)) + "-N".
    public static func etag(_ parts: [PartDigest]) -> String {
        SigV4Signer.hex(Insecure.MD5.hash(data: parts.flatMap(\.md5))) + "-\(parts.count)"
    }
}
