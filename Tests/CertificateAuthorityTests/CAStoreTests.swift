import Audit
import Foundation
import SSHCertificates
import XCTest
@testable import CertificateAuthority

final class CAStoreTests: XCTestCase {
    var root: String!

    override func setUp() { root = NSTemporaryDirectory() + "castore-\(UUID().uuidString)" }
    override func tearDown() { try? FileManager.default.removeItem(atPath: root) }

    func userCert(_ store: CAStore, id: String) throws -> SSHCertificate {
        let key = try SSHPrivateKey.generate(.ed25519)
        let (a, b) = CertificateTemplate.validFor(600, from: UInt64(Date().timeIntervalSince1970))
        return try store.issue(.user, CertificateTemplate(key: key.publicKey, type: .user, serial: 0, keyID: id, principals: ["agent"], validAfter: a, validBefore: b), actor: "test")
    }

    func accepted(_ store: CAStore, _ cert: SSHCertificate) -> Bool {
        let ctx = ValidationContext(now: UInt64(Date().timeIntervalSince1970), trustedCAs: store.trustedPublicKeys(.user), revocations: store.revocationList())
        if case .success = CertificateValidator.openSSHUser().validate(cert, in: ctx) { return true }
        return false
    }

    /// A scripted walk through every phase with rollback: which certificates are accepted.
    func testRotationWalk() throws {
        let store = try CAStore.initialize(at: root, actor: "test")
        let old = try userCert(store, id: "old")
        XCTAssertTrue(accepted(store, old))
        try store.rotate(.user, actor: "test")                               // init
        XCTAssertEqual(store.phase(.user), .initialized)
        XCTAssertEqual(store.trustedPublicKeys(.user).count, 2)
        XCTAssertEqual(try userCert(store, id: "x").signatureKey, old.signatureKey, "init: the old key still signs")
        try store.rotate(.user, actor: "test")                               // update
        let new = try userCert(store, id: "new")
        XCTAssertNotEqual(new.signatureKey, old.signatureKey)
        XCTAssertTrue(accepted(store, old)); XCTAssertTrue(accepted(store, new))
        XCTAssertThrowsError(try store.rotate(.user, actor: "test")) { XCTAssertTrue("\($0)".contains("grace period")) }
        try store.rollback(.user, actor: "test")                             // back to old
        XCTAssertTrue(accepted(store, old)); XCTAssertFalse(accepted(store, new))
        try store.rotate(.user, actor: "test"); try store.rotate(.user, actor: "test")
        let newer = try userCert(store, id: "newer")
        try store.rotate(.user, actor: "test", now: Date().addingTimeInterval(CAStore.defaultGracePeriod[.user]! + 1))   // retire
        XCTAssertEqual(store.phase(.user), .standby)
        XCTAssertFalse(accepted(store, old)); XCTAssertTrue(accepted(store, newer))
        // The state survives a reopen, and the audit log holds every step.
        let reopened = try CAStore.open(at: root)
        XCTAssertEqual(reopened.trustedPublicKeys(.user), store.trustedPublicKeys(.user))
        guard case .intact = try AuditLog.verify(path: root + "/audit.log") else { return XCTFail() }
        XCTAssertEqual(try AuditLog.records(path: root + "/audit.log").filter { $0.event.action == "ca.rotate" }.count, 5)
    }

    func testLoosePermissionsAreRefusedWithTheFix() throws {
        _ = try CAStore.initialize(at: root, actor: "test")
        let keyDir = root + "/ca/target/keys"
        let key = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: keyDir).first)
        chmod(keyDir + "/" + key, 0o640)
        XCTAssertThrowsError(try CAStore.open(at: root)) { error in
            XCTAssertTrue("\(error)".contains("mode 640"), "\(error)")
            XCTAssertTrue("\(error)".contains("chmod 600 \(keyDir)/\(key)"), "\(error)")
        }
    }

    func testCorruptStateIsRefusedPrecisely() throws {
        _ = try CAStore.initialize(at: root, actor: "test")
        try "{\"phase\": \"update\"}".write(toFile: root + "/ca/host/state.json", atomically: true, encoding: .utf8)
        chmod(root + "/ca/host/state.json", 0o600)
        XCTAssertThrowsError(try CAStore.open(at: root)) { XCTAssertTrue("\($0)".contains("ca/host/state.json is not a valid state file"), "\($0)") }
    }

    func testRevocationFollowsIntoTheKRL() throws {
        let store = try CAStore.initialize(at: root, actor: "test")
        let a = try userCert(store, id: "a"), b = try userCert(store, id: "b")
        try store.revoke(.serial(a.serial, ca: .user), actor: "test")
        XCTAssertFalse(accepted(store, a)); XCTAssertTrue(accepted(store, b))
        try store.revoke(.keyID("b", ca: nil), actor: "test")
        XCTAssertFalse(accepted(store, b))
        XCTAssertEqual(store.revocationList().version, 2)
        XCTAssertEqual(try KeyRevocationList(binary: store.revocationList().serialized()).certificateSections.count, 2)
    }
}

extension CAStoreTests {
    /// revocations.json is snake_case now; a file written before (camelCase) still loads and
    /// still revokes.
    func testRevocationsFileFromBeforeSnakeCaseStillRevokes() throws {
        let store = try CAStore.initialize(at: root, actor: "test")
        let legacy = #"{"keyIDs":[{"ca":"user","keyID":"old-agent"}],"keys":[],"serials":[{"ca":"user","serial":7}],"version":2}"#
        try legacy.write(toFile: root + "/revocations.json", atomically: true, encoding: .utf8)
        try store.reload()
        XCTAssertFalse(accepted(store, try userCert(store, id: "old-agent")))
        XCTAssertTrue(accepted(store, try userCert(store, id: "new-agent")))
        try store.revoke(.keyID("newer", ca: .user), actor: "test")
        let written = try String(contentsOfFile: root + "/revocations.json", encoding: .utf8)
        XCTAssertTrue(written.contains("\"key_ids\"") && written.contains("\"key_id\" : \"old-agent\""), written)
        XCTAssertFalse(written.contains("keyID"), written)
        XCTAssertEqual(store.revocationList().version, 3)
    }
}
