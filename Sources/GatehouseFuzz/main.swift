import Foundation
import Policy
import SSHCertificates

// A mutation fuzzer for every parser that reads untrusted bytes: public keys, certificates,
// openssh-key-v1 files and KRLs. It mutates a seed corpus (fuzz/certificates/corpus, regenerated
// with --make-seeds) with bit flips, byte sets, splices, truncations and length-field edits, and
// feeds each input to every parser. A crash aborts the process (and the input is printed first
// when --trace is given); otherwise it prints how many inputs ran and how each parser answered.
//
//   swift run -c release GatehouseFuzz fuzz/certificates/corpus 1000000

struct Mutator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }

    mutating func mutate(_ input: [UInt8], corpus: [[UInt8]]) -> [UInt8] {
        var b = input
        for _ in 0...below(4) {
            switch below(8) {
            case 0 where !b.isEmpty: b[below(b.count)] ^= UInt8(1 << below(8))
            case 1 where !b.isEmpty: b[below(b.count)] = [0, 0xff, 0x7f, 0x80, 1][below(5)]
            case 2 where !b.isEmpty: b.removeSubrange(below(b.count)...)
            case 3:
                let other = corpus[below(corpus.count)]
                if !other.isEmpty { let at = below(other.count); b.insert(contentsOf: other[at..<min(other.count, at + 1 + below(64))], at: below(b.count + 1)) }
            case 4 where b.count >= 4:
                // Overwrite a 4-byte big-endian length field with an extreme value.
                let at = below(b.count - 3)
                let v: UInt32 = [0, 1, 0xffff_ffff, 0x7fff_ffff, UInt32(b.count), UInt32(below(300))][below(6)]
                for i in 0..<4 { b[at + i] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(i))) }
            case 5 where !b.isEmpty:
                let at = below(b.count), len = min(b.count - at, 1 + below(16))
                b.insert(contentsOf: b[at..<at + len], at: at)
            case 6 where !b.isEmpty: b.remove(at: below(b.count))
            default: b.append(UInt8(truncatingIfNeeded: next()))
            }
        }
        return b
    }
}

func makeSeeds(into dir: String) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var n = 0
    func save(_ bytes: [UInt8], _ name: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: dir).appendingPathComponent(String(format: "%03d-%@", n, name)))
        n += 1
    }
    for caAlgorithm in SSHKeyAlgorithm.allCases {
        let ca = try SSHPrivateKey.generate(caAlgorithm, rsaBits: 2048)
        try save(ca.publicKey.blob, "key-\(caAlgorithm.shortName)")
        try save(Array(OpenSSHPrivateKeyFile.serialize(ca).utf8), "private-\(caAlgorithm.shortName)")
        for subject in [SSHKeyAlgorithm.ed25519, .ecdsaP256, .rsa] {
            let key = try SSHPrivateKey.generate(subject, rsaBits: 2048)
            let cert = try CertificateTemplate(key: key.publicKey, type: .user, serial: 5, keyID: "seed", principals: ["a", "b"],
                                               validAfter: 1, validBefore: 1 << 40,
                                               criticalOptions: [CertificateOption(name: "force-command", value: "uptime"), CertificateOption(name: "source-address", value: "10.0.0.0/8,::1")],
                                               extensions: [.flag("permit-pty"), CertificateOption(name: "scopes@gatehouse", value: "ops")]).sign(with: ca)
            try save(cert.blob, "cert-\(caAlgorithm.shortName)-\(subject.shortName)")
        }
        var krl = KeyRevocationList(version: 1, comment: "seed")
        krl.revoke(serials: 1...9, ca: ca.publicKey); krl.revoke(serials: 40...40, ca: nil)
        krl.revoke(keyID: "bad", ca: nil); krl.revoke(key: ca.publicKey); krl.revoke(sha256FingerprintOf: ca.publicKey)
        try save(krl.serialized(), "krl-\(caAlgorithm.shortName)")
    }
}

let arguments = CommandLine.arguments.dropFirst()

// `GatehouseFuzz --policy DIR N`: every seed line (exec strings and patterns) mutated N times
// in all, each input fed to the splitter, the pattern compiler and an allowlist decision.
if arguments.first == "--policy" {
    let dir = arguments.dropFirst().first ?? "fuzz/policy/corpus"
    let count = Int(arguments.dropFirst(2).first ?? "") ?? 1_000_000
    let seeds = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().flatMap {
        try String(contentsOfFile: "\(dir)/\($0)", encoding: .utf8).split(separator: "\n").map { Array($0.utf8) }
    }
    guard !seeds.isEmpty else { print("no seeds in \(dir)"); exit(2) }
    let allowlist = CommandAllowlist(try [
        "systemctl status {unit: /[a-z0-9@._-]+/}", "journalctl -u {unit: nginx|postgres} -n {lines: 1..1000}",
        "cat {file: path under /var/log}", "kubectl get pods {names...: /[a-z0-9-]+/}", "git log {ref?}",
    ].map(CommandPattern.init))
    var m = Mutator(state: 0x5eed ^ UInt64(count))
    var allowed = 0, denied = 0, patterns = 0, forwards = 0
    let started = Date()
    for i in 0..<count {
        let input = m.mutate(seeds[i % seeds.count], corpus: seeds)
        let text = String(decoding: input, as: UTF8.self)
        _ = ShellWords.split(bytes: input)
        switch allowlist.decide(text) {
        case .allow(let argv, let command, _):
            allowed += 1
            // The invariant: what is sent splits back to exactly the argv that was checked.
            guard case .success(let back) = ShellWords.split(command), back == argv else { fatalError("requoting changed argv for \(text.debugDescription)") }
        case .deny: denied += 1
        }
        if i % 4 == 0, (try? CommandPattern(text)) != nil { patterns += 1 }
        // Forward patterns (scopes' forwards / remote_forwards): parse, and match what parsed.
        if i % 4 == 2, let forward = try? ForwardPattern(text) {
            forwards += 1
            _ = forward.matches(host: text, port: Int(input.first ?? 0) * 256 + Int(input.last ?? 0))
        }
    }
    print("fuzz policy: \(count) inputs in \(String(format: "%.1f", Date().timeIntervalSince(started))) s, no crash; \(allowed) allowed (each re-split to its exact argv), \(denied) denied, \(patterns) parsed as patterns, \(forwards) as forward patterns")
    exit(0)
}

if arguments.first == "--make-seeds" {
    try makeSeeds(into: arguments.dropFirst().first ?? "fuzz/certificates/corpus")
    exit(0)
}
let corpusDir = arguments.first ?? "fuzz/certificates/corpus"
let iterations = Int(arguments.dropFirst().first ?? "") ?? 1_000_000
let trace = arguments.contains("--trace")
let corpus = try FileManager.default.contentsOfDirectory(atPath: corpusDir).sorted().map {
    Array(try Data(contentsOf: URL(fileURLWithPath: corpusDir).appendingPathComponent($0)))
}
guard !corpus.isEmpty else { print("empty corpus in \(corpusDir); run with --make-seeds first"); exit(2) }

var mutator = Mutator(state: 0x9e37_79b9_7f4a_7c15 ^ UInt64(iterations))
var accepted = [String: Int](), refused = [String: Int]()
let context = ValidationContext(now: 1000, peerAddress: "10.1.2.3", trustedCAs: [])
let start = Date()
for i in 0..<iterations {
    let input = mutator.mutate(corpus[i % corpus.count], corpus: corpus)
    if trace { print(Data(input).base64EncodedString()) }
    if (try? SSHPublicKey(blob: input)) != nil { accepted["key", default: 0] += 1 } else { refused["key", default: 0] += 1 }
    if let cert = try? SSHCertificate(blob: input) {
        accepted["certificate", default: 0] += 1
        _ = CertificateValidator.openSSHUser().validate(cert, in: context)
    } else { refused["certificate", default: 0] += 1 }
    if (try? KeyRevocationList(binary: input)) != nil { accepted["krl", default: 0] += 1 } else { refused["krl", default: 0] += 1 }
    if i % 8 == 0 {
        if (try? OpenSSHPrivateKeyFile.parse(String(decoding: input, as: UTF8.self))) != nil { accepted["private-key", default: 0] += 1 } else { refused["private-key", default: 0] += 1 }
    }
}
let seconds = Date().timeIntervalSince(start)
print("fuzz: \(iterations) inputs in \(String(format: "%.1f", seconds)) s, no crash")
for name in ["key", "certificate", "krl", "private-key"] {
    print("  \(name): \(accepted[name, default: 0]) parsed, \(refused[name, default: 0]) refused with an error")
}
