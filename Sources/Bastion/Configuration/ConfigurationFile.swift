import ConfigurationSupport
import Masking
import Foundation
import Policy
import SSHCertificates
import Yams

extension BastionConfiguration {
    /// Sections other components parse from the same file (the issuance service, the state
    /// store); the bastion accepts them so one file configures everything.
    public static let foreignSections: Set<String> = ["issuance", "recording", "store", "recordings_store"]

    /// Reads and validates a configuration file; every mistake names the file, line and key.
    public static func load(file: String) throws -> BastionConfiguration {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError(file: file, line: 0, column: 0, key: "(file)", message: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: file, line: 0, column: 0, key: "(file)", message: "is not UTF-8 text")
        }
        var configuration = try parse(yaml: text, file: file)
        configuration.sourceFile = file
        return configuration
    }

    public static func parse(yaml: String, file: String) throws -> BastionConfiguration {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch {
            throw ConfigurationError(file: file, line: 1, column: 1, key: "(document)", message: "not valid YAML: \(error)")
        }
        var c = BastionConfiguration()
        guard let root else { return c }
        let r = YAMLReader(file: file)
        let top = try r.mapping(root, "(document)")
        try r.onlyKeys(top, Set(["listen", "state", "host_keys", "recordings", "log", "limits", "algorithms", "targets", "scopes", "approvals", "masking"]).union(foreignSections), "")
        if let listen = r.node(top, "listen") {
            c.listen = try r.sequence(listen, "listen").enumerated().map { i, item in
                let text = try r.string(item, "listen[\(i)]")
                guard let address = ListenAddress(text) else { throw r.error(item, "listen[\(i)]", "\"\(text)\" is not host:port or [v6]:port") }
                return address
            }
            if c.listen.isEmpty { throw r.error(listen, "listen", "needs at least one address") }
        }
        c.stateDirectory = try r.optionalString(top, "state", "") ?? c.stateDirectory
        c.hostKeyDirectory = try r.optionalString(top, "host_keys", "") ?? c.hostKeyDirectory
        c.recordingDirectory = try r.optionalString(top, "recordings", "") ?? c.recordingDirectory
        if let log = r.node(top, "log") {
            let m = try r.mapping(log, "log")
            try r.onlyKeys(m, ["format", "level"], "log")
            if let f = r.node(m, "format") {
                let text = try r.string(f, "log.format")
                guard let format = LogSettings.Format(rawValue: text) else { throw r.error(f, "log.format", "must be text or json") }
                c.log.format = format
            }
            if let l = r.node(m, "level") {
                let text = try r.string(l, "log.level")
                guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(text) else {
                    throw r.error(l, "log.level", "must be one of trace, debug, info, notice, warning, error, critical")
                }
                c.log.level = text
            }
        }
        if let limits = r.node(top, "limits") {
            let m = try r.mapping(limits, "limits")
            try r.onlyKeys(m, ["login_grace", "max_unauthenticated", "keepalive", "target_connect_timeout", "target_certificate_lifetime", "max_forwards",
                               "max_sessions", "idle_connection", "max_unauthenticated_per_source", "early_drop_start", "max_queued",
                               "penalties"], "limits")
            c.limits.loginGraceSeconds = try r.duration(m, "login_grace", "limits") ?? c.limits.loginGraceSeconds
            c.limits.maxUnauthenticated = try r.int(m, "max_unauthenticated", "limits", in: 1...100_000) ?? c.limits.maxUnauthenticated
            if let n = r.node(m, "keepalive"), n.string == "off" { c.limits.keepaliveSeconds = 0 } else {
                c.limits.keepaliveSeconds = try r.duration(m, "keepalive", "limits") ?? c.limits.keepaliveSeconds
            }
            c.limits.targetConnectTimeoutSeconds = try r.duration(m, "target_connect_timeout", "limits") ?? c.limits.targetConnectTimeoutSeconds
            c.limits.targetCertificateSeconds = try r.duration(m, "target_certificate_lifetime", "limits") ?? c.limits.targetCertificateSeconds
            c.limits.maxForwards = try r.int(m, "max_forwards", "limits", in: 0...10_000) ?? c.limits.maxForwards
            c.limits.maxSessions = try r.int(m, "max_sessions", "limits", in: 1...1_000) ?? c.limits.maxSessions
            c.limits.idleConnectionSeconds = try r.duration(m, "idle_connection", "limits") ?? c.limits.idleConnectionSeconds
            c.limits.maxUnauthenticatedPerSource = try r.int(m, "max_unauthenticated_per_source", "limits", in: 1...100_000) ?? c.limits.maxUnauthenticatedPerSource
            c.limits.earlyDropStart = try r.int(m, "early_drop_start", "limits", in: 1...100_000) ?? c.limits.earlyDropStart
            c.limits.maxQueued = try r.int(m, "max_queued", "limits", in: 0...100_000) ?? c.limits.maxQueued
            if let penalties = r.node(m, "penalties") {
                let p = try r.mapping(penalties, "limits.penalties")
                try r.onlyKeys(p, ["handshake_failed", "login_grace_exceeded", "authentication_failed", "disconnected", "min", "max", "exempt"], "limits.penalties")
                var s = c.limits.penalties
                s.handshakeFailed = try r.duration(p, "handshake_failed", "limits.penalties") ?? s.handshakeFailed
                s.graceExceeded = try r.duration(p, "login_grace_exceeded", "limits.penalties") ?? s.graceExceeded
                s.authenticationFailed = try r.duration(p, "authentication_failed", "limits.penalties") ?? s.authenticationFailed
                s.disconnected = try r.duration(p, "disconnected", "limits.penalties") ?? s.disconnected
                s.minimum = try r.duration(p, "min", "limits.penalties") ?? s.minimum
                s.maximum = try r.duration(p, "max", "limits.penalties") ?? s.maximum
                if let exempt = r.node(p, "exempt") {
                    var blocks: [CIDRBlock] = []
                    for text in try r.strings(p, "exempt", "limits.penalties") {
                        do { blocks.append(try CIDRBlock(text)) } catch { throw r.error(exempt, "limits.penalties.exempt", "\"\(text)\": \(error)") }
                    }
                    s.exempt = blocks
                }
                c.limits.penalties = s
            }
            if c.limits.earlyDropStart > c.limits.maxUnauthenticated, let n = r.node(m, "early_drop_start") {
                throw r.error(n, "limits.early_drop_start", "must not exceed max_unauthenticated (\(c.limits.maxUnauthenticated))")
            }
        }
        if let algorithms = r.node(top, "algorithms") {
            let m = try r.mapping(algorithms, "algorithms")
            try r.onlyKeys(m, ["kex", "ciphers", "macs", "host_keys"], "algorithms")
            func list(_ key: String, _ allowed: Set<String>, _ current: [String]) throws -> [String] {
                let values = try r.strings(m, key, "algorithms")
                guard !values.isEmpty else { return current }
                for v in values where !allowed.contains(v) {
                    throw r.error(r.node(m, key)!, "algorithms.\(key)", "\"\(v)\" is not supported (supported: \(allowed.sorted().joined(separator: ", ")))")
                }
                return values
            }
            let d = AlgorithmSettings()
            c.algorithms.keyExchange = try list("kex", Set(d.keyExchange + ["diffie-hellman-group14-sha256"]), d.keyExchange)
            c.algorithms.ciphers = try list("ciphers", Set(d.ciphers + ["aes192-ctr"]), d.ciphers)
            c.algorithms.macs = try list("macs", Set(d.macs), d.macs)
            c.algorithms.hostKeys = try list("host_keys", Set(d.hostKeys), d.hostKeys)
        }
        if let approvals = r.node(top, "approvals") {
            let m = try r.mapping(approvals, "approvals")
            try r.onlyKeys(m, ["webhook_url", "webhook_secret_file"], "approvals")
            c.approvals.webhookURL = try r.optionalString(m, "webhook_url", "approvals")
            c.approvals.webhookSecretFile = try r.optionalString(m, "webhook_secret_file", "approvals")
            if let url = c.approvals.webhookURL {
                guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
                    throw r.error(r.node(m, "webhook_url")!, "approvals.webhook_url", "\"\(url)\" is not an http(s) URL")
                }
                guard let secret = c.approvals.webhookSecretFile else {
                    throw r.error(r.node(m, "webhook_url")!, "approvals.webhook_url", "needs webhook_secret_file: every notification is signed")
                }
                guard let bytes = FileManager.default.contents(atPath: secret), bytes.count >= 16 else {
                    throw r.error(r.node(m, "webhook_secret_file")!, "approvals.webhook_secret_file", "\(secret) cannot be read or holds fewer than 16 bytes")
                }
            }
        }
        if let targets = r.node(top, "targets") {
            for (keyNode, value) in try r.mapping(targets, "targets") {
                let name = try r.string(keyNode, "targets")
                guard TargetName.isValid(name) else {
                    throw r.error(keyNode, "targets.\(name)", "is not a valid target name (letters, digits, -_., at most 64, as an SSH user name)")
                }
                guard c.targets[name] == nil else { throw r.error(keyNode, "targets.\(name)", "duplicate target") }
                guard name != "gatehouse" else {
                    throw r.error(keyNode, "targets.\(name)", "is reserved: `ssh gatehouse@BASTION -- approval wait ID` reaches the bastion itself")
                }
                c.targets[name] = try parseTarget(name: name, node: value, reader: r)
            }
        }
        if let scopes = r.node(top, "scopes") {
            c.policy = try PolicySet.parse(node: scopes, file: file)
            // A file without a targets section is a policy-only file (`policy check --config`):
            // there is nothing to check names against.
            if r.node(top, "targets") != nil { try checkScopeTargets(scopes, targets: Set(c.targets.keys), reader: r) }
        }
        let masking = try r.node(top, "masking").map { try MaskingConfiguration.parse(node: $0, file: file) } ?? MaskingConfiguration()
        c.masking = try MaskingSettings.compile(global: masking, policy: c.policy, file: file)
        return c
    }

    static func parseTarget(name: String, node: Node, reader r: YAMLReader) throws -> TargetConfiguration {
        let path = "targets.\(name)"
        let m = try r.mapping(node, path)
        try r.onlyKeys(m, ["address", "port", "login", "labels", "host_key", "known_hosts", "known_hosts_name", "host_ca", "host_ca_principal"], path)
        guard let address = try r.optionalString(m, "address", path), !address.isEmpty else {
            throw ConfigurationError(file: r.file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0, key: "\(path).address", message: "is required")
        }
        let port = try r.int(m, "port", path, in: 1...65535) ?? 22
        guard let login = try r.optionalString(m, "login", path), !login.isEmpty else {
            throw ConfigurationError(file: r.file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0, key: "\(path).login", message: "is required")
        }
        var labels: [String: String] = [:]
        if let l = r.node(m, "labels") {
            for (k, v) in try r.mapping(l, "\(path).labels") { labels[try r.string(k, "\(path).labels")] = try r.string(v, "\(path).labels") }
        }
        let methods = ["host_key", "known_hosts", "host_ca"].filter { r.node(m, $0) != nil }
        guard methods.count == 1 else {
            throw ConfigurationError(file: r.file, line: node.mark?.line ?? 0, column: node.mark?.column ?? 0, key: path,
                                     message: methods.isEmpty ? "needs one of host_key, known_hosts or host_ca: a target's host key is always verified"
                                                              : "give only one of host_key, known_hosts, host_ca (found \(methods.joined(separator: ", ")))")
        }
        func keys(_ key: String) throws -> [SSHPublicKey] {
            let n = r.node(m, key)!
            let lines = n.sequence != nil ? try r.strings(m, key, path) : [try r.string(n, "\(path).\(key)")]
            return try lines.map { line in
                do { return try SSHPublicKey(openSSHLine: line) } catch { throw r.error(n, "\(path).\(key)", "is not an OpenSSH public key line: \(error)") }
            }
        }
        let check: HostKeyCheck
        switch methods[0] {
        case "host_key": check = .pinned(try keys("host_key"))
        case "known_hosts":
            let file = try r.optionalString(m, "known_hosts", path)!
            check = .knownHosts(path: file, hostName: try r.optionalString(m, "known_hosts_name", path))
        default:
            let n = r.node(m, "host_ca")!
            let principal = try r.optionalString(m, "host_ca_principal", path)
            if n.bool == true { check = .hostCA(keys: nil, principal: principal) } else { check = .hostCA(keys: try keys("host_ca"), principal: principal) }
        }
        return TargetConfiguration(name: name, address: address, port: port, login: login, labels: labels, hostKey: check)
    }
}

/// Target names travel as SSH user names; keep them to characters no shell or log can misread.
public enum TargetName {
    public static func isValid(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), let first = name.first, first.isASCII, first.isLetter || first.isNumber else { return false }
        return name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }
}
