/// A certificate that passed every rule, with its permissions read once.
public struct ValidatedCertificate: Sendable {
    public let certificate: SSHCertificate
    public let permissions: CertificatePermissions
}

/// Runs a list of rules in order and returns the first refusal, in the spirit of
/// swift-certificates' Verifier: small policy types composed, each naming why it refused.
public struct CertificateValidator: Sendable {
    public let rules: [any CertificateRule]

    public init(rules: [any CertificateRule]) { self.rules = rules }

    /// The checks sshd applies to a user certificate (openssh-certificates.md), in its order.
    public static func openSSHUser(requiredPrincipal: String? = nil, signatureCache: VerifiedSignatureCache? = nil) -> CertificateValidator {
        CertificateValidator(rules: [
            CertificateTypeRule(.user), CASignatureRule(cache: signatureCache), RSAKeySizeRule(), RevocationRule(), TrustedCARule(),
            ValidityWindowRule(), PrincipalsRule(required: requiredPrincipal), CriticalOptionsRule(), OptionValuesRule(),
        ])
    }

    /// The checks ssh applies to a host certificate presented by `hostname`.
    public static func openSSHHost(hostname: String) -> CertificateValidator {
        CertificateValidator(rules: [
            CertificateTypeRule(.host), CASignatureRule(), RSAKeySizeRule(), RevocationRule(), TrustedCARule(),
            ValidityWindowRule(), PrincipalsRule(required: hostname), CriticalOptionsRule(),
        ])
    }

    public func validate(_ certificate: SSHCertificate, in context: ValidationContext) -> Result<ValidatedCertificate, CertificateRefusal> {
        for rule in rules {
            if let refusal = rule.check(certificate, in: context) { return .failure(refusal) }
        }
        do {
            return .success(ValidatedCertificate(certificate: certificate, permissions: try CertificatePermissions(certificate: certificate)))
        } catch {
            return .failure(.malformedOption(error))
        }
    }

    /// Validates a key blob as offered in userauth: plain keys are refused, malformed
    /// certificates are refused with the parser's reason.
    public func validate(offeredKeyBlob blob: [UInt8], in context: ValidationContext) -> Result<ValidatedCertificate, CertificateRefusal> {
        var reader = SSHWireReader(blob)
        let typeName = (try? reader.readText("key type")) ?? "unknown"
        guard SSHKeyAlgorithm(certificateTypeName: typeName) != nil else { return .failure(.notACertificate(keyType: typeName)) }
        do {
            return validate(try SSHCertificate(blob: blob), in: context)
        } catch {
            return .failure(.malformed(error))
        }
    }
}
