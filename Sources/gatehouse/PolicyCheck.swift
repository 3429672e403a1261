import ArgumentParser
import Foundation
import Bastion
import Policy
import SSHCertificates

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "policy", abstract: "Check commands against allowlists.", subcommands: [PolicyCheck.self])
}

/// `gatehouse policy check --allow PATTERN… -- COMMAND`: the decision the server's code makes,
/// the pattern that matched or the rule that refused, and the exact argv and command line that
/// would be sent to the target. Exit 0 allowed, 1 denied.
struct PolicyCheck: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Decide one exec string against allowlist patterns.")

    @Option(name: .customLong("allow"), help: "An allowlist pattern (repeatable), e.g. 'journalctl -u {unit: nginx|postgres} -n {lines: 1..1000}'.")
    var patterns: [String] = []
    @Option(name: .customLong("patterns-file"), help: "A file with one pattern per line (# comments).") var patternsFile: String?
    @Option(help: "A Gatehouse configuration file whose scopes: section to use (with --scopes and --target).") var config: String?
    @Option(help: "Comma-separated scope names, as in the certificate's scopes@gatehouse.") var scopes: String?
    @Option(help: "A certificate whose scopes@gatehouse to use instead of --scopes.") var cert: String?
    @Option(help: "The target name.") var target: String?
    @Option(name: .customLong("label"), help: "A target label key=value (repeatable).") var labels: [String] = []
    @Option(help: "Check a port forward to HOST:PORT (ssh -L/-D/-W) instead of a command (with --config).") var forward: String?
    @Option(name: .customLong("remote-forward"), help: "Check a listen address HOST:PORT on the target (ssh -R) instead of a command (with --config).") var remoteForward: String?
    @Argument(parsing: .captureForPassthrough, help: "The exec string (as one argument, or words joined with spaces).") var command: [String] = []

    func validate() throws {
        // The passthrough argument swallows everything unrecognized, --help included: a command
        // to check that starts with a dash comes after `--`, so a leading --help/-h is a request for help.
        if let first = command.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
    }

    func run() throws {
        let words = command.first == "--" ? Array(command.dropFirst()) : command
        if let config { return try checkAgainstConfig(config, exec: words.joined(separator: " ")) }
        if forward != nil || remoteForward != nil { throw CLIError("--forward and --remote-forward need --config (forwards are decided by scopes)") }
        var sources = patterns
        if let patternsFile {
            sources += try readFile(patternsFile).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        let compiled = try sources.enumerated().map { i, s in
            do { return try CommandPattern(s) } catch { throw CLIError("pattern \(i + 1) \"\(s)\": \(error)") }
        }
        let exec = words.joined(separator: " ")
        switch CommandAllowlist(compiled).decide(exec) {
        case .allow(let argv, let line, let pattern):
            print("decision: allow")
            print("pattern:  \(pattern)")
            print("argv:     \(argv.map { "\"\($0.replacingOccurrences(of: "\"", with: "\\\""))\"" }.joined(separator: " "))")
            print("sent:     \(line)")
        case .deny(let refusal):
            print("decision: deny")
            print("rule:     \(refusal.code.rawValue)")
            print("reason:   \(refusal)")
            if refusal.code == .noMatchingPattern && !sources.isEmpty {
                print("allowed:"); sources.forEach { print("  \($0)") }
            }
            throw ExitCode(1)
        }
    }

    /// The same decision the server makes for an exec request: scopes, target, command.
    func checkAgainstConfig(_ path: String, exec: String) throws {
        guard let target, scopes != nil || cert != nil else { throw CLIError("--config needs --scopes (or --cert) and --target") }
        // The whole file, validated as `gatehouse serve` validates it; targets give their labels.
        let configuration: BastionConfiguration
        do { configuration = try BastionConfiguration.load(file: path) } catch { throw CLIError("\(error)") }
        let policy = configuration.policy
        var entitlement = Entitlement(scopes: scopes.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? [])
        if let cert {
            let text = try readFile(cert)
            do {
                let certificate = try SSHCertificate(openSSHLine: text.trimmingCharacters(in: .whitespacesAndNewlines))
                let permissions = try CertificatePermissions(certificate: certificate)
                // The certificate's task narrowing, compiled as the bastion compiles it at login.
                let task = try TaskNarrowing(targets: permissions.taskTargets, commands: permissions.taskCommands, maxSessions: permissions.maxSessions)
                entitlement = Entitlement(scopes: permissions.scopes, task: task)
                print("scopes:   \(permissions.scopes.joined(separator: ",")) (from \(cert), key id \"\(certificate.keyID)\")")
                if let targets = task.targets { print("task:     targets \(targets.joined(separator: ","))") }
                if let commands = task.commands { print("task:     commands \(commands.map(\.source).joined(separator: " | "))") }
            } catch { throw CLIError("\(cert): \(error)") }
        }
        var labelMap: [String: String] = configuration.targets[target]?.labels ?? [:]
        if configuration.targets[target] == nil && !configuration.targets.isEmpty {
            print("note:     target \"\(target)\" is not in \(path); the server would answer: no target named \"\(target)\" (exit status 255)")
        }
        for l in labels {
            guard let eq = l.firstIndex(of: "=") else { throw CLIError("--label \"\(l)\" is not key=value") }
            labelMap[String(l[..<eq])] = String(l[l.index(after: eq)...])
        }
        let descriptor = TargetDescriptor(name: target, labels: labelMap)
        let request: ChannelRequest
        if let spec = forward ?? remoteForward {
            guard forward == nil || remoteForward == nil else { throw CLIError("give --forward or --remote-forward, not both") }
            guard let colon = spec.lastIndex(of: ":"), let port = Int(spec[spec.index(after: colon)...]), (0...65535).contains(port) else {
                throw CLIError("\"\(spec)\" is not HOST:PORT")
            }
            var host = String(spec[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            request = forward != nil ? .forwardLocal(host: host, port: port) : .forwardRemote(host: host, port: port)
        } else {
            request = .exec(exec)
        }
        switch policy.decide(entitlement, target: descriptor, request: request) {
        case .allow(let scope, let line):
            print("decision: allow")
            print("scope:    \(scope)")
            if line == nil {
                print("note:     the certificate must also carry permit-port-forwarding")
                return
            }
            print("login:    \(policy.login(entitlement, target: descriptor) ?? configuration.targets[target]?.login ?? "(target default)")")
            print("sent:     \(line ?? "")")
        case .review(let review):
            print("decision: review (exit status 75 on the server until a person approves; then it runs once)")
            print("scope:    \(review.scope)")
            print("pattern:  \(review.pattern)")
            print("approvers: \(review.approvers.isEmpty ? "anyone but the requester" : review.approvers.joined(separator: ", "))")
            print("sent:     \(review.command)")
            throw ExitCode(3)
        case .deny(let denial):
            if case .exec = request {
                print("decision: deny (exit status \(PolicyDenial.exitStatus) on the server)")
            } else {
                print("decision: deny (the server refuses the forward and audits the reason)")
            }
            print(denial.message, terminator: "")
            throw ExitCode(1)
        }
    }
}
