import Crypto
import Foundation

/// The key every replica seals the shared CA files with (AES-256-GCM): 32 bytes, given as 64
/// hexadecimal characters in a file (`store.key_encryption_key_file`, mode 0600 or stricter) or
/// an environment variable (`store.key_encryption_key_env`). Never stored in the database and
/// never printed: a database dump alone opens no CA key, and whoever can write the tables
/// without it cannot change what a replica trusts.
public struct KeyEncryptionKey: Sendable, Equatable, CustomStringConvertible {
    let key: SymmetricKey

    public init(hex text: String, source: String) throws(StateStoreError) {
        func fail(_ why: String) -> StateStoreError {
            StateStoreError(operation: "store configuration", endpoint: "", kind: .configuration("the key-encryption key in \(source) \(why)"))
        }
        var hex = text
        if hex.hasSuffix("\r\n") { hex.removeLast(2) } else if hex.hasSuffix("\n") { hex.removeLast() }
        guard hex.utf8.count == 64 else { throw fail("must be 64 hexadecimal characters (32 random bytes, e.g. `openssl rand -hex 32`), not \(hex.utf8.count)") }
        var bytes: [UInt8] = []
        var utf8 = Array(hex.utf8)[...]
        while let high = utf8.popFirst(), let low = utf8.popFirst() {
            guard let h = Self.nibble(high), let l = Self.nibble(low) else { throw fail("holds a character that is not hexadecimal") }
            bytes.append(h << 4 | l)
        }
        guard Set(bytes).count > 4 else { throw fail("is not random (a handful of distinct bytes)") }
        key = SymmetricKey(data: bytes)
    }

    /// Reads the key from `path`, refusing a file readable by group or others.
    public static func load(file path: String) throws(StateStoreError) -> KeyEncryptionKey {
        func fail(_ why: String) -> StateStoreError {
            StateStoreError(operation: "store configuration", endpoint: "", kind: .configuration(why))
        }
        var info = stat()
        guard stat(path, &info) == 0, let data = FileManager.default.contents(atPath: path) else { throw fail("cannot read the key-encryption key file \(path)") }
        guard info.st_mode & 0o077 == 0 else {
            throw fail("the key-encryption key file \(path) has mode \(String(info.st_mode & 0o777, radix: 8)), readable by group or others; fix it with `chmod 600 \(path)`")
        }
        return try KeyEncryptionKey(hex: String(decoding: data, as: UTF8.self), source: path)
    }

    /// Reads the key from the environment variable `name`.
    public static func load(environment name: String, from environment: [String: String] = ProcessInfo.processInfo.environment) throws(StateStoreError) -> KeyEncryptionKey {
        guard let value = environment[name], !value.isEmpty else {
            throw StateStoreError(operation: "store configuration", endpoint: "", kind: .configuration("the environment variable \(name) (the key-encryption key) is not set"))
        }
        return try KeyEncryptionKey(hex: value, source: "$\(name)")
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    public var description: String { "(key-encryption key)" }

    public static func == (a: KeyEncryptionKey, b: KeyEncryptionKey) -> Bool {
        a.key.withUnsafeBytes { x in b.key.withUnsafeBytes { y in x.elementsEqual(y) } }
    }

    /// What a sealed file is bound to: its path and generation.
    static func associatedData(path: String, generation: Int64) -> [UInt8] {
        Array("gatehouse shared file\u{0}\(path)\u{0}\(generation)".utf8)
    }

    /// nonce | ciphertext | tag.
    func seal(_ content: [UInt8], path: String, generation: Int64) throws -> [UInt8] {
        let box = try AES.GCM.seal(content, using: key, authenticating: Self.associatedData(path: path, generation: generation))
        return Array(box.combined!)
    }

    /// The content, or nil when the row was not sealed by this key for this path and generation.
    func open(_ sealed: [UInt8], path: String, generation: Int64) -> [UInt8]? {
        guard let box = try? AES.GCM.SealedBox(combined: sealed),
              let content = try? AES.GCM.open(box, using: key, authenticating: Self.associatedData(path: path, generation: generation)) else { return nil }
        return Array(content)
    }
}
