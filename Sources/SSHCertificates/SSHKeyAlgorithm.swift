/// The key types Gatehouse understands, with their plain and certificate wire names.
public enum SSHKeyAlgorithm: String, CaseIterable, Sendable, Hashable {
    case ed25519 = "ssh-ed25519"
    case ecdsaP256 = "ecdsa-sha2-nistp256"
    case ecdsaP384 = "ecdsa-sha2-nistp384"
    case ecdsaP521 = "ecdsa-sha2-nistp521"
    case rsa = "ssh-rsa"

    public var keyTypeName: String { rawValue }

    public var certificateTypeName: String { rawValue + "-cert-v01@openssh.com" }

    /// The curve identifier carried inside ECDSA key blobs.
    var curveName: String? {
        switch self {
        case .ecdsaP256: return "nistp256"
        case .ecdsaP384: return "nistp384"
        case .ecdsaP521: return "nistp521"
        case .ed25519, .rsa: return nil
        }
    }

    public init?(keyTypeName: String) { self.init(rawValue: keyTypeName) }

    public init?(certificateTypeName: String) {
        guard let found = SSHKeyAlgorithm.allCases.first(where: { $0.certificateTypeName == certificateTypeName }) else { return nil }
        self = found
    }

    /// The name ssh-keygen's `-t` takes, used in messages and the CLI.
    public var shortName: String {
        switch self {
        case .ed25519: return "ed25519"
        case .ecdsaP256: return "ecdsa-p256"
        case .ecdsaP384: return "ecdsa-p384"
        case .ecdsaP521: return "ecdsa-p521"
        case .rsa: return "rsa"
        }
    }

    public init?(shortName: String) {
        guard let found = SSHKeyAlgorithm.allCases.first(where: { $0.shortName == shortName }) else { return nil }
        self = found
    }
}

/// Signature algorithm names as they appear in SSH signature blobs.
public enum SSHSignatureAlgorithm: String, Sendable, CaseIterable {
    case ed25519 = "ssh-ed25519"
    case ecdsaP256 = "ecdsa-sha2-nistp256"
    case ecdsaP384 = "ecdsa-sha2-nistp384"
    case ecdsaP521 = "ecdsa-sha2-nistp521"
    case rsaSHA512 = "rsa-sha2-512"
    case rsaSHA256 = "rsa-sha2-256"
    /// RSA with SHA-1: refused unless a caller explicitly allows it.
    case rsaSHA1 = "ssh-rsa"

    /// Whether a signature of this algorithm can come from a key of `algorithm`.
    public func fits(_ algorithm: SSHKeyAlgorithm) -> Bool {
        switch (self, algorithm) {
        case (.ed25519, .ed25519), (.ecdsaP256, .ecdsaP256), (.ecdsaP384, .ecdsaP384), (.ecdsaP521, .ecdsaP521): return true
        case (.rsaSHA512, .rsa), (.rsaSHA256, .rsa), (.rsaSHA1, .rsa): return true
        default: return false
        }
    }

    /// The algorithm Gatehouse signs with for a key type.
    public static func preferred(for algorithm: SSHKeyAlgorithm) -> SSHSignatureAlgorithm {
        switch algorithm {
        case .ed25519: return .ed25519
        case .ecdsaP256: return .ecdsaP256
        case .ecdsaP384: return .ecdsaP384
        case .ecdsaP521: return .ecdsaP521
        case .rsa: return .rsaSHA512
        }
    }
}
