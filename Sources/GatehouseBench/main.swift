import Foundation
import Policy
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

// Policy: decisions per second against a 200-rule allowlist (50 programs, 4 patterns each),
// for an allowed command, a command no pattern matches, and a hostile one.
var rules: [CommandPattern] = []
for program in 0..<50 {
    rules.append(try CommandPattern("tool\(program) status {unit: /[a-z0-9@._-]+/}"))
    rules.append(try CommandPattern("tool\(program) logs -n {lines: 1..1000} {unit: nginx|postgres|redis}"))
    rules.append(try CommandPattern("tool\(program) cat {file: path under /var/log}"))
    rules.append(try CommandPattern("tool\(program) list {names...: /[a-z]+/}"))
}
let allowlist = CommandAllowlist(rules)
print("")
print("| policy decision (200 rules) | decisions/s | µs per decision |")
print("|---|---:|---:|")
for (label, command) in [("allowed", "tool37 logs -n 200 postgres"), ("no matching pattern", "tool37 logs -n 5000 postgres"),
                         ("hostile (substitution)", "tool37 status $(touch /tmp/x)"), ("allowed, path check", "tool12 cat /var/log/nginx/../app/current.log")] {
    let rate = measure { _ = allowlist.decide(command) }
    print("| \(label) | \(Int(rate)) | \(String(format: "%.2f", 1_000_000 / rate)) |")
}
