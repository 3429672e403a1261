import Foundation
import XCTest
@testable import SSHCertificates

/// For a generated corpus of keys and certificates, `ssh-keygen -Q` and Gatehouse's own check
/// agree on every case, for KRLs written here and KRLs written by `ssh-keygen -k`.
final class KRLInteropTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws { dir = try makeTemporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    struct Subject {
        let path: String          // file given to ssh-keygen -Q
        let certificate: SSHCertificate?
        let key: SSHPublicKey
    }

    func makeCorpus(cas: [SSHPrivateKey]) throws -> [Subject] {
        var subjects: [Subject] = []
        let serials: [UInt64] = [0, 1, 3, 4, 5, 6, 7, 99, 100, 150, 200, 201, 1000, 1001, 1003, 1010, .max - 1]
        let ids = ["agent-a", "agent-b", "bad-id", "a-only"]
        var n = 0
        for (ci, ca) in cas.enumerated() {
            for serial in serials {
                let key = try SSHPrivateKey.generate(n % 3 == 0 ? .ecdsaP256 : .ed25519)
                let cert = try CertificateTemplate(key: key.publicKey, type: .user, serial: serial, keyID: ids[n % ids.count],
                                                   principals: ["p"], validAfter: 0, validBefore: .max).sign(with: ca)
                let path = dir.appendingPathComponent("c\(ci)-\(n)-cert.pub").path
                try writeText(cert.openSSHLine + "\n", to: URL(fileURLWithPath: path))
                subjects.append(Subject(path: path, certificate: cert, key: key.publicKey))
                n += 1
            }
        }
        for i in 0..<6 {
            let key = try SSHPrivateKey.generate(i % 2 == 0 ? .ed25519 : .ecdsaP384)
            let path = dir.appendingPathComponent("plain-\(i).pub").path
            try writeText(key.publicKey.openSSHLine + "\n", to: URL(fileURLWithPath: path))
            subjects.append(Subject(path: path, certificate: nil, key: key.publicKey))
        }
        return subjects
    }

    func ours(_ krl: KeyRevocationList, _ s: Subject) -> Bool {
        if let c = s.certificate { return krl.revocation(of: c) != nil }
        return krl.revocation(of: s.key) != nil
    }

    func keygenSaysRevoked(_ krlPath: String, _ s: Subject) throws -> Bool {
        let r = try runTool("ssh-keygen", ["-Q", "-f", krlPath, s.path], check: false)
        XCTAssertTrue(r.status == 0 || r.status == 1, "ssh-keygen -Q failed: \(r.stderr)")
        return r.status == 1 || r.stdout.contains("REVOKED")
    }

    func testKRLWrittenHereAgreesWithKeygenQuery() throws {
        let cas = try (0..<3).map { _ in try SSHPrivateKey.generate(.ed25519) }
        let corpus = try makeCorpus(cas: cas)
        var krl = KeyRevocationList(version: 3, generatedDate: nowSeconds, comment: "gatehouse test")
        krl.revoke(serials: 3...5, ca: cas[0].publicKey)
        krl.revoke(serials: 1000...1000, ca: cas[0].publicKey)
        krl.revoke(serials: 1003...1010, ca: cas[0].publicKey)
        krl.revoke(serials: 150...150, ca: nil)
        krl.revoke(keyID: "bad-id", ca: nil)
        krl.revoke(keyID: "a-only", ca: cas[1].publicKey)
        krl.revoke(key: corpus[1].key)
        krl.revoke(key: corpus.last!.key)
        krl.revoke(sha256FingerprintOf: corpus[corpus.count - 2].key)
        krl.revoke(key: cas[2].publicKey)
        let krlPath = dir.appendingPathComponent("ours.krl").path
        try Data(krl.serialized()).write(to: URL(fileURLWithPath: krlPath))

        var revokedCount = 0
        for s in corpus {
            let mine = ours(krl, s)
            XCTAssertEqual(mine, try keygenSaysRevoked(krlPath, s), "disagreement on \(s.path) serial \(s.certificate?.serial ?? 0) id \(s.certificate?.keyID ?? "-")")
            if mine { revokedCount += 1 }
        }
        XCTAssertGreaterThan(revokedCount, 10)
        XCTAssertLessThan(revokedCount, corpus.count - 10)
        // And the file reads back to the same list.
        XCTAssertEqual(try KeyRevocationList(binary: krl.serialized()), krl)
    }

    func testKRLWrittenByKeygenParsesAndAgrees() throws {
        let caPath = dir.appendingPathComponent("ca").path
        try runTool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", caPath])
        let ca = try OpenSSHPrivateKeyFile.parse(try readText(URL(fileURLWithPath: caPath)))
        let other = try SSHPrivateKey.generate(.ed25519)
        let corpus = try makeCorpus(cas: [ca, other])
        // Dense serials make ssh-keygen choose its bitmap encoding; ranges and lists also appear.
        var spec = "serial: 3-5\nserial: 100-200\nid: bad-id\nserial: 1000\nserial: 1001\nserial: 1003\nserial: 1010\n"
        spec += "key: \(corpus[2].key.openSSHLine)\n"
        spec += "sha256: \(corpus[corpus.count - 1].key.openSSHLine)\n"
        spec += "hash: \(corpus[corpus.count - 2].key.fingerprint)\n"
        let specPath = dir.appendingPathComponent("spec").path
        try writeText(spec, to: URL(fileURLWithPath: specPath))
        let krlPath = dir.appendingPathComponent("keygen.krl").path
        try runTool("ssh-keygen", ["-k", "-f", krlPath, "-s", caPath + ".pub", specPath])
        let krl = try KeyRevocationList(binary: Array(try Data(contentsOf: URL(fileURLWithPath: krlPath))))
        var revokedCount = 0
        for s in corpus {
            let mine = ours(krl, s)
            XCTAssertEqual(mine, try keygenSaysRevoked(krlPath, s), "disagreement on \(s.path)")
            if mine { revokedCount += 1 }
        }
        XCTAssertGreaterThan(revokedCount, 5)
    }

    func testMalformedKRLsGetPreciseErrors() throws {
        var krl = KeyRevocationList()
        krl.revoke(serials: 1...9, ca: nil)
        let good = krl.serialized()
        XCTAssertEqual(try? KeyRevocationList(binary: good), krl)
        XCTAssertThrowsError(try KeyRevocationList(binary: Array("not a krl at all".utf8))) { XCTAssertEqual($0 as? KRLError, .badMagic) }
        var unknownSection = good
        unknownSection += [9, 0, 0, 0, 0]
        XCTAssertThrowsError(try KeyRevocationList(binary: unknownSection)) { XCTAssertEqual($0 as? KRLError, .unknownSection(9)) }
        // The format has no overall length: cutting exactly after the header leaves a valid,
        // empty KRL. Every other cut must be refused.
        let headerLength = KeyRevocationList().serialized().count
        for length in 0..<good.count where length != headerLength {
            XCTAssertThrowsError(try KeyRevocationList(binary: Array(good[0..<length])), "cut at \(length)")
        }
    }

    func testSerialSetMergesRanges() {
        var s = SerialSet()
        s.insert(5...7); s.insert(1...2); s.insert(3...4); s.insert(10...10); s.insert(UInt64.max...UInt64.max); s.insert(8...9)
        XCTAssertEqual(s.ranges, [1...10, UInt64.max...UInt64.max])
        XCTAssertTrue(s.contains(6)); XCTAssertFalse(s.contains(11)); XCTAssertTrue(s.contains(.max))
    }
}
