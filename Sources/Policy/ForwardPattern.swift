import Foundation

/// One `host:port` a scope lets an agent forward to (`forwards`, for `-L`, `-D` and `-W`) or
/// ask the target to listen on (`remote_forwards`, for `-R`).
///
/// The host is compared as text, case-insensitively: `localhost` and `127.0.0.1` are different
/// destinations, exactly as the target's sshd receives them. It may be a glob (`db-*.internal`);
/// an IPv6 address is written in brackets (`[::1]:5432`). The port is a number, a range
/// (`8000-8099`) or `*`. Nothing is resolved here: the target's sshd connects or listens.
public struct ForwardPattern: Sendable, Equatable, CustomStringConvertible {
    public let host: String
    public let ports: ClosedRange<Int>
    public let source: String

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case missingPort(String)
        case badPort(String)
        case emptyHost
        case badHost(String)

        public var description: String {
            switch self {
            case .missingPort(let s): return "\"\(s)\" has no port: write host:port (a number, a range such as 8000-8099, or *)"
            case .badPort(let p): return "port \"\(p)\" is not a number from 0 to 65535, a range low-high, or *"
            case .emptyHost: return "the host is empty"
            case .badHost(let h): return "host \"\(h)\" contains characters a host name or address never has"
            }
        }
    }

    public init(_ text: String) throws(ParseError) {
        source = text
        let hostPart: Substring, portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { throw .missingPort(text) }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { throw .missingPort(text) }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") { throw .badHost(String(hostPart) + " (write an IPv6 address in brackets)") }
        }
        guard !hostPart.isEmpty else { throw .emptyHost }
        guard hostPart.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._*?:".contains($0)) }) else { throw .badHost(String(hostPart)) }
        host = hostPart.lowercased()
        ports = try Self.ports(String(portPart))
    }

    private static func ports(_ text: String) throws(ParseError) -> ClosedRange<Int> {
        if text == "*" { return 0...65535 }
        func number(_ s: Substring) throws(ParseError) -> Int {
            guard !s.isEmpty, s.count <= 5, s.allSatisfy(\.isASCII), s.allSatisfy(\.isNumber), let n = Int(s), n <= 65535 else { throw .badPort(text) }
            return n
        }
        let parts = text.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        let low = try number(parts[0])
        let high = parts.count == 2 ? try number(parts[1]) : low
        guard low <= high else { throw .badPort(text) }
        return low...high
    }

    /// Whether a forwarding request for `host`:`port`, exactly as the client sent it, is covered.
    public func matches(host requested: String, port: Int) -> Bool {
        ports.contains(port) && fnmatch(host, requested.lowercased(), 0) == 0
    }

    public var description: String { source }
}
