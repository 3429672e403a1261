import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

extension S3Client {
    /// Stores `data` under `name` with one PUT. The body's MD5 and SHA-256 travel with it
    /// (`Content-MD5`, `x-amz-checksum-sha256`) so the store refuses bytes damaged on the way,
    /// and the signed payload hash covers them too. Returns the ETag the store gives.
    @discardableResult
    public func putObject(_ name: String, data: Data, contentType: String = "application/octet-stream") async throws -> String {
        let digest = PartDigest(data)
        let call = Call(operation: "PutObject", method: .PUT, key: key(name),
                        headers: [("Content-Type", contentType)] + Self.checksumHeaders(digest, sdkAlgorithm: true),
                        body: data, payload: .sha256Hex(digest.sha256Hex))
        let (headers, _) = try await sendCollecting(call, limit: Self.errorBodyLimit)
        return headers.first(name: "ETag")?.unquotedETag ?? ""
    }

    /// The headers by which the store checks a body. `x-amz-sdk-checksum-algorithm` names the
    /// algorithm of the `x-amz-checksum-*` header as the AWS SDKs do; some stores keep the
    /// checksum only when it is present.
    static func checksumHeaders(_ digest: PartDigest, sdkAlgorithm: Bool) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [("Content-MD5", digest.contentMD5), ("x-amz-checksum-sha256", digest.checksumSHA256)]
        if sdkAlgorithm { headers.append(("x-amz-sdk-checksum-algorithm", "SHA256")) }
        return headers
    }

    /// The whole object, in memory: for small objects (an index, a manifest). Refuses objects
    /// larger than `limit` rather than growing without bound.
    public func getObject(_ name: String, limit: Int = 64 * 1024 * 1024) async throws -> Data {
        let (_, data) = try await sendCollecting(Call(operation: "GetObject", method: .GET, key: key(name)), limit: limit)
        return data
    }

    /// Streams the object into a new file at `path` (replacing it only once complete: the data
    /// goes to `path.partial` first). Memory use is one network buffer, whatever the size.
    /// Returns the object's description; throws if fewer bytes arrive than announced.
    @discardableResult
    public func getObject(_ name: String, toFile path: String) async throws -> ObjectInfo {
        let full = key(name)
        let response = try await send(Call(operation: "GetObject", method: .GET, key: full, headers: [("x-amz-checksum-mode", "ENABLED")]))
        let partial = path + ".partial"
        guard FileManager.default.createFile(atPath: partial, contents: nil),
              let handle = FileHandle(forWritingAtPath: partial) else {
            throw ObjectStorageError.file(path: partial, reason: "cannot create")
        }
        var written: Int64 = 0
        do {
            defer { try? handle.close() }
            for try await buffer in response.body {
                try handle.write(contentsOf: Data(buffer.readableBytesView))
                written += Int64(buffer.readableBytes)
            }
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(atPath: partial)
            if error is ObjectStorageError { throw error }
            throw ObjectStorageError.file(path: partial, reason: "\(error)")
        }
        let info = Self.info(name: name, headers: response.headers, size: written)
        if let announced = response.headers.first(name: "Content-Length").flatMap(Int64.init), announced != written {
            try? FileManager.default.removeItem(atPath: partial)
            throw ObjectStorageError.malformedResponse(operation: "GetObject", reason: "\(full): \(written) bytes received, \(announced) announced")
        }
        do {
            if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
            try FileManager.default.moveItem(atPath: partial, toPath: path)
        } catch {
            throw ObjectStorageError.file(path: path, reason: "\(error)")
        }
        return info
    }

    /// Size, ETag and, when the object has one, its SHA-256 checksum. A missing object is an
    /// `S3ServiceError` with status 404 (code `NotFound`: HEAD answers carry no body).
    public func headObject(_ name: String) async throws -> ObjectInfo {
        let (headers, _) = try await sendCollecting(
            Call(operation: "HeadObject", method: .HEAD, key: key(name), headers: [("x-amz-checksum-mode", "ENABLED")]),
            limit: Self.errorBodyLimit)
        guard let size = headers.first(name: "Content-Length").flatMap(Int64.init) else {
            throw ObjectStorageError.malformedResponse(operation: "HeadObject", reason: "\(key(name)): no Content-Length")
        }
        return Self.info(name: name, headers: headers, size: size)
    }

    static func info(name: String, headers: HTTPHeaders, size: Int64) -> ObjectInfo {
        ObjectInfo(name: name, size: size, etag: headers.first(name: "ETag")?.unquotedETag ?? "",
                   checksumSHA256: headers.first(name: "x-amz-checksum-sha256"),
                   checksumType: headers.first(name: "x-amz-checksum-type"))
    }

    /// Deletes the object. Deleting a missing object succeeds, as in S3.
    public func deleteObject(_ name: String) async throws {
        _ = try await sendCollecting(Call(operation: "DeleteObject", method: .DELETE, key: key(name)), limit: Self.errorBodyLimit)
    }
}
