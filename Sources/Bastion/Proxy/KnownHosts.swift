import Crypto
import Foundation
import SSHCertificates

/// The entries of an OpenSSH known_hosts file that apply to one host: plain and hashed
/// (`|1|salt|hash`) host patterns, `[host]:port` for non-22 ports, negation, `@cert-authority`
/// and `@revoked`. Malformed lines are reported, not skipped, so a typo cannot silently weaken
/// verification.
struct KnownHosts {
    var keys: [SSHPublicKey] = []
    var authorities: [SSHPublicKey] = []
    var revoked: [SSHPublicKey] = []

    static func lookup(file: String, host: String, port: Int) throws -> KnownHosts {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw HostKeyMismatch.unreadable(file) }
        let name = port == 22 ? host : "[\(host)]:\(port)"
        var result = KnownHosts()
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            var fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            var marker: String?
            if fields.first?.hasPrefix("@") == true { marker = fields.removeFirst() }
            guard fields.count >= 3 else { throw HostKeyMismatch.malformedKnownHosts(file: file, line: index + 1, reason: "expected hosts, key type and key") }
            guard matches(patterns: fields[0], name: name) else { continue }
            let key: SSHPublicKey
            do { key = try SSHPublicKey(openSSHLine: "\(fields[1]) \(fields[2])") } catch {
                throw HostKeyMismatch.malformedKnownHosts(file: file, line: index + 1, reason: "\(error)")
            }
            switch marker {
            case nil: result.keys.append(key)
            case "@cert-authority": result.authorities.append(key)
            case "@revoked": result.revoked.append(key)
            case let other?: throw HostKeyMismatch.malformedKnownHosts(file: file, line: index + 1, reason: "unknown marker \(other)")
            }
        }
        return result
    }

    /// OpenSSH's rule: any negated pattern that matches excludes the line; otherwise one positive match is needed.
    static func matches(patterns: String, name: String) -> Bool {
        if patterns.hasPrefix("|1|") { return hashedMatch(patterns, name: name) }
        var positive = false
        for pattern in patterns.split(separator: ",") {
            if pattern.hasPrefix("!") {
                if glob(String(pattern.dropFirst()), name) { return false }
            } else if glob(String(pattern), name) {
                positive = true
            }
        }
        return positive
    }

    static func hashedMatch(_ field: String, name: String) -> Bool {
        let parts = field.split(separator: "|", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[0] == "1", let salt = Data(base64Encoded: String(parts[1])), let expected = Data(base64Encoded: String(parts[2])) else { return false }
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(name.utf8), using: SymmetricKey(data: salt))
        return Data(mac) == expected
    }

    /// `*` and `?` wildcards, case-insensitive as hostnames are.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.lowercased().utf8), t = Array(text.lowercased().utf8)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == UInt8(ascii: "?") || p[pi] == t[ti] { pi += 1; ti += 1 }
            else if pi < p.count, p[pi] == UInt8(ascii: "*") { star = pi; mark = ti; pi += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
            else { return false }
        }
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }
}
