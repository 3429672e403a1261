import ConfigurationSupport
import Foundation
import ObjectStorage
import Yams

/// The configuration file's `recordings_store:` section: where finished recordings end up.
///
///     recordings_store: {kind: local}            # the default: recordings stay in `recordings:`
///     recordings_store:
///       kind: s3
///       endpoint: https://s3.eu-west-1.amazonaws.com
///       bucket: gatehouse-recordings
///       region: eu-west-1
///       prefix: prod/                            # optional, prepended to every key
///       addressing: virtual_hosted               # path (default) | virtual_hosted
///       credentials:
///         access_key_id_file: /etc/gatehouse/s3-access-key-id   # or access_key_id: AKIA…
///         secret_access_key_file: /etc/gatehouse/s3-secret
///       queue_limit_bytes: 10737418240           # unshipped bytes before new sessions are refused
///       multipart_threshold_bytes: 16777216      # optional
///       part_size_bytes: 8388608                 # optional, 5 MiB … 5 GiB
///       replica_id: gatehouse-1                  # optional; default: the host name
///
/// Parsed by this module from the same file the bastion reads (which accepts the key as a
/// section another component owns, as it does `store:`). Every mistake is a
/// `ConfigurationError` at file:line:column. The secret is read from a file only, at load (so
/// `serve --check` catches a missing file), and never printed.
public enum RecordingsStoreConfiguration: Sendable, CustomStringConvertible {
    case local
    case s3(S3RecordingsStore)

    public static let section = "recordings_store"

    public var description: String {
        switch self {
        case .local: return "local (recordings stay in the recordings directory)"
        case .s3(let s3): return s3.description
        }
    }

    /// Reads the section of `file`; `.local` when there is none.
    public static func load(file: String) throws -> RecordingsStoreConfiguration {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError(file: file, line: 0, column: 0, key: "(file)", message: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: file, line: 0, column: 0, key: "(file)", message: "is not UTF-8 text")
        }
        return try parse(yaml: text, file: file)
    }

    public static func parse(yaml: String, file: String) throws -> RecordingsStoreConfiguration {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw ConfigurationError(file: file, line: 1, column: 1, key: "(document)", message: "not valid YAML: \(error)")
        }
        guard let root, let top = root.mapping, let node = top.first(where: { $0.key.string == section })?.value else { return .local }
        return try parse(node: node, reader: YAMLReader(file: file))
    }

    static let s3Keys: Set<String> = ["kind", "endpoint", "bucket", "region", "prefix", "addressing", "credentials", "queue_limit_bytes",
                                      "multipart_threshold_bytes", "part_size_bytes", "replica_id"]

    public static func parse(node: Node, reader r: YAMLReader) throws -> RecordingsStoreConfiguration {
        let m = try r.mapping(node, section)
        guard let kindNode = r.node(m, "kind") else { throw r.error(node, "\(section).kind", "is required: local or s3") }
        switch try r.string(kindNode, "\(section).kind") {
        case "local":
            try r.onlyKeys(m, ["kind"], section)
            return .local
        case "s3":
            try r.onlyKeys(m, s3Keys, section)
            return .s3(try parseS3(node: node, m, r))
        case let other:
            throw r.error(kindNode, "\(section).kind", "\"\(other)\" is not a recordings store kind: local or s3")
        }
    }

    static func parseS3(node: Node, _ m: Node.Mapping, _ r: YAMLReader) throws -> S3RecordingsStore {
        func required(_ key: String, _ example: String) throws -> (Node, String) {
            guard let n = r.node(m, key) else { throw r.error(node, "\(section).\(key)", "is required with kind: s3 (\(example))") }
            return (n, try r.string(n, "\(section).\(key)"))
        }
        let (endpointNode, endpoint) = try required("endpoint", "https://s3.eu-west-1.amazonaws.com")
        let (bucketNode, bucket) = try required("bucket", "gatehouse-recordings")
        let regionNode = r.node(m, "region")
        let region = try regionNode.map { try r.string($0, "\(section).region") } ?? "us-east-1"
        let prefixNode = r.node(m, "prefix")
        let prefix = try prefixNode.map { try r.string($0, "\(section).prefix") } ?? ""
        var addressing = ObjectStoreConfiguration.Addressing.path
        let addressingNode = r.node(m, "addressing")
        if let addressingNode {
            switch try r.string(addressingNode, "\(section).addressing") {
            case "path": addressing = .path
            case "virtual_hosted": addressing = .virtualHosted
            case let other: throw r.error(addressingNode, "\(section).addressing", "\"\(other)\" must be path or virtual_hosted")
            }
        }
        guard let credentialsNode = r.node(m, "credentials") else {
            throw r.error(node, "\(section).credentials", "is required with kind: s3 ({access_key_id_file, secret_access_key_file})")
        }
        let credentials = try parseCredentials(credentialsNode, r)
        let bytes = 1...(Int(1) << 50)
        let queueLimit = try r.int(m, "queue_limit_bytes", section, in: bytes) ?? Int(S3RecordingsStore.defaultQueueLimitBytes)
        let threshold = try r.int(m, "multipart_threshold_bytes", section, in: 1...ObjectStoreConfiguration.maximumPartSize) ?? 16 * 1024 * 1024
        let partSize = try r.int(m, "part_size_bytes", section,
                                 in: ObjectStoreConfiguration.minimumPartSize...ObjectStoreConfiguration.maximumPartSize) ?? 8 * 1024 * 1024
        var replicaID = ProcessInfo.processInfo.hostName
        if let replicaNode = r.node(m, "replica_id") {
            replicaID = try r.string(replicaNode, "\(section).replica_id")
            guard RecordingSpool.isValidReplicaID(replicaID) else {
                throw r.error(replicaNode, "\(section).replica_id", "\"\(replicaID)\" must be 1-64 letters, digits, '-', '_' or '.' (it names a spool directory), not starting with '.'")
            }
        } else if !RecordingSpool.isValidReplicaID(replicaID) {
            throw r.error(node, "\(section).replica_id", "the host name \"\(replicaID)\" cannot name a spool directory: set replica_id")
        }
        let objectStore: ObjectStoreConfiguration
        do {
            objectStore = try ObjectStoreConfiguration(endpoint: endpoint, region: region, bucket: bucket, prefix: prefix,
                                                       credentials: credentials.value, addressing: addressing,
                                                       multipartThreshold: threshold, partSize: partSize)
        } catch {
            // Point at the key the client refused.
            let at: (Node, String) = switch error.field {
            case "endpoint": (endpointNode, "endpoint")
            case "bucket": (bucketNode, "bucket")
            case "region": (regionNode ?? node, "region")
            case "prefix": (prefixNode ?? node, "prefix")
            case "addressing": (addressingNode ?? node, "addressing")
            case let field where field.hasPrefix("credentials."): (credentials.node, field)
            case let field: (r.node(m, field) ?? node, field)
            }
            throw r.error(at.0, "\(section).\(at.1)", error.reason)
        }
        return S3RecordingsStore(objectStore: objectStore, queueLimitBytes: Int64(queueLimit), replicaID: replicaID)
    }

    static func parseCredentials(_ node: Node, _ r: YAMLReader) throws -> (value: SigV4Credentials, node: Node) {
        let path = "\(section).credentials"
        let m = try r.mapping(node, path)
        try r.onlyKeys(m, ["access_key_id", "access_key_id_file", "secret_access_key_file"], path)
        let idNode = r.node(m, "access_key_id"), idFileNode = r.node(m, "access_key_id_file")
        let accessKeyID: String
        switch (idNode, idFileNode) {
        case (let n?, nil): accessKeyID = try r.string(n, "\(path).access_key_id")
        case (nil, let n?): accessKeyID = try readSecret(n, "\(path).access_key_id_file", r)
        case (_?, let n?): throw r.error(n, "\(path).access_key_id_file", "give access_key_id or access_key_id_file, not both")
        case (nil, nil): throw r.error(node, "\(path).access_key_id", "is required (or access_key_id_file)")
        }
        guard let secretNode = r.node(m, "secret_access_key_file") else {
            throw r.error(node, "\(path).secret_access_key_file", "is required: a file holding the secret (never written in this file)")
        }
        let secret = try readSecret(secretNode, "\(path).secret_access_key_file", r)
        return (SigV4Credentials(accessKeyID: accessKeyID, secretAccessKey: secret), node)
    }

    /// The file's one line, without its line ending. Missing, empty, several lines or a NUL
    /// are refused (a stray second line would silently be part of the secret).
    static func readSecret(_ node: Node, _ key: String, _ r: YAMLReader) throws -> String {
        let path = try r.string(node, key)
        guard let data = FileManager.default.contents(atPath: path) else { throw r.error(node, key, "cannot read \(path)") }
        guard var text = String(data: data, encoding: .utf8) else { throw r.error(node, key, "\(path) is not UTF-8 text") }
        if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
        guard !text.isEmpty else { throw r.error(node, key, "\(path) is empty") }
        guard !text.contains("\n"), !text.contains("\r"), !text.utf8.contains(0) else {
            throw r.error(node, key, "\(path) must hold one line")
        }
        return text
    }
}

/// `kind: s3`: the bucket, how much may wait locally, and this replica's name.
public struct S3RecordingsStore: Sendable, CustomStringConvertible {
    /// 10 GiB: a day of busy sessions on one replica, small next to a spool disk.
    public static let defaultQueueLimitBytes: Int64 = 10 * 1024 * 1024 * 1024

    public let objectStore: ObjectStoreConfiguration
    /// Finished, unshipped bytes in this replica's spool past which new sessions are refused.
    public let queueLimitBytes: Int64
    /// This replica's name: its spool is RECORDINGS/<replica_id>/ and its heartbeat row.
    public let replicaID: String

    public init(objectStore: ObjectStoreConfiguration, queueLimitBytes: Int64, replicaID: String) {
        self.objectStore = objectStore
        self.queueLimitBytes = queueLimitBytes
        self.replicaID = replicaID
    }

    /// The secret never appears; the access key id does (it names the key, it opens nothing).
    public var description: String {
        let c = objectStore
        let endpoint = "\(c.scheme)://\(c.host)" + (c.port.map { ":\($0)" } ?? "")
        return "s3 \(endpoint) bucket \(c.bucket)" + (c.prefix.isEmpty ? "" : " prefix \(c.prefix)")
            + " (region \(c.region), \(c.addressing == .path ? "path" : "virtual-hosted") addressing, access key \(c.credentials.accessKeyID),"
            + " queue limit \(queueLimitBytes) bytes, replica \(replicaID))"
    }
}
