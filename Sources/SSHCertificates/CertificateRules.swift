import Foundation

/// Everything a rule may consult. Built per authentication from the live CA store, so trust
/// follows rotation without a restart.
public struct ValidationContext: Sendable {
    /// Seconds since the epoch.
    public var now: UInt64
    /// The connecting peer's address (IPv4 or IPv6 text), for `source-address`.
    public var peerAddress: String?
    /// CA keys trusted to sign certificates of the expected type.
    public var trustedCAs: [SSHPublicKey]
    public var revocations: KeyRevocationList
    public var minimumRSABits: Int
    public var allowSHA1Signatures: Bool

    public init(now: UInt64, peerAddress: String? = nil, trustedCAs: [SSHPublicKey], revocations: KeyRevocationList = KeyRevocationList(),
                minimumRSABits: Int = 2048, allowSHA1Signatures: Bool = false) {
        self.now = now
        self.peerAddress = peerAddress
        self.trustedCAs = trustedCAs
        self.revocations = revocations
        self.minimumRSABits = minimumRSABits
        self.allowSHA1Signatures = allowSHA1Signatures
    }
}

/// One check of `openssh-certificates.md`. A rule either passes or names why it refused.
public protocol CertificateRule: Sendable {
    func check(_ certificate: SSHCertificate, in context: ValidationContext) -> CertificateRefusal?
}

/// The certificate must be of the expected type (a host certificate is no user login).
public struct CertificateTypeRule: CertificateRule {
    public let expected: CertificateType
    public init(_ expected: CertificateType) { self.expected = expected }
    public func check(_ c: SSHCertificate, in _: ValidationContext) -> CertificateRefusal? {
        c.type == expected ? nil : .wrongCertificateType(expected: expected, found: c.type)
    }
}

/// The CA signature verifies with an acceptable algorithm that fits the CA key type. With a
/// cache, a signature already verified is not verified again (see VerifiedSignatureCache).
public struct CASignatureRule: CertificateRule {
    public let cache: VerifiedSignatureCache?
    public init(cache: VerifiedSignatureCache? = nil) { self.cache = cache }
    public func check(_ c: SSHCertificate, in context: ValidationContext) -> CertificateRefusal? {
        if c.signature.algorithm == .rsaSHA1 && !context.allowSHA1Signatures { return .signatureAlgorithmRefused(c.signature.algorithm.rawValue) }
        // The algorithm check is cheap and depends on context, so it is never cached.
        guard c.signature.algorithm.fits(c.signatureKey.algorithm) else {
            return .badSignature(.algorithmMismatch(signature: c.signature.algorithm.rawValue, key: c.signatureKey.algorithm.keyTypeName))
        }
        let key = cache.map { _ in VerifiedSignatureCache.key(for: c) }
        if let cache, let key, cache.contains(key) { return nil }
        do { try c.verifySignature(allowSHA1: context.allowSHA1Signatures) } catch { return .badSignature(error) }
        if let cache, let key { cache.insert(key) }
        return nil
    }
}

/// RSA keys (certified key and CA key) meet the configured minimum size.
public struct RSAKeySizeRule: CertificateRule {
    public init() {}
    public func check(_ c: SSHCertificate, in context: ValidationContext) -> CertificateRefusal? {
        for (which, key) in [("certified", c.key), ("CA", c.signatureKey)] where key.algorithm == .rsa && key.bits < context.minimumRSABits {
            return .rsaKeyTooSmall(which: which, bits: key.bits, minimum: context.minimumRSABits)
        }
        return nil
    }
}

/// Neither the key, its serial or key id under its CA, nor the CA itself is revoked.
public struct RevocationRule: CertificateRule {
    public init() {}
    public func check(_ c: SSHCertificate, in context: ValidationContext) -> CertificateRefusal? {
        context.revocations.revocation(of: c).map(CertificateRefusal.revoked)
    }
}

/// The signing CA is one of the keys trusted for this certificate type.
public struct TrustedCARule: CertificateRule {
    public init() {}
    public func check(_ c: SSHCertificate, in context: ValidationContext) -> CertificateRefusal? {
        context.trustedCAs.contains(c.signatureKey) ? nil : .untrustedCA(fingerprint: c.signatureKey.fingerprint)
    }
}

/// `valid_after <= now < valid_before`, with no skew (as sshd).
public struct ValidityWindowRule: CertificateRule {
    public init() {}
    public func check(_ c: SSHCertificate, in context: ValidationContext) -> CertificateRefusal? {
        if context.now < c.validAfter { return .notYetValid(validAfter: c.validAfter, now: context.now) }
        if context.now >= c.validBefore { return .expired(validBefore: c.validBefore, now: context.now) }
        return nil
    }
}

/// The certificate names at least one principal (OpenSSH 10.3+ refuses an empty list, which
/// older versions read as "any user"); optionally one of them must be `required`.
public struct PrincipalsRule: CertificateRule {
    public let required: String?
    public init(required: String? = nil) { self.required = required }
    public func check(_ c: SSHCertificate, in _: ValidationContext) -> CertificateRefusal? {
        if c.principals.isEmpty { return .noPrincipals }
        if let required, !c.principals.contains(required) { return .principalNotAllowed(required: required) }
        return nil
    }
}

/// Only critical options OpenSSH defines are accepted, and only those Gatehouse can honour:
/// `verify-required` demands FIDO user verification, which no key type here provides.
public struct CriticalOptionsRule: CertificateRule {
    public init() {}
    public func check(_ c: SSHCertificate, in _: ValidationContext) -> CertificateRefusal? {
        for option in c.criticalOptions {
            guard CriticalOption.known.contains(option.name) else { return .unknownCriticalOption(option.name) }
            if option.name == CriticalOption.verifyRequired {
                return .unsupportedCriticalOption(option.name, reason: "FIDO user verification is not supported by Gatehouse")
            }
        }
        return nil
    }
}

/// Typed values of known options and Gatehouse extensions parse; `source-address` holds the peer.
public struct OptionValuesRule: CertificateRule {
    public init() {}
    public func check(_ c: SSHCertificate, in context: ValidationContext) -> CertificateRefusal? {
        let permissions: CertificatePermissions
        do { permissions = try CertificatePermissions(certificate: c) } catch { return .malformedOption(error) }
        if let blocks = permissions.sourceAddresses {
            guard let peer = context.peerAddress else { return .sourceAddressUnknownPeer }
            if !blocks.contains(where: { $0.contains(peer) }) {
                return .sourceAddressMismatch(peer: peer, allowed: blocks.map(\.description).joined(separator: ","))
            }
        }
        return nil
    }
}

/// Refuses certificates valid for longer than an issuer policy allows (e.g. for imported CAs).
public struct MaximumLifetimeRule: CertificateRule {
    public let maximum: UInt64
    public init(maximum: UInt64) { self.maximum = maximum }
    public func check(_ c: SSHCertificate, in _: ValidationContext) -> CertificateRefusal? {
        let lifetime = c.validBefore &- c.validAfter
        return c.validBefore < c.validAfter || lifetime > maximum ? .lifetimeTooLong(seconds: lifetime, maximum: maximum) : nil
    }
}
