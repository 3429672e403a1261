import Crypto
import Foundation

/// Why a KRL could not be read.
public enum KRLError: Error, Equatable, Sendable, CustomStringConvertible {
    case wire(SSHWireError)
    case badMagic
    case unsupportedFormat(UInt32)
    case unknownSection(UInt8)
    case unknownCertificateSection(UInt8)
    case unsupportedCriticalExtension(String)
    case signedKRL
    case badFingerprintLength(Int)
    case badSerialRange(UInt64, UInt64)
    case key(SSHKeyError)

    public var description: String {
        switch self {
        case .wire(let e): return "malformed KRL: \(e)"
        case .badMagic: return "not a KRL (bad magic)"
        case .unsupportedFormat(let v): return "unsupported KRL format version \(v)"
        case .unknownSection(let t): return "unknown KRL section type \(t)"
        case .unknownCertificateSection(let t): return "unknown KRL certificate subsection type 0x\(String(t, radix: 16))"
        case .unsupportedCriticalExtension(let n): return "unsupported critical KRL extension \"\(n)\""
        case .signedKRL: return "signed KRLs are not supported"
        case .badFingerprintLength(let n): return "fingerprint of \(n) bytes has the wrong length"
        case .badSerialRange(let a, let b): return "serial range \(a)-\(b) is empty or inverted"
        case .key(let e): return "KRL key: \(e)"
        }
    }
}

/// Why a key or certificate is revoked. Each case names the entry that matched.
public enum RevocationReason: Sendable, Equatable, CustomStringConvertible {
    case explicitKey(fingerprint: String)
    case sha1Fingerprint(fingerprint: String)
    case sha256Fingerprint(fingerprint: String)
    case serial(UInt64, anyCA: Bool)
    case keyID(String, anyCA: Bool)
    case certificateAuthority(fingerprint: String)

    public var description: String {
        switch self {
        case .explicitKey(let f): return "key \(f) is revoked"
        case .sha1Fingerprint(let f): return "key \(f) is revoked by SHA-1 fingerprint"
        case .sha256Fingerprint(let f): return "key \(f) is revoked by SHA-256 fingerprint"
        case .serial(let s, let any): return "certificate serial \(s) is revoked" + (any ? " for every CA" : "")
        case .keyID(let id, let any): return "certificate key id \"\(id)\" is revoked" + (any ? " for every CA" : "")
        case .certificateAuthority(let f): return "the signing CA \(f) is revoked"
        }
    }
}

/// An OpenSSH Key Revocation List (PROTOCOL.krl). The same value answers Gatehouse's own
/// revocation check and serializes to the file targets load with `RevokedKeys`.
public struct KeyRevocationList: Sendable, Equatable {
    /// Revocations of certificates by serial or key id, for one CA (`caKey` nil: any CA).
    public struct CertificateSection: Sendable, Equatable {
        public var caKey: SSHPublicKey?
        public var serials: SerialSet
        public var keyIDs: Set<String>

        public init(caKey: SSHPublicKey?, serials: SerialSet = SerialSet(), keyIDs: Set<String> = []) {
            self.caKey = caKey
            self.serials = serials
            self.keyIDs = keyIDs
        }
    }

    public var version: UInt64
    public var generatedDate: UInt64
    public var comment: String
    public var certificateSections: [CertificateSection]
    /// Plain public key blobs.
    public var explicitKeys: Set<[UInt8]>
    public var sha1Fingerprints: Set<[UInt8]>
    public var sha256Fingerprints: Set<[UInt8]>

    static let magic: UInt64 = 0x5353_484b_524c_0a00
    static let formatVersion: UInt32 = 1

    enum Section: UInt8 {
        case certificates = 1, explicitKey = 2, sha1 = 3, signature = 4, sha256 = 5, extensionSection = 255
    }

    enum CertificateSubsection: UInt8 {
        case serialList = 0x20, serialRange = 0x21, serialBitmap = 0x22, keyID = 0x23, extensionSection = 0x39
    }

    /// Two lists are equal when they revoke the same things, whatever order their sections
    /// were written in.
    public static func == (a: KeyRevocationList, b: KeyRevocationList) -> Bool {
        a.version == b.version && a.generatedDate == b.generatedDate && a.comment == b.comment
            && a.sortedCertificateSections == b.sortedCertificateSections && a.explicitKeys == b.explicitKeys
            && a.sha1Fingerprints == b.sha1Fingerprints && a.sha256Fingerprints == b.sha256Fingerprints
    }

    /// Sections ordered by CA key blob, the any-CA section first; the order they are written in.
    var sortedCertificateSections: [CertificateSection] {
        certificateSections.sorted { ($0.caKey?.blob ?? []).lexicographicallyPrecedes($1.caKey?.blob ?? []) }
    }

    public init(version: UInt64 = 0, generatedDate: UInt64 = 0, comment: String = "") {
        self.version = version
        self.generatedDate = generatedDate
        self.comment = comment
        certificateSections = []
        explicitKeys = []
        sha1Fingerprints = []
        sha256Fingerprints = []
    }

    // MARK: Building

    public mutating func revoke(key: SSHPublicKey) { explicitKeys.insert(key.blob) }
    public mutating func revoke(sha256FingerprintOf key: SSHPublicKey) { sha256Fingerprints.insert(Array(SHA256.hash(data: key.blob))) }

    public mutating func revoke(serials range: ClosedRange<UInt64>, ca: SSHPublicKey?) {
        withSection(for: ca) { $0.serials.insert(range) }
    }

    public mutating func revoke(keyID: String, ca: SSHPublicKey?) {
        withSection(for: ca) { $0.keyIDs.insert(keyID) }
    }

    private mutating func withSection(for ca: SSHPublicKey?, _ body: (inout CertificateSection) -> Void) {
        if let i = certificateSections.firstIndex(where: { $0.caKey == ca }) {
            body(&certificateSections[i])
        } else {
            var s = CertificateSection(caKey: ca)
            body(&s)
            certificateSections.append(s)
        }
    }

    // MARK: Checking

    /// Whether a plain key is revoked (explicitly or by fingerprint).
    public func revocation(of key: SSHPublicKey) -> RevocationReason? {
        if explicitKeys.contains(key.blob) { return .explicitKey(fingerprint: key.fingerprint) }
        if !sha256Fingerprints.isEmpty, sha256Fingerprints.contains(Array(SHA256.hash(data: key.blob))) {
            return .sha256Fingerprint(fingerprint: key.fingerprint)
        }
        if !sha1Fingerprints.isEmpty, sha1Fingerprints.contains(Array(Insecure.SHA1.hash(data: key.blob))) {
            return .sha1Fingerprint(fingerprint: key.fingerprint)
        }
        return nil
    }

    /// Whether a certificate is revoked: its key, its CA key, or its serial / key id under its
    /// CA's section or the any-CA section. Serial 0 means "unnumbered" and never matches.
    public func revocation(of certificate: SSHCertificate) -> RevocationReason? {
        if let reason = revocation(of: certificate.key) { return reason }
        for section in certificateSections where section.caKey == nil || section.caKey == certificate.signatureKey {
            let anyCA = section.caKey == nil
            if certificate.serial != 0, section.serials.contains(certificate.serial) { return .serial(certificate.serial, anyCA: anyCA) }
            if section.keyIDs.contains(certificate.keyID) { return .keyID(certificate.keyID, anyCA: anyCA) }
        }
        if revocation(of: certificate.signatureKey) != nil { return .certificateAuthority(fingerprint: certificate.signatureKey.fingerprint) }
        return nil
    }
}

/// A set of serial numbers kept as sorted, disjoint, non-adjacent ranges.
public struct SerialSet: Sendable, Equatable {
    public private(set) var ranges: [ClosedRange<UInt64>] = []

    public init() {}

    public var isEmpty: Bool { ranges.isEmpty }

    public func contains(_ serial: UInt64) -> Bool {
        var lo = 0, hi = ranges.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            if serial < ranges[mid].lowerBound { hi = mid - 1 } else if serial > ranges[mid].upperBound { lo = mid + 1 } else { return true }
        }
        return false
    }

    public mutating func insert(_ range: ClosedRange<UInt64>) {
        var lower = range.lowerBound, upper = range.upperBound
        var kept: [ClosedRange<UInt64>] = []
        for r in ranges {
            // `r.upperBound < lower` rules out overflow in `+ 1`; likewise `upper < r.lowerBound`.
            let wellBefore = r.upperBound < lower && r.upperBound + 1 < lower
            let wellAfter = upper < r.lowerBound && upper + 1 < r.lowerBound
            if wellBefore || wellAfter {
                kept.append(r)
            } else {
                lower = min(lower, r.lowerBound)
                upper = max(upper, r.upperBound)
            }
        }
        kept.append(lower...upper)
        ranges = kept.sorted { $0.lowerBound < $1.lowerBound }
    }
}
