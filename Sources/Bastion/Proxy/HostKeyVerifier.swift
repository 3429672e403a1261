import Foundation
import SSHCertificates

/// Why a target's host key was not accepted. Every case names what was expected and what came.
public enum HostKeyMismatch: Error, CustomStringConvertible, Sendable {
    case notPinned(presented: String, pinned: [String])
    case notInKnownHosts(presented: String, file: String, host: String)
    case revoked(presented: String)
    case certificateRefused(String)
    case notACertificate(presented: String)
    case unreadable(String)
    case malformedKnownHosts(file: String, line: Int, reason: String)
    case noKey

    public var description: String {
        switch self {
        case .notPinned(let presented, let pinned): return "host key \(presented) is not the pinned key (\(pinned.joined(separator: ", ")))"
        case .notInKnownHosts(let presented, let file, let host): return "host key \(presented) for \(host) is not in \(file)"
        case .revoked(let presented): return "host key \(presented) is marked @revoked"
        case .certificateRefused(let reason): return "host certificate refused: \(reason)"
        case .notACertificate(let presented): return "the target presented a plain key \(presented), but a host certificate is required"
        case .unreadable(let file): return "known_hosts file \(file) cannot be read"
        case .malformedKnownHosts(let file, let line, let reason): return "\(file):\(line): \(reason)"
        case .noKey: return "the target presented no host key"
        }
    }
}

/// Decides whether the host key a target presented is the one configured for it, and which
/// host key algorithms to ask for so the target offers a key that can match.
struct HostKeyVerifier {
    let check: HostKeyCheck
    let target: TargetConfiguration
    /// Gatehouse's own host CA, used when `host_ca: true`.
    let storeHostCAs: () -> [SSHPublicKey]

    /// The `HostKeyAlgorithms` list for libssh, so the target presents the key type we can verify.
    func algorithms() throws -> String {
        switch check {
        case .pinned(let keys): return Self.signatureAlgorithms(for: keys.map(\.algorithm), certificates: false)
        case .knownHosts(let path, let hostName):
            let entries = try KnownHosts.lookup(file: path, host: hostName ?? target.address, port: target.port)
            var list: [String] = []
            if !entries.authorities.isEmpty { list.append(Self.signatureAlgorithms(for: SSHKeyAlgorithm.allCases, certificates: true)) }
            if !entries.keys.isEmpty { list.append(Self.signatureAlgorithms(for: entries.keys.map(\.algorithm), certificates: false)) }
            if list.isEmpty { throw HostKeyMismatch.notInKnownHosts(presented: "(none yet)", file: path, host: hostName ?? target.address) }
            return list.joined(separator: ",")
        case .hostCA: return Self.signatureAlgorithms(for: SSHKeyAlgorithm.allCases, certificates: true)
        }
    }

    static func signatureAlgorithms(for keys: [SSHKeyAlgorithm], certificates: Bool) -> String {
        var names: [String] = []
        for algorithm in SSHKeyAlgorithm.allCases where keys.contains(algorithm) {
            let base: [String] = algorithm == .rsa ? ["rsa-sha2-512", "rsa-sha2-256"] : [algorithm.keyTypeName]
            names += certificates ? base.map { "\($0)-cert-v01@openssh.com" } : base
        }
        return names.joined(separator: ",")
    }

    /// `presented` is the wire blob of the key or certificate the target signed the exchange with.
    func verify(presented blob: [UInt8], now: UInt64) throws(HostKeyMismatch) {
        let certificate = try? SSHCertificate(blob: blob)
        let plain = certificate?.key ?? (try? SSHPublicKey(blob: blob))
        guard let plain else { throw .noKey }
        switch check {
        case .pinned(let keys):
            guard certificate == nil, keys.contains(where: { $0.blob == blob }) else {
                throw .notPinned(presented: plain.fingerprint, pinned: keys.map(\.fingerprint))
            }
        case .knownHosts(let path, let hostName):
            let host = hostName ?? target.address
            let entries: KnownHosts
            do { entries = try KnownHosts.lookup(file: path, host: host, port: target.port) } catch let e as HostKeyMismatch { throw e } catch { throw .unreadable(path) }
            if entries.revoked.contains(where: { $0.blob == plain.blob || $0.blob == certificate?.signatureKey.blob }) { throw .revoked(presented: plain.fingerprint) }
            if let certificate, !entries.authorities.isEmpty {
                try validate(certificate, cas: entries.authorities, principal: host, now: now)
                return
            }
            guard certificate == nil, entries.keys.contains(where: { $0.blob == blob }) else {
                throw .notInKnownHosts(presented: plain.fingerprint, file: path, host: target.port == 22 ? host : "[\(host)]:\(target.port)")
            }
        case .hostCA(let keys, let principal):
            guard let certificate else { throw .notACertificate(presented: plain.fingerprint) }
            try validate(certificate, cas: keys ?? storeHostCAs(), principal: principal ?? target.address, now: now)
        }
    }

    private func validate(_ certificate: SSHCertificate, cas: [SSHPublicKey], principal: String, now: UInt64) throws(HostKeyMismatch) {
        let context = ValidationContext(now: now, trustedCAs: cas)
        if case .failure(let refusal) = CertificateValidator.openSSHHost(hostname: principal).validate(certificate, in: context) {
            throw .certificateRefused("\(refusal)")
        }
    }
}
