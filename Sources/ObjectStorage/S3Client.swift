import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A small S3 client: PUT, multipart upload, GET, HEAD, LIST and DELETE of objects in one
/// bucket, signed with SigV4, over AsyncHTTPClient. It speaks plain S3 (no vendor extensions),
/// so AWS, MinIO, Ceph RGW and moto all answer it.
///
/// Object names given to and returned by it are relative to the configured prefix.
public final class S3Client: Sendable {
    public let configuration: ObjectStoreConfiguration
    let http: HTTPClient
    let signer: SigV4Signer
    let clock: @Sendable () -> Date

    /// Error bodies are small XML documents; anything longer is not S3 talking.
    static let errorBodyLimit = 256 * 1024

    public init(configuration: ObjectStoreConfiguration, httpClient: HTTPClient = .shared,
                clock: @escaping @Sendable () -> Date = { Date() }) {
        self.configuration = configuration
        self.http = httpClient
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region)
        self.clock = clock
    }

    /// The full key for `name`: the prefix, then the name.
    public func key(_ name: String) -> String { configuration.prefix + name }

    /// One request to the store: what it does (for errors), and what to send.
    struct Call {
        var operation: String
        var method: HTTPMethod
        /// Full key (with prefix); nil for a bucket-level request.
        var key: String?
        var query: [(name: String, value: String)] = []
        var headers: [(name: String, value: String)] = []
        var body: Data?
        var payload: SigV4Request.Payload = .empty
    }

    /// Signs and sends `call`. A non-2xx answer is read and thrown as `S3ServiceError`; a 2xx
    /// answer is returned with its body not yet read (the caller must consume it).
    func send(_ call: Call) async throws -> HTTPClientResponse {
        let path = configuration.requestPath(key: call.key)
        let host = configuration.requestHost
        var headers = call.headers
        headers.insert(("Host", host), at: 0)
        let signature = signer.sign(
            SigV4Request(method: call.method.rawValue, path: path, query: call.query, headers: headers, payload: call.payload),
            at: clock())
        let query = SigV4Encoding.canonicalQuery(call.query)
        // The path on the request line is encoded exactly as the canonical URI was, so the
        // server's canonical request is the one signed.
        var request = HTTPClientRequest(url: "\(configuration.scheme)://\(host)\(SigV4Encoding.s3RequestPath(path))"
                                        + (query.isEmpty ? "" : "?\(query)"))
        request.method = call.method
        for (name, value) in headers + signature.headersToAdd { request.headers.add(name: name, value: value) }
        if let body = call.body {
            request.body = .bytes(body)
        } else if call.method == .PUT || call.method == .POST {
            // An empty PUT/POST still says so: some servers refuse a body-less write without a length.
            request.headers.replaceOrAdd(name: "Content-Length", value: "0")
        }

        let response = try await http.execute(request, timeout: timeout)
        guard (200..<300).contains(Int(response.status.code)) else {
            let body = try await collect(response, limit: Self.errorBodyLimit, operation: call.operation)
            throw S3ServiceError.from(status: Int(response.status.code), body: body,
                                      requestIDHeader: response.headers.first(name: "x-amz-request-id"),
                                      hostIDHeader: response.headers.first(name: "x-amz-id-2"),
                                      operation: call.operation, resource: call.key ?? configuration.bucket)
        }
        return response
    }

    /// Sends `call` and reads the whole (bounded) body of its 2xx answer.
    func sendCollecting(_ call: Call, limit: Int) async throws -> (HTTPHeaders, Data) {
        let response = try await send(call)
        return (response.headers, try await collect(response, limit: limit, operation: call.operation))
    }

    func collect(_ response: HTTPClientResponse, limit: Int, operation: String) async throws -> Data {
        do {
            return Data(try await response.body.collect(upTo: limit).readableBytesView)
        } catch is NIOTooManyBytesError {
            throw ObjectStorageError.malformedResponse(operation: operation, reason: "answer longer than \(limit) bytes")
        }
    }

    var timeout: TimeAmount {
        let (seconds, attoseconds) = configuration.requestTimeout.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Parses an XML answer whose root must be `root`. S3 may answer 200 with an `<Error>`
    /// document (CompleteMultipartUpload does, when it fails after starting to answer), so that
    /// root is turned into the error it is.
    func parseXML(_ data: Data, root: String, alsoAccepting other: String? = nil, operation: String, resource: String) throws -> XMLTree {
        guard let tree = XMLTree.parse(data) else {
            throw ObjectStorageError.malformedResponse(operation: operation, reason: "not XML: \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        if tree.name == "Error" {
            throw S3ServiceError.from(status: 200, body: data, requestIDHeader: nil, hostIDHeader: nil,
                                      operation: operation, resource: resource)
        }
        guard tree.name == root || tree.name == other else {
            throw ObjectStorageError.malformedResponse(operation: operation, reason: "root element <\(tree.name)>, expected <\(root)>")
        }
        return tree
    }

    /// Creates the bucket (used by tests and first-time setup). Outside us-east-1 the region
    /// must be named in the body, or AWS creates nothing and answers an error.
    public func createBucket() async throws {
        var call = Call(operation: "CreateBucket", method: .PUT, key: nil)
        if configuration.region != "us-east-1" {
            let body = Data(("<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                + "<LocationConstraint>\(configuration.region)</LocationConstraint></CreateBucketConfiguration>").utf8)
            let digest = PartDigest(body)
            call.body = body
            call.payload = .sha256Hex(digest.sha256Hex)
        }
        _ = try await sendCollecting(call, limit: Self.errorBodyLimit)
    }
}
