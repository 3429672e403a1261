import Foundation

/// Where recordings go: an S3-compatible endpoint, a bucket, a key prefix and credentials.
/// Built from values the caller has already read (from YAML, later); the initializer checks
/// each value and refuses with the field's name, so a typo fails at start rather than at the
/// first upload.
public struct ObjectStoreConfiguration: Sendable {
    /// How the bucket is named in a request.
    public enum Addressing: String, Sendable {
        /// `http://host:port/bucket/key`: MinIO, moto, Ceph and most S3-compatible stores.
        case path
        /// `https://bucket.host/key`: AWS's default.
        case virtualHosted
    }

    public let scheme: String
    public let host: String
    /// Explicit port of the endpoint, if it has one.
    public let port: Int?
    public let region: String
    public let bucket: String
    /// Prepended to every key (`recordings/`). Empty for none.
    public let prefix: String
    public let credentials: SigV4Credentials
    public let addressing: Addressing
    /// Files at least this large are sent by multipart upload.
    public let multipartThreshold: Int
    /// Size of each multipart part but the last, and so the memory an upload holds.
    public let partSize: Int
    /// Per-request timeout.
    public let requestTimeout: Duration

    /// S3's limits: every part but the last is at least 5 MiB; no part exceeds 5 GiB.
    public static let minimumPartSize = 5 * 1024 * 1024
    public static let maximumPartSize = 5 * 1024 * 1024 * 1024

    public init(endpoint: String, region: String, bucket: String, prefix: String = "",
                credentials: SigV4Credentials, addressing: Addressing = .path,
                multipartThreshold: Int = 16 * 1024 * 1024, partSize: Int = 8 * 1024 * 1024,
                requestTimeout: Duration = .seconds(60)) throws(ObjectStoreConfigurationError) {
        guard let components = URLComponents(string: endpoint), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https" else {
            throw .init(field: "endpoint", reason: "must be an http:// or https:// URL, got \"\(endpoint)\"")
        }
        guard let host = components.host, !host.isEmpty else {
            throw .init(field: "endpoint", reason: "has no host: \"\(endpoint)\"")
        }
        guard components.path.isEmpty || components.path == "/", components.query == nil, components.fragment == nil,
              components.user == nil, components.password == nil else {
            throw .init(field: "endpoint", reason: "must be scheme://host[:port] only (no path, query or credentials): \"\(endpoint)\"")
        }
        if let port = components.port, !(1...65535).contains(port) {
            throw .init(field: "endpoint", reason: "port \(port) out of range")
        }
        guard !region.isEmpty, region.utf8.allSatisfy({ Self.isLowerAlnum($0) || $0 == UInt8(ascii: "-") }) else {
            throw .init(field: "region", reason: "must be lower-case letters, digits and '-' (e.g. us-east-1), got \"\(region)\"")
        }
        if let reason = Self.bucketNameProblem(bucket) { throw .init(field: "bucket", reason: reason) }
        if prefix.hasPrefix("/") { throw .init(field: "prefix", reason: "must not start with '/' (keys are relative to the bucket)") }
        if prefix.utf8.count > 512 { throw .init(field: "prefix", reason: "longer than 512 bytes") }
        if prefix.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw .init(field: "prefix", reason: "contains a control character")
        }
        for (field, value) in [("access_key_id", credentials.accessKeyID), ("secret_access_key", credentials.secretAccessKey),
                               ("session_token", credentials.sessionToken ?? "x")] {
            if value.isEmpty { throw .init(field: "credentials.\(field)", reason: "is empty") }
            if value.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control }) {
                throw .init(field: "credentials.\(field)", reason: "contains whitespace or a control character")
            }
        }
        guard (Self.minimumPartSize...Self.maximumPartSize).contains(partSize) else {
            throw .init(field: "part_size", reason: "must be between 5 MiB and 5 GiB, got \(partSize)")
        }
        guard multipartThreshold >= 1 else { throw .init(field: "multipart_threshold", reason: "must be positive") }
        guard requestTimeout > .zero else { throw .init(field: "request_timeout", reason: "must be positive") }
        if addressing == .virtualHosted && bucket.contains(".") && scheme == "https" {
            throw .init(field: "addressing", reason: "a bucket name with '.' cannot be virtual-hosted over https (the certificate does not match); use path")
        }

        self.scheme = scheme
        self.host = host
        self.port = components.port
        self.region = region
        self.bucket = bucket
        self.prefix = prefix
        self.credentials = credentials
        self.addressing = addressing
        self.multipartThreshold = multipartThreshold
        self.partSize = partSize
        self.requestTimeout = requestTimeout
    }

    /// S3's bucket naming rules: 3-63 characters of lower-case letters, digits, '.' and '-',
    /// beginning and ending with a letter or digit, no "..", not shaped like an IPv4 address.
    static func bucketNameProblem(_ bucket: String) -> String? {
        let bytes = Array(bucket.utf8)
        guard (3...63).contains(bytes.count) else { return "must be 3 to 63 characters, got \"\(bucket)\"" }
        guard bytes.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }) else {
            return "may hold only lower-case letters, digits, '.' and '-', got \"\(bucket)\""
        }
        guard isLowerAlnum(bytes.first!), isLowerAlnum(bytes.last!) else { return "must begin and end with a letter or digit" }
        if bucket.contains("..") { return "must not contain \"..\"" }
        let parts = bucket.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) { return "must not be formatted as an IP address" }
        return nil
    }

    static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    /// The host (and port, when the endpoint names one) requests go to.
    var requestHost: String {
        let name = addressing == .virtualHosted ? "\(bucket).\(host)" : host
        // An IPv6 literal is bracketed in a Host header (URLComponents may or may not keep them).
        let bracketed = name.contains(":") && !name.hasPrefix("[") ? "[\(name)]" : name
        return port.map { "\(bracketed):\($0)" } ?? bracketed
    }

    /// The unencoded request path for `key` (already prefixed), or for the bucket when nil.
    func requestPath(key: String?) -> String {
        switch addressing {
        case .path: return "/\(bucket)" + (key.map { "/\($0)" } ?? "")
        case .virtualHosted: return "/" + (key ?? "")
        }
    }
}

/// A configuration value that was refused: which field, and why.
public struct ObjectStoreConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let reason: String
    public var description: String { "recordings_store.\(field): \(reason)" }
}
