import ArgumentParser
import CertificateAuthority
import Foundation
import SSHCertificates

struct CertRevoke: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke certificates by serial, key id or public key.")
    @OptionGroup var store: StateOptions
    @Option(help: "A serial number (with --ca).") var serial: UInt64?
    @Option(name: .customLong("key-id"), help: "A key id (with --ca, or for any CA).") var keyID: String?
    @Option(name: .customLong("public-key"), help: "A public key file: revokes the key itself.") var publicKey: String?
    @Option(help: "The CA the serial or key id belongs to.") var ca: AuthorityName?

    func run() throws {
        let given = [serial != nil, keyID != nil, publicKey != nil].filter { $0 }.count
        guard given == 1 else { throw CLIError("give exactly one of --serial, --key-id, --public-key") }
        let revocation: CAStore.Revocation
        if let serial {
            guard serial != 0 else { throw CLIError("serial 0 means \"unnumbered\" and cannot be revoked; revoke by --key-id or --public-key") }
            revocation = .serial(serial, ca: ca ?? .user)
        } else if let keyID {
            revocation = .keyID(keyID, ca: ca)
        } else {
            do { revocation = .key(try SSHPublicKey(openSSHLine: try readFile(publicKey!).trimmingCharacters(in: .whitespacesAndNewlines))) } catch let e as CLIError { throw e } catch {
                throw CLIError("\(publicKey!): \(error)")
            }
        }
        let version = try store.change { ca in
            do { try ca.revoke(revocation, actor: adminActor) } catch { throw CLIError("\(error)") }
            return ca.revocationList().version
        }
        print("Revoked; KRL version \(version)." + (store.config == nil ? " Publish it with `gatehouse ca export krl -o FILE`." : " Published to every replica."))
    }
}
