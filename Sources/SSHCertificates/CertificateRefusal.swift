import Foundation
import Refusals

/// Why a certificate was refused. Each case is one rule's precise reason; `code` is a stable
/// machine-readable name for audit events and metrics.
public enum CertificateRefusal: RefusalConvertible, Equatable, CustomStringConvertible {
    case malformed(CertificateParseError)
    case notACertificate(keyType: String)
    case wrongCertificateType(expected: CertificateType, found: CertificateType)
    case signatureAlgorithmRefused(String)
    case badSignature(SignatureError)
    case rsaKeyTooSmall(which: String, bits: Int, minimum: Int)
    case revoked(RevocationReason)
    case untrustedCA(fingerprint: String)
    case notYetValid(validAfter: UInt64, now: UInt64)
    case expired(validBefore: UInt64, now: UInt64)
    case noPrincipals
    case principalNotAllowed(required: String)
    case unknownCriticalOption(String)
    case unsupportedCriticalOption(String, reason: String)
    case sourceAddressMismatch(peer: String, allowed: String)
    case sourceAddressUnknownPeer
    case malformedOption(CertificateParseError)
    case lifetimeTooLong(seconds: UInt64, maximum: UInt64)

    public var refusal: Refusal { Refusal(code: code, rule: rule, reason: description) }

    /// The validator rule that refuses this way (`CertificateRules.swift`; parsing and the
    /// certificate-only check happen before the rules, in `CertificateValidator`).
    public var rule: String {
        switch self {
        case .malformed, .notACertificate: return "CertificateValidator"
        case .wrongCertificateType: return "CertificateTypeRule"
        case .signatureAlgorithmRefused, .badSignature: return "CASignatureRule"
        case .rsaKeyTooSmall: return "RSAKeySizeRule"
        case .revoked: return "RevocationRule"
        case .untrustedCA: return "TrustedCARule"
        case .notYetValid, .expired: return "ValidityWindowRule"
        case .noPrincipals, .principalNotAllowed: return "PrincipalsRule"
        case .unknownCriticalOption, .unsupportedCriticalOption: return "CriticalOptionsRule"
        case .sourceAddressMismatch, .sourceAddressUnknownPeer, .malformedOption: return "OptionValuesRule"
        case .lifetimeTooLong: return "MaximumLifetimeRule"
        }
    }

    public var code: String {
        switch self {
        case .malformed: return "malformed"
        case .notACertificate: return "not-a-certificate"
        case .wrongCertificateType: return "wrong-certificate-type"
        case .signatureAlgorithmRefused: return "signature-algorithm-refused"
        case .badSignature: return "bad-signature"
        case .rsaKeyTooSmall: return "rsa-key-too-small"
        case .revoked: return "revoked"
        case .untrustedCA: return "untrusted-ca"
        case .notYetValid: return "not-yet-valid"
        case .expired: return "expired"
        case .noPrincipals: return "no-principals"
        case .principalNotAllowed: return "principal-not-allowed"
        case .unknownCriticalOption: return "unknown-critical-option"
        case .unsupportedCriticalOption: return "unsupported-critical-option"
        case .sourceAddressMismatch: return "source-address-mismatch"
        case .sourceAddressUnknownPeer: return "source-address-unknown-peer"
        case .malformedOption: return "malformed-option"
        case .lifetimeTooLong: return "lifetime-too-long"
        }
    }

    public var description: String {
        switch self {
        case .malformed(let e): return e.description
        case .notACertificate(let t): return "a plain \(t) key was offered; only certificates are accepted"
        case .wrongCertificateType(let expected, let found): return "a \(found.name) certificate was offered where a \(expected.name) certificate is required"
        case .signatureAlgorithmRefused(let a): return "CA signature algorithm \(a) is not accepted"
        case .badSignature(let e): return "CA signature invalid: \(e)"
        case .rsaKeyTooSmall(let which, let bits, let min): return "\(which) RSA key has \(bits) bits; at least \(min) are required"
        case .revoked(let r): return "revoked: \(r)"
        case .untrustedCA(let f): return "signed by CA \(f), which is not trusted"
        case .notYetValid(let after, let now): return "not yet valid (valid from \(Timestamps.format(after)), now \(Timestamps.format(now)))"
        case .expired(let before, let now): return "expired at \(Timestamps.format(before)) (now \(Timestamps.format(now)))"
        case .noPrincipals: return "the certificate names no principals"
        case .principalNotAllowed(let p): return "the certificate does not list the principal \"\(p)\""
        case .unknownCriticalOption(let n): return "unknown critical option \"\(n)\""
        case .unsupportedCriticalOption(let n, let why): return "critical option \"\(n)\" cannot be honoured: \(why)"
        case .sourceAddressMismatch(let peer, let allowed): return "connection from \(peer) is outside source-address \(allowed)"
        case .sourceAddressUnknownPeer: return "the certificate restricts source-address but the peer address is unknown"
        case .malformedOption(let e): return e.description
        case .lifetimeTooLong(let s, let max): return "certificate lifetime of \(s) s exceeds the maximum of \(max) s"
        }
    }
}

/// Formats certificate times as OpenSSH does in `ssh-keygen -L`, with the two special values.
public enum Timestamps {
    public static func format(_ t: UInt64) -> String {
        if t == 0 { return "always" }
        if t == .max { return "forever" }
        guard t < UInt64(Int64.max) else { return String(t) }
        var time = time_t(Int64(t))
        var parts = tm()
        gmtime_r(&time, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
