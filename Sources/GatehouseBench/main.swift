import Foundation
import SSHCertificates

// Certificate verification (the full openSSHUser rule set, signature included) and signing per
// CA key type, on one core. Results go to docs/benchmarks.md.
//   swift run -c release GatehouseBench [seconds-per-case]

let secondsPerCase = Double(CommandLine.arguments.dropFirst().first ?? "") ?? 2
let now = UInt64(Date().timeIntervalSince1970)

func measure(_ body: () throws -> Void) rethrows -> Double {
    var count = 0
    let start = Date()
    while Date().timeIntervalSince(start) < secondsPerCase {
        for _ in 0..<50 { try body() }
        count += 50
    }
    return Double(count) / Date().timeIntervalSince(start)
}

print("| CA key type | verifications/s, cold (full rule set) | verifications/s, signature cached | signatures/s (certificate issued) |")
print("|---|---:|---:|---:|")
let subject = try SSHPrivateKey.generate(.ed25519)
for algorithm in SSHKeyAlgorithm.allCases {
    let ca = try SSHPrivateKey.generate(algorithm, rsaBits: 3072)
    let template = CertificateTemplate(key: subject.publicKey, type: .user, serial: 1, keyID: "bench", principals: ["agent"],
                                       validAfter: now - 60, validBefore: now + 600,
                                       extensions: [.flag("permit-pty"), CertificateOption(name: "scopes@gatehouse", value: "ops-read")])
    let cert = try template.sign(with: ca)
    let context = ValidationContext(now: now, peerAddress: "127.0.0.1", trustedCAs: [ca.publicKey])
    let validator = CertificateValidator.openSSHUser()
    let verify = try measure {
        guard case .success = validator.validate(offeredKeyBlob: cert.blob, in: context) else { fatalError("refused") }
    }
    let cached = CertificateValidator.openSSHUser(signatureCache: VerifiedSignatureCache())
    let warm = try measure {
        guard case .success = cached.validate(offeredKeyBlob: cert.blob, in: context) else { fatalError("refused") }
    }
    let sign = try measure { _ = try template.sign(with: ca) }
    print("| \(algorithm.shortName)\(algorithm == .rsa ? " (3072)" : "") | \(Int(verify)) | \(Int(warm)) | \(Int(sign)) |")
}
