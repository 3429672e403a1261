// swift-tools-version:6.2
import PackageDescription

// One module per concern. Dependencies point one way: the `gatehouse` executable assembles
// the modules; no module knows the CLI.
let package = Package(
    name: "Gatehouse",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // libssh 0.10 (Debian's libssh-dev), the SSH transport on both sides.
        .systemLibrary(name: "CLibSSH", pkgConfig: "libssh", providers: [.apt(["libssh-dev"])]),
        // Linux and glibc calls Swift's Glibc module leaves out (fallocate, malloc_trim, eventfd, accept4).
        .target(name: "CSystemCalls"),
        // OpenSSH keys, certificates, signatures, validation rules and KRLs. No libssh.
        // The one refusal shape (code, rule, reason) every module states its refusals in.
        .target(name: "Refusals", dependencies: ["JSONWriting"]),
        .target(name: "SSHCertificates", dependencies: [
            "Refusals",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CryptoExtras", package: "swift-crypto"),
        ]),
        // The one JSON writer: strings escaped byte for byte as JSONSerialization does. No dependencies.
        .target(name: "JSONWriting"),
        // Tamper-evident, hash-chained audit log shared by every component.
        .target(name: "Audit", dependencies: [
            "JSONWriting",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The three certificate authorities, their keys, lifecycle and rotation.
        .target(name: "CertificateAuthority", dependencies: ["SSHCertificates", "Audit"]),
        // What every configuration file shares: the YAML reader that reports file:line:column,
        // and listen addresses. Policy, Bastion and Issuance read their sections through it.
        .target(name: "ConfigurationSupport", dependencies: [.product(name: "Yams", package: "Yams")]),
        // Command allowlists: the POSIX shell word splitter, patterns and decisions.
        .target(name: "Policy", dependencies: ["ConfigurationSupport", "Refusals", "JSONWriting", .product(name: "Yams", package: "Yams")]),
        // Session recordings: format, writer, recovery, reader, verification, export, index.
        .target(name: "Recording", dependencies: [
            "SSHCertificates", "CSystemCalls", "JSONWriting", "Masking",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The SSH front (libssh server), login, channel policy and the proxy to targets.
        .target(name: "Bastion", dependencies: [
            "CLibSSH", "CSystemCalls", "Refusals", "SSHCertificates", "CertificateAuthority", "ConfigurationSupport", "Policy", "Audit", "Recording", "Approvals", "Masking",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // OIDC token verification, claim mapping and the HTTP issuance service (hummingbird).
        .target(name: "Issuance", dependencies: [
            "SSHCertificates", "CertificateAuthority", "Audit", "ConfigurationSupport", "Policy", "JSONWriting", "Refusals", "Approvals",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // The Prometheus exporter behind swift-metrics: a registry, the factory the modules count
        // through, and the text `/metrics` serves. Only the executable (and tests) assemble it.
        .target(name: "MetricsExporter", dependencies: [
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // Approvals for review commands: request keys, the store (file default), waits, webhooks.
        .target(name: "Approvals", dependencies: [
            "Audit", "JSONWriting", "Refusals",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        // Secret detection and the streaming masker for agent-bound output (rules, custom rules YAML, mask records);
        // optimized in debug builds too, so the chunking property tests run in seconds.
        .target(name: "Masking", dependencies: ["ConfigurationSupport", .product(name: "Yams", package: "Yams")], swiftSettings: [.unsafeFlags(["-O"])]),
        // A small S3 client for shipping recordings to S3-compatible storage: SigV4 signing (pure,
        // tested against AWS's published vectors), PUT, multipart, GET, HEAD, LIST, DELETE.
        .target(name: "ObjectStorage", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Shared state for replicas in PostgreSQL (postgres-nio): connection configuration, versioned
        // schema migrations, the one audit hash chain, certificate serials, the `jti` replay cache,
        // session budgets, approval requests; the configuration file's `store:` section. Knows Audit's record format;
        // no module above it (Bastion, Issuance, CLI).
        .target(name: "StateStore", dependencies: [
            "Audit", "JSONWriting", "ConfigurationSupport", "Approvals",
            .product(name: "Yams", package: "Yams"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Finished recordings to S3-compatible storage: the `recordings_store:` section, the shipper
        // (leases and the shared index in PostgreSQL, HEAD-verified uploads, a dead replica's spool
        // recovered and shipped), and reading recordings back from the bucket.
        .target(name: "RecordingShipping", dependencies: [
            "Recording", "ObjectStorage", "StateStore", "SSHCertificates", "ConfigurationSupport",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The CLI and the server assembly.
        .executableTarget(name: "gatehouse", dependencies: [
            "SSHCertificates", "Audit", "CertificateAuthority", "ConfigurationSupport", "Policy", "Recording", "Bastion", "Issuance", "MetricsExporter", "Approvals", "Masking", "JSONWriting", "StateStore", "RecordingShipping", "ObjectStorage",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),

        // A mutation fuzzer over the parsers (keys, certificates, private key files, KRLs) and the
        // policy splitter, pattern compiler and matcher.
        .executableTarget(name: "GatehouseFuzz", dependencies: ["SSHCertificates", "Policy"]),
        // Micro-benchmarks: certificate verification and signing per key type; policy decisions.
        .executableTarget(name: "GatehouseBench", dependencies: ["SSHCertificates", "Policy"]),

        // Process helpers shared by the test targets that start real programs (not shipped).
        .target(name: "ProcessSupport", path: "Tests/ProcessSupport"),
        // PostgreSQL 15 and moto's S3 server for the tests, on loopback, stopped by pid.
        .target(name: "ServerFixtures", dependencies: [
            "ProcessSupport", "ObjectStorage",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ], path: "Tests/ServerFixtures"),
        .testTarget(name: "SSHCertificatesTests", dependencies: ["ProcessSupport", "SSHCertificates"]),
        .testTarget(name: "AuditTests", dependencies: ["Audit"]),
        // The PostgreSQL store against a real PostgreSQL 15 (initdb in a temporary directory, loopback only).
        .testTarget(name: "StateStoreTests", dependencies: [
            "ProcessSupport", "ServerFixtures", "StateStore", "Audit", "ConfigurationSupport", "CertificateAuthority", "SSHCertificates", "Approvals",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "JSONWritingTests", dependencies: ["JSONWriting"]),
        // The approvals store on real files, across threads, instances and a real second process; webhooks on loopback.
        .testTarget(name: "ApprovalsTests", dependencies: [
            "ProcessSupport", "Approvals", "Audit",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
        ]),
        // Rules, chunking invariance, reconstruction, binary pass-through, corpus recall and false positives.
        .testTarget(name: "MaskingTests", dependencies: ["Masking", "ConfigurationSupport", .product(name: "Crypto", package: "swift-crypto")], resources: [.copy("corpus")]),
        .testTarget(name: "PolicyTests", dependencies: ["ConfigurationSupport", "Policy"], resources: [.copy("hostile-commands.txt")]),
        .testTarget(name: "CertificateAuthorityTests", dependencies: ["CertificateAuthority", "SSHCertificates", "Audit", "Recording"]),
        .testTarget(name: "RecordingTests", dependencies: ["Recording", "SSHCertificates", "Masking"]),
        .testTarget(name: "IssuanceTests", dependencies: [
            "ProcessSupport", "Issuance", "SSHCertificates", "CertificateAuthority", "Audit", "Bastion", "ConfigurationSupport", "MetricsExporter", "Policy", "Recording",
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CryptoExtras", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),
        // SigV4 against AWS's published vectors; the client end to end against moto's S3 server on loopback.
        .testTarget(name: "ObjectStorageTests", dependencies: [
            "ProcessSupport", "ServerFixtures", "ObjectStorage",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        // The shipper against a real PostgreSQL 15 and moto's S3 server (a stand-in), both on loopback.
        .testTarget(name: "RecordingShippingTests", dependencies: [
            "ProcessSupport", "ServerFixtures", "RecordingShipping", "Recording", "ObjectStorage", "StateStore", "SSHCertificates", "ConfigurationSupport",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "BastionTests", dependencies: [
            "ProcessSupport", "Bastion", "SSHCertificates", "CertificateAuthority", "ConfigurationSupport", "Policy", "Audit", "Recording", "Masking",
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "MetricsTestKit", package: "swift-metrics"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
