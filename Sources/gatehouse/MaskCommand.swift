import ArgumentParser
import Bastion
import Foundation
import Masking

extension MaskingMode: ExpressibleByArgument {}

/// `gatehouse mask [--mode marker|same-width] [--rules FILE] [FILE]`: what an output would look
/// like to the agent, and how many masks each rule made (on standard error), for tuning rules.
/// The input goes through the same masker the bastion runs, in the pump's 32 KiB reads.
struct MaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mask", abstract: "Show what an output would look like to the agent after masking, with counts per rule.")

    @Option(help: "marker ([masked:rule], exec streams), same-width (one * per character, pty sessions) or same-length (one * per byte, sftp and scp).") var mode: MaskingMode = .marker
    @Option(help: "A YAML file with a masking: section (rules, exclude, custom), or a configuration file holding one.") var rules: String?
    @Option(help: "With --rules naming a Gatehouse configuration file: the rules a session allowed by this scope gets (its own masking: selection).")
    var scope: String?
    @Flag(name: .customLong("list-rules"), help: "List the built-in rules and what each catches, then exit.") var listRules = false
    @Option(name: .customLong("chunk-size"), help: "Bytes per read fed to the masker (the bastion's pump reads up to 32768).") var chunkSize = 32768
    @Argument(help: "The output to mask (default: standard input).") var file: String?

    func run() throws {
        if listRules {
            for rule in BuiltinRules.catalogue { print("\(rule.name.padding(toLength: 26, withPad: " ", startingAt: 0)) \(rule.catches)") }
            return
        }
        guard (1...(1 << 20)).contains(chunkSize) else { throw CLIError("--chunk-size must be between 1 and 1048576") }
        var ruleSet = MaskingRules.builtin
        if let scope {
            guard let rules else { throw CLIError("--scope needs --rules naming the configuration file that defines the scope") }
            let configuration: BastionConfiguration
            do { configuration = try BastionConfiguration.load(file: rules) } catch { throw CLIError("\(error)") }
            guard configuration.policy.scopes[scope] != nil else {
                throw CLIError("\(rules) has no scope \"\(scope)\" (scopes: \(configuration.policy.scopes.keys.sorted().joined(separator: ", ")))")
            }
            guard let selected = configuration.masking.rules(forScope: scope) else {
                throw CLIError("sessions allowed by scope \"\(scope)\" are not masked (masking is off for it): the agent sees the output as it is")
            }
            ruleSet = selected
        } else if let rules {
            do { ruleSet = try MaskingConfiguration.parse(yaml: try readFile(rules), file: rules).rules } catch let error as CLIError { throw error } catch { throw CLIError("\(error)") }
        }
        let input: Int32
        if let file {
            input = open(file, O_RDONLY)
            guard input >= 0 else { throw CLIError("cannot open \(file): \(String(cString: strerror(errno)))") }
        } else {
            input = 0
        }
        defer { if input != 0 { close(input) } }

        var masker = StreamMasker(rules: ruleSet, mode: mode)
        var counts: [String: Int] = [:]
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        var output = MaskedOutput()
        var total = 0
        var cpu: Double = 0
        func emit() throws {
            for record in output.masks { counts[record.rule, default: 0] += 1 }
            try writeAll(output.bytes)
            output.bytes.removeAll(keepingCapacity: true)
            output.masks.removeAll(keepingCapacity: true)
        }
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, chunkSize) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw CLIError("read failed: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            total += n
            let started = DispatchTime.now().uptimeNanoseconds
            buffer.withUnsafeBytes { masker.feed(UnsafeRawBufferPointer(rebasing: $0[0..<n]), into: &output) }
            cpu += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            try emit()
        }
        masker.flush(into: &output)
        try emit()
        let summary = counts.sorted { $0.key < $1.key }.map { "\($0.key.padding(toLength: 26, withPad: " ", startingAt: 0)) \($0.value)" }
        let rate = cpu > 0 ? String(format: "%.0f MB/s", Double(total) / cpu / 1e6) : "-"
        FileHandle.standardError.write(Data(((summary.isEmpty ? ["no masks"] : summary) + ["\(total) bytes, \(counts.values.reduce(0, +)) masks, masking \(rate)"])
            .joined(separator: "\n").appending("\n").utf8))
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(1, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CLIError("write failed: \(String(cString: strerror(errno)))") }
            offset += n
        }
    }
}
