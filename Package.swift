// swift-tools-version:6.2
import PackageDescription

// One module per concern. Dependencies point one way: the `gatehouse` executable assembles
// the modules; no module knows the CLI. Modules still to come (the SSH front and proxy on
// libssh, policy, recording, issuance) are added with their code.
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
    ],
    targets: [
        // OpenSSH keys, certificates, signatures, validation rules and KRLs. No libssh.
        .target(name: "SSHCertificates", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CryptoExtras", package: "swift-crypto"),
        ]),
        // Tamper-evident, hash-chained audit log shared by every component.
        .target(name: "Audit", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The three certificate authorities, their keys, lifecycle and rotation.
        .target(name: "CertificateAuthority", dependencies: ["SSHCertificates", "Audit"]),
        // Command allowlists: the POSIX shell word splitter, patterns and decisions.
        .target(name: "Policy", dependencies: [.product(name: "Yams", package: "Yams")]),
        // The CLI and the server assembly.
        .executableTarget(name: "gatehouse", dependencies: [
            "SSHCertificates", "Audit", "CertificateAuthority", "Policy",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // A mutation fuzzer over the parsers (keys, certificates, private key files, KRLs) and the
        // policy splitter, pattern compiler and matcher.
        .executableTarget(name: "GatehouseFuzz", dependencies: ["SSHCertificates", "Policy"]),
        // Micro-benchmarks: certificate verification and signing per key type; policy decisions.
        .executableTarget(name: "GatehouseBench", dependencies: ["SSHCertificates", "Policy"]),

        .testTarget(name: "SSHCertificatesTests", dependencies: ["SSHCertificates"]),
        .testTarget(name: "AuditTests", dependencies: ["Audit"]),
        .testTarget(name: "PolicyTests", dependencies: ["Policy"], resources: [.copy("hostile-commands.txt")]),
        .testTarget(name: "CertificateAuthorityTests", dependencies: ["CertificateAuthority", "SSHCertificates", "Audit"]),
    ],
    swiftLanguageModes: [.v6]
)
