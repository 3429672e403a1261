import Foundation

extension S3Client {
    /// One page of ListObjectsV2 under the configured prefix plus `prefix`.
    public func listObjectsPage(prefix: String = "", continuationToken: String? = nil, maxKeys: Int? = nil) async throws -> ObjectListPage {
        var query: [(name: String, value: String)] = [("list-type", "2"), ("prefix", key(prefix))]
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        if let maxKeys { query.append(("max-keys", String(maxKeys))) }
        let (_, body) = try await sendCollecting(Call(operation: "ListObjectsV2", method: .GET, key: nil, query: query),
                                                 limit: 16 * 1024 * 1024)
        return try Self.parseListPage(body, prefix: configuration.prefix, bucket: configuration.bucket)
    }

    /// Every object under the prefix, following continuation tokens page after page.
    public func listObjects(prefix: String = "", pageSize: Int? = nil) async throws -> [ObjectSummary] {
        var objects: [ObjectSummary] = []
        var token: String?
        repeat {
            let page = try await listObjectsPage(prefix: prefix, continuationToken: token, maxKeys: pageSize)
            objects += page.objects
            // A store that repeats a token would loop forever: refuse it.
            if let next = page.nextContinuationToken, next == token {
                throw ObjectStorageError.malformedResponse(operation: "ListObjectsV2", reason: "continuation token repeated")
            }
            token = page.nextContinuationToken
        } while token != nil
        return objects
    }

    /// Reads a `<ListBucketResult>`; names lose the configured prefix.
    static func parseListPage(_ body: Data, prefix: String, bucket: String) throws -> ObjectListPage {
        guard let tree = XMLTree.parse(body) else {
            throw ObjectStorageError.malformedResponse(operation: "ListObjectsV2", reason: "not XML")
        }
        guard tree.name == "ListBucketResult" else {
            if tree.name == "Error" {
                throw S3ServiceError.from(status: 200, body: body, requestIDHeader: nil, hostIDHeader: nil,
                                          operation: "ListObjectsV2", resource: bucket)
            }
            throw ObjectStorageError.malformedResponse(operation: "ListObjectsV2", reason: "root element <\(tree.name)>")
        }
        var objects: [ObjectSummary] = []
        for entry in tree.children("Contents") {
            guard let key = entry.value("Key"), let size = entry.value("Size").flatMap(Int64.init) else {
                throw ObjectStorageError.malformedResponse(operation: "ListObjectsV2", reason: "<Contents> without Key or Size")
            }
            let name = key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)) : key
            objects.append(ObjectSummary(name: name, size: size, etag: (entry.value("ETag") ?? "").unquotedETag))
        }
        let truncated = tree.value("IsTruncated") == "true"
        let token = tree.value("NextContinuationToken").flatMap { $0.isEmpty ? nil : $0 }
        if truncated && token == nil {
            throw ObjectStorageError.malformedResponse(operation: "ListObjectsV2", reason: "truncated listing without NextContinuationToken")
        }
        return ObjectListPage(objects: objects, nextContinuationToken: truncated ? token : nil)
    }
}
