import Foundation
import XCTest
@testable import SSHCertificates

/// One test per validation rule, each asserting its specific reason.
final class ValidationRuleTests: XCTestCase {
    let ca = try! SSHPrivateKey.generate(.ed25519)
    let otherCA = try! SSHPrivateKey.generate(.ed25519)
    let subject = try! SSHPrivateKey.generate(.ed25519)
    let now: UInt64 = 1_800_000_000

    func template(_ edit: (inout CertificateTemplate) -> Void = { _ in }) -> CertificateTemplate {
        var t = CertificateTemplate(key: subject.publicKey, type: .user, serial: 10, keyID: "agent-1", principals: ["agent"],
                                    validAfter: now - 60, validBefore: now + 600,
                                    extensions: [.flag(CertificateExtension.permitPTY), CertificateOption(name: CertificateExtension.scopes, value: "ops-read")])
        edit(&t)
        return t
    }

    func context(_ edit: (inout ValidationContext) -> Void = { _ in }) -> ValidationContext {
        var c = ValidationContext(now: now, peerAddress: "127.0.0.1", trustedCAs: [ca.publicKey])
        edit(&c)
        return c
    }

    func refusal(_ cert: SSHCertificate, _ ctx: ValidationContext? = nil, file: StaticString = #filePath, line: UInt = #line) -> CertificateRefusal? {
        switch CertificateValidator.openSSHUser().validate(cert, in: ctx ?? context()) {
        case .success: return nil
        case .failure(let r): return r
        }
    }

    func testValidCertificateIsAcceptedWithPermissions() throws {
        let result = CertificateValidator.openSSHUser().validate(try template().sign(with: ca), in: context())
        let validated = try result.get()
        XCTAssertTrue(validated.permissions.pty)
        XCTAssertEqual(validated.permissions.scopes, ["ops-read"])
        XCTAssertFalse(validated.permissions.agentForwarding)
    }

    func testExpired() throws {
        XCTAssertEqual(refusal(try template { $0.validBefore = self.now }.sign(with: ca))?.code, "expired")
    }

    func testNotYetValid() throws {
        XCTAssertEqual(refusal(try template { $0.validAfter = self.now + 1 }.sign(with: ca))?.code, "not-yet-valid")
    }

    func testForeverAndAlwaysAreHonoured() throws {
        XCTAssertNil(refusal(try template { $0.validAfter = 0; $0.validBefore = .max }.sign(with: ca)))
    }

    func testHostCertificateOfferedAsUserCertificate() throws {
        let r = refusal(try template { $0.type = .host }.sign(with: ca))
        XCTAssertEqual(r, .wrongCertificateType(expected: .user, found: .host))
    }

    func testNoPrincipals() throws {
        XCTAssertEqual(refusal(try template { $0.principals = [] }.sign(with: ca)), .noPrincipals)
    }

    func testRequiredPrincipal() throws {
        let cert = try template().sign(with: ca)
        guard case .failure(let r) = CertificateValidator.openSSHUser(requiredPrincipal: "root").validate(cert, in: context()) else { return XCTFail() }
        XCTAssertEqual(r, .principalNotAllowed(required: "root"))
    }

    func testUntrustedCA() throws {
        XCTAssertEqual(refusal(try template().sign(with: otherCA))?.code, "untrusted-ca")
    }

    func testRevokedSerial() throws {
        var krl = KeyRevocationList()
        krl.revoke(serials: 10...10, ca: ca.publicKey)
        XCTAssertEqual(refusal(try template().sign(with: ca), context { $0.revocations = krl }), .revoked(.serial(10, anyCA: false)))
    }

    func testRevokedSerialUnderAnotherCADoesNotMatch() throws {
        var krl = KeyRevocationList()
        krl.revoke(serials: 10...10, ca: otherCA.publicKey)
        XCTAssertNil(refusal(try template().sign(with: ca), context { $0.revocations = krl }))
    }

    func testSerialZeroIsNeverRevokedBySerial() throws {
        var krl = KeyRevocationList()
        krl.revoke(serials: 0...100, ca: nil)
        XCTAssertNil(refusal(try template { $0.serial = 0 }.sign(with: ca), context { $0.revocations = krl }))
        XCTAssertEqual(refusal(try template().sign(with: ca), context { $0.revocations = krl }), .revoked(.serial(10, anyCA: true)))
    }

    func testRevokedKeyID() throws {
        var krl = KeyRevocationList()
        krl.revoke(keyID: "agent-1", ca: nil)
        XCTAssertEqual(refusal(try template().sign(with: ca), context { $0.revocations = krl }), .revoked(.keyID("agent-1", anyCA: true)))
    }

    func testRevokedKey() throws {
        var krl = KeyRevocationList()
        krl.revoke(key: subject.publicKey)
        XCTAssertEqual(refusal(try template().sign(with: ca), context { $0.revocations = krl })?.code, "revoked")
        var byHash = KeyRevocationList()
        byHash.revoke(sha256FingerprintOf: subject.publicKey)
        XCTAssertEqual(refusal(try template().sign(with: ca), context { $0.revocations = byHash }), .revoked(.sha256Fingerprint(fingerprint: subject.publicKey.fingerprint)))
    }

    func testRevokedCA() throws {
        var krl = KeyRevocationList()
        krl.revoke(key: ca.publicKey)
        XCTAssertEqual(refusal(try template().sign(with: ca), context { $0.revocations = krl }), .revoked(.certificateAuthority(fingerprint: ca.publicKey.fingerprint)))
    }

    func testUnknownCriticalOption() throws {
        let cert = try template { $0.criticalOptions = [CertificateOption(name: "no-such-option@example.com", value: "x")] }.sign(with: ca)
        XCTAssertEqual(refusal(cert), .unknownCriticalOption("no-such-option@example.com"))
    }

    func testUnknownExtensionIsIgnored() throws {
        XCTAssertNil(refusal(try template { $0.extensions.append(.flag("whatever@example.com")) }.sign(with: ca)))
    }

    func testVerifyRequiredCannotBeHonoured() throws {
        XCTAssertEqual(refusal(try template { $0.criticalOptions = [.flag(CriticalOption.verifyRequired)] }.sign(with: ca))?.code, "unsupported-critical-option")
    }

    func testDuplicateOptionIsAParseError() throws {
        // Build a certificate with a duplicate critical option by hand: the template refuses it.
        XCTAssertThrowsError(try template { $0.criticalOptions = [CertificateOption(name: "force-command", value: "a"), CertificateOption(name: "force-command", value: "b")] }.sign(with: ca))
        let cert = try template { $0.criticalOptions = [CertificateOption(name: "force-command", value: "a")] }.sign(with: ca)
        let tampered = try CertificateTamper.duplicateFirstCriticalOption(cert)
        XCTAssertThrowsError(try SSHCertificate(blob: tampered)) { error in
            XCTAssertEqual(error as? CertificateParseError, .duplicateOption(kind: "critical option", name: "force-command"))
        }
    }

    func testSourceAddressIPv4() throws {
        let cert = try template { $0.criticalOptions = [CertificateOption(name: "source-address", value: "10.1.0.0/16,127.0.0.1")] }.sign(with: ca)
        XCTAssertNil(refusal(cert, context { $0.peerAddress = "10.1.200.3" }))
        XCTAssertNil(refusal(cert, context { $0.peerAddress = "::ffff:127.0.0.1" }))
        XCTAssertEqual(refusal(cert, context { $0.peerAddress = "10.2.0.1" })?.code, "source-address-mismatch")
        XCTAssertEqual(refusal(cert, context { $0.peerAddress = nil }), .sourceAddressUnknownPeer)
    }

    func testSourceAddressIPv6() throws {
        let cert = try template { $0.criticalOptions = [CertificateOption(name: "source-address", value: "2001:db8::/32,::1")] }.sign(with: ca)
        XCTAssertNil(refusal(cert, context { $0.peerAddress = "::1" }))
        XCTAssertNil(refusal(cert, context { $0.peerAddress = "2001:db8:ffff::9" }))
        XCTAssertEqual(refusal(cert, context { $0.peerAddress = "2001:db9::1" })?.code, "source-address-mismatch")
        XCTAssertEqual(refusal(cert, context { $0.peerAddress = "127.0.0.1" })?.code, "source-address-mismatch")
    }

    func testMalformedSourceAddressIsRefused() throws {
        for bad in ["10.0.0.1/33", "10.0.0.1/8", "banana", "", "::1/129"] {
            let cert = try template { $0.criticalOptions = [CertificateOption(name: "source-address", value: bad)] }.sign(with: ca)
            XCTAssertEqual(refusal(cert)?.code, "malformed-option", bad)
        }
    }

    func testRSAKeyTooSmall() throws {
        // A 1024-bit RSA key made by the real ssh-keygen (swift-crypto will not make one).
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try runTool("ssh-keygen", ["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", dir.appendingPathComponent("small").path])
        let small = try SSHPublicKey(openSSHLine: try readText(dir.appendingPathComponent("small.pub")))
        XCTAssertEqual(small.bits, 1024)
        let cert = try CertificateTemplate(key: small, type: .user, serial: 1, keyID: "k", principals: ["p"], validAfter: now - 1, validBefore: now + 60).sign(with: ca)
        XCTAssertEqual(refusal(cert), .rsaKeyTooSmall(which: "certified", bits: 1024, minimum: 2048))
    }

    func testSHA1SignatureRefusedUnlessAllowed() throws {
        let dir = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let caPath = dir.appendingPathComponent("ca").path, userPath = dir.appendingPathComponent("u").path
        try runTool("ssh-keygen", ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", caPath])
        try runTool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", userPath])
        try runTool("ssh-keygen", ["-q", "-s", caPath, "-t", "ssh-rsa", "-I", "old", "-n", "p", userPath + ".pub"])
        let cert = try SSHCertificate(openSSHLine: try readText(URL(fileURLWithPath: userPath + "-cert.pub")))
        XCTAssertEqual(cert.signature.algorithm, .rsaSHA1)
        let caKey = try SSHPublicKey(openSSHLine: try readText(URL(fileURLWithPath: caPath + ".pub")))
        let ctx = ValidationContext(now: nowSeconds, trustedCAs: [caKey])
        guard case .failure(let r) = CertificateValidator.openSSHUser().validate(cert, in: ctx) else { return XCTFail() }
        XCTAssertEqual(r, .signatureAlgorithmRefused("ssh-rsa"))
        var allowed = ctx
        allowed.allowSHA1Signatures = true
        XCTAssertNoThrow(try CertificateValidator.openSSHUser().validate(cert, in: allowed).get())
    }

    func testBadSignature() throws {
        var blob = try template().sign(with: ca).blob
        blob[blob.count - 5] ^= 0x01
        let cert = try SSHCertificate(blob: blob)
        XCTAssertEqual(refusal(cert), .badSignature(.badSignature))
    }

    func testSignedFieldTamperingBreaksSignature() throws {
        let cert = try template().sign(with: ca)
        var blob = cert.blob
        // Flip a byte inside the key id ("agent-1").
        let idRange = try XCTUnwrap(blob.firstRange(of: Array("agent-1".utf8)))
        blob[idRange.lowerBound] = UInt8(ascii: "b")
        XCTAssertEqual(refusal(try SSHCertificate(blob: blob))?.code, "bad-signature")
    }

    func testTrailingBytesAreRefused() throws {
        let blob = try template().sign(with: ca).blob + [0]
        XCTAssertThrowsError(try SSHCertificate(blob: blob)) { error in
            XCTAssertEqual(error as? CertificateParseError, .wire(.trailingBytes(field: "certificate", count: 1)))
        }
    }

    func testPlainKeyOfferedIsRefused() throws {
        guard case .failure(let r) = CertificateValidator.openSSHUser().validate(offeredKeyBlob: subject.publicKey.blob, in: context()) else { return XCTFail() }
        XCTAssertEqual(r, .notACertificate(keyType: "ssh-ed25519"))
    }

    func testCertificateAsSigningKeyIsRefused() throws {
        let cert = try template().sign(with: ca)
        let tampered = try CertificateTamper.replaceSignatureKey(cert, with: cert.blob)
        XCTAssertThrowsError(try SSHCertificate(blob: tampered)) { error in
            XCTAssertEqual(error as? CertificateParseError, .certificateAsSigningKey)
        }
    }

    func testInvalidCertificateTypeIsAParseError() throws {
        let cert = try template().sign(with: ca)
        let tampered = try CertificateTamper.setType(cert, 3)
        XCTAssertThrowsError(try SSHCertificate(blob: tampered)) { error in
            XCTAssertEqual(error as? CertificateParseError, .invalidType(3))
        }
    }

    func testNULInKeyIDIsAParseError() throws {
        let cert = try template { $0.keyID = "abcdefg" }.sign(with: ca)
        var blob = cert.blob
        let r = try XCTUnwrap(blob.firstRange(of: Array("abcdefg".utf8)))
        blob[r.lowerBound + 3] = 0
        XCTAssertThrowsError(try SSHCertificate(blob: blob)) { error in
            XCTAssertEqual(error as? CertificateParseError, .wire(.embeddedNUL(field: "key id")))
        }
    }

    func testMalformedScopesExtensionIsRefused() throws {
        let cert = try template { $0.extensions = [CertificateOption(name: CertificateExtension.scopes, value: "ops;rm -rf")] }.sign(with: ca)
        XCTAssertEqual(refusal(cert)?.code, "malformed-option")
    }

    /// A narrowing the bastion cannot read makes the certificate unusable, never unrestricted;
    /// so does any extension in Gatehouse's namespace this version does not know.
    func testMalformedOrUnknownGatehouseExtensionsAreRefused() throws {
        let bad: [(String, String?)] = [
            (CertificateExtension.commands, "uptime"), (CertificateExtension.commands, "[]"), (CertificateExtension.commands, "[1]"),
            (CertificateExtension.commands, "[\"uptime\"] trailing"), (CertificateExtension.commands, nil),
            (CertificateExtension.targets, ""), (CertificateExtension.targets, "web-01,,db-01"), (CertificateExtension.targets, nil),
            (CertificateExtension.maxSessions, "0"), (CertificateExtension.maxSessions, "-1"), (CertificateExtension.maxSessions, "one"),
            (CertificateExtension.maxSessions, "1e3"), (CertificateExtension.maxSessions, nil),
            ("max-commands@gatehouse", "1"), ("wider@gatehouse", nil),
        ]
        for (name, value) in bad {
            let option = value.map { CertificateOption(name: name, value: $0) } ?? .flag(name)
            let cert = try template { $0.extensions = [option] }.sign(with: ca)
            XCTAssertEqual(refusal(cert)?.code, "malformed-option", "\(name)=\(value ?? "(flag)")")
        }
        let good = try template { $0.extensions = [CertificateOption(name: CertificateExtension.commands, value: "[\"uptime\",\"echo 'a b'\"]"),
                                                   CertificateOption(name: CertificateExtension.targets, value: "web-01,db-*"),
                                                   CertificateOption(name: CertificateExtension.maxSessions, value: "3")] }.sign(with: ca)
        XCTAssertNil(refusal(good))
        let permissions = try CertificatePermissions(certificate: good)
        XCTAssertEqual(permissions.taskCommands, ["uptime", "echo 'a b'"])
        XCTAssertEqual(permissions.taskTargets, ["web-01", "db-*"])
        XCTAssertEqual(permissions.maxSessions, 3)
    }

    func testEveryTruncationIsAPreciseErrorNotACrash() throws {
        let blob = try template().sign(with: ca).blob
        for length in 0..<blob.count {
            XCTAssertThrowsError(try SSHCertificate(blob: Array(blob[0..<length])))
        }
    }
}

/// Re-encodes a certificate with one field changed, for parser tests (the signature is left
/// stale; these tests check parsing, which happens before signature verification).
enum CertificateTamper {
    struct Fields {
        var prefix: [UInt8]          // type name, nonce, key fields, serial
        var type: UInt32
        var middle: [UInt8]          // key id, principals, validity
        var critical: [UInt8]
        var extensions: [UInt8]
        var reserved: [UInt8]
        var signatureKey: [UInt8]
        var signature: [UInt8]
    }

    static func split(_ cert: SSHCertificate) throws -> Fields {
        var r = SSHWireReader(cert.blob)
        _ = try r.readString("t"); _ = try r.readString("n")
        var k = SSHWireReader(cert.key.blob); _ = try k.readString("t")
        _ = try r.readRaw(cert.key.blob.count - k.offset, "key")
        _ = try r.readUInt64("serial")
        let prefix = Array(cert.blob[0..<r.offset])
        let type = try r.readUInt32("type")
        let middleStart = r.offset
        _ = try r.readString("id"); _ = try r.readString("p"); _ = try r.readUInt64("a"); _ = try r.readUInt64("b")
        let middle = Array(cert.blob[middleStart..<r.offset])
        return Fields(prefix: prefix, type: type, middle: middle, critical: try r.readString("c"), extensions: try r.readString("e"),
                      reserved: try r.readString("r"), signatureKey: try r.readString("sk"), signature: try r.readString("s"))
    }

    static func join(_ f: Fields) -> [UInt8] {
        var w = SSHWireWriter()
        w.writeRaw(f.prefix); w.writeUInt32(f.type); w.writeRaw(f.middle)
        w.writeString(f.critical); w.writeString(f.extensions); w.writeString(f.reserved)
        w.writeString(f.signatureKey); w.writeString(f.signature)
        return w.bytes
    }

    static func duplicateFirstCriticalOption(_ cert: SSHCertificate) throws -> [UInt8] {
        var f = try split(cert)
        f.critical = f.critical + f.critical
        return join(f)
    }

    static func replaceSignatureKey(_ cert: SSHCertificate, with blob: [UInt8]) throws -> [UInt8] {
        var f = try split(cert)
        f.signatureKey = blob
        return join(f)
    }

    static func setType(_ cert: SSHCertificate, _ type: UInt32) throws -> [UInt8] {
        var f = try split(cert)
        f.type = type
        return join(f)
    }
}

final class SignatureCacheTests: XCTestCase {
    /// A cached signature is not trusted for different bytes, and a bad signature is never cached.
    func testCacheNeverAcceptsWhatVerificationWouldRefuse() throws {
        let ca = try SSHPrivateKey.generate(.ed25519), subject = try SSHPrivateKey.generate(.ed25519)
        let now: UInt64 = 1_800_000_000
        let cache = VerifiedSignatureCache(capacity: 4)
        let validator = CertificateValidator.openSSHUser(signatureCache: cache)
        let ctx = ValidationContext(now: now, trustedCAs: [ca.publicKey])
        let cert = try CertificateTemplate(key: subject.publicKey, type: .user, serial: 1, keyID: "keyid-zz", principals: ["p"], validAfter: now - 1, validBefore: now + 60).sign(with: ca)
        XCTAssertNoThrow(try validator.validate(cert, in: ctx).get())
        XCTAssertEqual(cache.count, 1)
        XCTAssertNoThrow(try validator.validate(cert, in: ctx).get())
        var tampered = cert.blob
        let at = try XCTUnwrap(tampered.firstRange(of: Array("keyid-zz".utf8))).lowerBound
        tampered[at] = UInt8(ascii: "K")
        guard case .failure(let r) = validator.validate(try SSHCertificate(blob: tampered), in: ctx) else { return XCTFail("tampered accepted") }
        XCTAssertEqual(r.code, "bad-signature")
        XCTAssertEqual(cache.count, 1)
        // Time rules still run on a cache hit.
        guard case .failure(let expired) = validator.validate(cert, in: ValidationContext(now: now + 61, trustedCAs: [ca.publicKey])) else { return XCTFail() }
        XCTAssertEqual(expired.code, "expired")
        // Bounded: filling past capacity empties and refills.
        for i in 0..<6 {
            let c = try CertificateTemplate(key: subject.publicKey, type: .user, serial: UInt64(i + 2), keyID: "k", principals: ["p"], validAfter: now - 1, validBefore: now + 60).sign(with: ca)
            XCTAssertNoThrow(try validator.validate(c, in: ctx).get())
        }
        XCTAssertLessThanOrEqual(cache.count, 4)
    }
}
