import Foundation
import Logging

extension S3Client {
    /// Uploads the file at `path` as `name` and verifies it: a single PUT below the multipart
    /// threshold, a multipart upload from it on. Then HEAD must report the file's size and the
    /// locally computed SHA-256 checksum (composite for multipart) or, when the store keeps no
    /// checksum, the ETag the bytes imply; otherwise `verificationFailed`, and the caller keeps
    /// its local copy.
    public func uploadFile(at path: String, as name: String) async throws -> UploadResult {
        let size: Int
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            size = (attributes[.size] as? NSNumber)?.intValue ?? 0
        } catch {
            throw ObjectStorageError.file(path: path, reason: "\(error)")
        }
        let parts: [PartDigest]
        if size < configuration.multipartThreshold {
            let data: Data
            do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw ObjectStorageError.file(path: path, reason: "\(error)")
            }
            try await putObject(name, data: data)
            parts = [PartDigest(data)]
        } else {
            parts = try await multipartUpload(at: path, as: name)
        }
        return try await verify(name: name, size: size, parts: parts)
    }

    /// HEAD and compare with what was sent.
    func verify(name: String, size: Int, parts: [PartDigest]) async throws -> UploadResult {
        let multipart = parts.count > 1 || size >= configuration.multipartThreshold
        let expectedChecksum = multipart ? MultipartChecksum.compositeSHA256(parts) : parts[0].checksumSHA256
        let expectedETag = multipart ? MultipartChecksum.etag(parts) : parts[0].md5Hex
        let info = try await headObject(name)
        let full = key(name)
        guard info.size == Int64(size) else {
            throw ObjectStorageError.verificationFailed(key: full, reason: "store holds \(info.size) bytes, \(size) were sent")
        }
        if let reported = info.checksumSHA256 {
            guard Self.checksum(reported, matches: expectedChecksum) else {
                throw ObjectStorageError.verificationFailed(key: full, reason: "checksum \(reported), expected \(expectedChecksum)")
            }
        } else if info.etag != expectedETag {
            // Without a stored checksum the ETag is the only digest the store reports (MD5
            // based for unencrypted and SSE-S3 objects).
            throw ObjectStorageError.verificationFailed(key: full, reason: "no checksum reported and ETag \(info.etag), expected \(expectedETag)")
        }
        return UploadResult(info: info, parts: multipart ? parts.count : 1, expectedChecksumSHA256: expectedChecksum)
    }

    /// Whether a reported checksum is the expected one. S3 gives a composite checksum with its
    /// "-N" part count; moto's HEAD leaves the count off, so a bare value is compared with the
    /// expected one's digest part (base64 has no '-', so the split is unambiguous).
    static func checksum(_ reported: String, matches expected: String) -> Bool {
        if reported == expected { return true }
        if !reported.contains("-"), let dash = expected.lastIndex(of: "-") { return reported == expected[..<dash] }
        return false
    }

    /// CreateMultipartUpload, one UploadPart per `partSize` bytes read from the file (one part
    /// in memory at a time, parts sent in order), CompleteMultipartUpload. On any failure the
    /// upload is aborted so the store does not keep (and bill) orphaned parts. Returns the
    /// digests of the parts sent.
    func multipartUpload(at path: String, as name: String) async throws -> [PartDigest] {
        let full = key(name)
        guard let file = FileHandle(forReadingAtPath: path) else {
            throw ObjectStorageError.file(path: path, reason: "cannot open for reading")
        }
        defer { try? file.close() }

        let (_, created) = try await sendCollecting(
            Call(operation: "CreateMultipartUpload", method: .POST, key: full, query: [("uploads", "")],
                 headers: [("Content-Type", "application/octet-stream"), ("x-amz-checksum-algorithm", "SHA256")]),
            limit: Self.errorBodyLimit)
        let result = try parseXML(created, root: "InitiateMultipartUploadResult", operation: "CreateMultipartUpload", resource: full)
        guard let uploadID = result.value("UploadId"), !uploadID.isEmpty else {
            throw ObjectStorageError.malformedResponse(operation: "CreateMultipartUpload", reason: "no UploadId")
        }

        do {
            var parts: [(number: Int, etag: String, digest: PartDigest)] = []
            while true {
                let chunk: Data
                do { chunk = try file.read(upToCount: configuration.partSize) ?? Data() } catch {
                    throw ObjectStorageError.file(path: path, reason: "\(error)")
                }
                if chunk.isEmpty && !parts.isEmpty { break }
                let number = parts.count + 1
                let digest = PartDigest(chunk)
                let (headers, _) = try await sendCollecting(
                    Call(operation: "UploadPart \(number)", method: .PUT, key: full,
                         query: [("partNumber", String(number)), ("uploadId", uploadID)],
                         headers: Self.checksumHeaders(digest, sdkAlgorithm: false),
                         body: chunk, payload: .sha256Hex(digest.sha256Hex)),
                    limit: Self.errorBodyLimit)
                guard let etag = headers.first(name: "ETag") else {
                    throw ObjectStorageError.malformedResponse(operation: "UploadPart \(number)", reason: "no ETag")
                }
                parts.append((number, etag, digest))
                if chunk.count < configuration.partSize { break }
            }

            let body = Data(Self.completeBody(parts.map { ($0.number, $0.etag, $0.digest.checksumSHA256) }).utf8)
            let bodyDigest = PartDigest(body)
            let (_, completed) = try await sendCollecting(
                Call(operation: "CompleteMultipartUpload", method: .POST, key: full, query: [("uploadId", uploadID)],
                     headers: [("Content-Type", "application/xml")], body: body, payload: .sha256Hex(bodyDigest.sha256Hex)),
                limit: Self.errorBodyLimit)
            // S3 answers <CompleteMultipartUploadResult>; moto names it <CompleteMultipartUploadResponse>.
            // Either is success; what matters is that it is not an <Error> sent with status 200.
            _ = try parseXML(completed, root: "CompleteMultipartUploadResult", alsoAccepting: "CompleteMultipartUploadResponse",
                             operation: "CompleteMultipartUpload", resource: full)
            return parts.map(\.digest)
        } catch {
            await abortMultipartUpload(key: full, uploadID: uploadID)
            throw error
        }
    }

    /// AbortMultipartUpload. Best effort: the error that caused the abort is the one reported;
    /// a failed abort is logged (a bucket lifecycle rule removes what is left).
    func abortMultipartUpload(key full: String, uploadID: String) async {
        do {
            _ = try await sendCollecting(Call(operation: "AbortMultipartUpload", method: .DELETE, key: full, query: [("uploadId", uploadID)]),
                                         limit: Self.errorBodyLimit)
        } catch {
            Logger(label: "gatehouse.object-storage").warning("abort of multipart upload \(uploadID) for \(full) failed: \(error)")
        }
    }

    /// The CompleteMultipartUpload document: every part's number, ETag (as the store gave it,
    /// quotes included) and SHA-256 checksum, in ascending part order.
    static func completeBody(_ parts: [(number: Int, etag: String, checksum: String)]) -> String {
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for part in parts {
            xml += "<Part><PartNumber>\(part.number)</PartNumber><ETag>\(escape(part.etag))</ETag>"
                + "<ChecksumSHA256>\(escape(part.checksum))</ChecksumSHA256></Part>"
        }
        return xml + "</CompleteMultipartUpload>"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
