import Foundation
import SSHCertificates

/// Gatehouse's own host keys: generated into the host-key directory on first start (0600 in a
/// 0700 directory), loaded on every later start. libssh 0.10 cannot present a host
/// certificate, so clients pin these fingerprints (printed at start and in `known_hosts` form).
public struct HostKeys: Sendable {
    public struct Entry: Sendable {
        public let path: String
        public let publicKey: SSHPublicKey
    }

    public let entries: [Entry]

    static let files: [(name: String, algorithm: SSHKeyAlgorithm)] = [
        ("ssh_host_ed25519_key", .ed25519), ("ssh_host_ecdsa_key", .ecdsaP256), ("ssh_host_rsa_key", .rsa),
    ]

    public static func loadOrGenerate(directory: String) throws -> HostKeys {
        let fm = FileManager.default
        if !fm.fileExists(atPath: directory) {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        var entries: [Entry] = []
        for (name, algorithm) in files {
            let path = "\(directory)/\(name)"
            let key: SSHPrivateKey
            if fm.fileExists(atPath: path) {
                var info = stat()
                guard stat(path, &info) == 0 else { throw HostKeyError("\(path): cannot stat: \(String(cString: strerror(errno)))") }
                guard info.st_mode & 0o077 == 0 else { throw HostKeyError("\(path) is readable by others (mode \(String(info.st_mode & 0o777, radix: 8))); fix it with: chmod 600 \(path)") }
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw HostKeyError("\(path) cannot be read") }
                do { key = try OpenSSHPrivateKeyFile.parse(text) } catch { throw HostKeyError("\(path): \(error)") }
                guard key.algorithm == algorithm else { throw HostKeyError("\(path) holds a \(key.algorithm.keyTypeName) key, expected \(algorithm.keyTypeName)") }
            } else {
                key = try SSHPrivateKey.generate(algorithm, comment: "gatehouse host key")
                let text = OpenSSHPrivateKeyFile.serialize(key)
                let temporary = "\(path).tmp-\(getpid())"
                guard fm.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                    throw HostKeyError("cannot write \(temporary)")
                }
                guard rename(temporary, path) == 0 else { throw HostKeyError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))") }
                try (key.publicKey.openSSHLine + " gatehouse\n").write(toFile: "\(path).pub", atomically: true, encoding: .utf8)
            }
            entries.append(Entry(path: path, publicKey: key.publicKey))
        }
        return HostKeys(entries: entries)
    }
}

public struct HostKeyError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
