import Foundation

/// An error answer from the S3 service, as precise as the service made it: the `<Error>` body's
/// code and message, the HTTP status, and the request id to quote to the storage operator.
public struct S3ServiceError: Error, Sendable, Equatable {
    /// `NoSuchKey`, `SignatureDoesNotMatch`, `AccessDenied`, … For an answer without a body
    /// (every HEAD, some proxies), the status's name: `NotFound`, `Forbidden`, `HTTP 500`.
    public let code: String
    public let message: String
    public let status: Int
    /// From the body's `<RequestId>` or, failing that, the `x-amz-request-id` header.
    public let requestID: String?
    /// `<HostId>` or `x-amz-id-2`: the second id AWS support asks for.
    public let hostID: String?
    /// What was being done: `PutObject`, `UploadPart 3`, `ListObjectsV2`, …
    public let operation: String
    /// The object key (with prefix) or bucket the request was about.
    public let resource: String

    public init(code: String, message: String, status: Int, requestID: String?, hostID: String?,
                operation: String, resource: String) {
        self.code = code
        self.message = message
        self.status = status
        self.requestID = requestID
        self.hostID = hostID
        self.operation = operation
        self.resource = resource
    }

    /// Builds the error from a non-2xx answer. The body is parsed as S3's `<Error>` document
    /// when it is one; otherwise the status and headers are all there is.
    static func from(status: Int, body: Data, requestIDHeader: String?, hostIDHeader: String?,
                     operation: String, resource: String) -> S3ServiceError {
        if let tree = XMLTree.parse(body), tree.name == "Error" {
            return S3ServiceError(
                code: tree.value("Code") ?? fallbackCode(status), message: tree.value("Message") ?? "",
                status: status, requestID: tree.value("RequestId") ?? tree.value("RequestID") ?? requestIDHeader,
                hostID: tree.value("HostId") ?? hostIDHeader, operation: operation, resource: resource)
        }
        let text = String(decoding: body.prefix(512), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return S3ServiceError(code: fallbackCode(status), message: text, status: status, requestID: requestIDHeader,
                              hostID: hostIDHeader, operation: operation, resource: resource)
    }

    static func fallbackCode(_ status: Int) -> String {
        switch status {
        case 301: return "PermanentRedirect"
        case 400: return "BadRequest"
        case 403: return "Forbidden"
        case 404: return "NotFound"
        case 409: return "Conflict"
        case 412: return "PreconditionFailed"
        case 503: return "ServiceUnavailable"
        default: return "HTTP \(status)"
        }
    }
}

extension S3ServiceError: CustomStringConvertible {
    public var description: String {
        "\(operation) \(resource): \(code) (HTTP \(status))" + (message.isEmpty ? "" : ": \(message)")
            + (requestID.map { " [request id \($0)]" } ?? "")
    }
}

/// Everything else that can go wrong between Gatehouse and the object store.
public enum ObjectStorageError: Error, Sendable, Equatable {
    /// A 2xx answer whose body is not what the operation promises (not XML, a missing element).
    case malformedResponse(operation: String, reason: String)
    /// After an upload the store describes a different object from the one sent: the local
    /// copy must not be deleted.
    case verificationFailed(key: String, reason: String)
    /// A local file could not be read or written.
    case file(path: String, reason: String)
}

extension ObjectStorageError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .malformedResponse(let operation, let reason): return "\(operation): malformed answer: \(reason)"
        case .verificationFailed(let key, let reason): return "upload of \(key) not verified: \(reason)"
        case .file(let path, let reason): return "\(path): \(reason)"
        }
    }
}
