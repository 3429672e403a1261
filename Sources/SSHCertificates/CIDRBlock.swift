import Foundation

/// An IPv4 or IPv6 network (`192.0.2.0/24`, `2001:db8::/32`, or a bare address), as used by the
/// `source-address` critical option. Parsing is strict: host bits set below the prefix are
/// refused, as OpenSSH's addr_pton_cidr does.
public struct CIDRBlock: Sendable, Equatable, CustomStringConvertible {
    public let address: [UInt8]   // 4 or 16 bytes
    public let prefixLength: Int

    public enum ParseError: Error, Sendable, CustomStringConvertible, Equatable {
        case invalid(String)
        case hostBitsSet(String)
        case empty

        public var description: String {
            switch self {
            case .invalid(let s): return "\"\(s)\" is not an address or CIDR block"
            case .hostBitsSet(let s): return "\"\(s)\" has bits set beyond its prefix length"
            case .empty: return "the address list is empty"
            }
        }
    }

    public init(_ text: String) throws(ParseError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = Self.parseAddress(String(parts[0])) else { throw .invalid(text) }
        let maxPrefix = address.count * 8
        var prefix = maxPrefix
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...maxPrefix).contains(p), parts[1].allSatisfy(\.isNumber) else { throw .invalid(text) }
            prefix = p
        }
        guard Self.masked(address, prefix) == address else { throw .hostBitsSet(text) }
        self.address = address
        self.prefixLength = prefix
    }

    /// A comma-separated list, as in `source-address=10.0.0.0/8,::1`.
    public static func parseList(_ text: String) throws(ParseError) -> [CIDRBlock] {
        let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !items.isEmpty else { throw .empty }
        var blocks: [CIDRBlock] = []
        for item in items { blocks.append(try CIDRBlock(item)) }
        return blocks
    }

    /// Whether `peer` (textual IPv4 or IPv6, IPv4-mapped IPv6 included) lies in this block.
    public func contains(_ peer: String) -> Bool {
        guard var bytes = Self.parseAddress(peer) else { return false }
        // A v4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        if bytes.count == 16, address.count == 4, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            bytes = Array(bytes[12...])
        }
        guard bytes.count == address.count else { return false }
        return Self.masked(bytes, prefixLength) == address
    }

    public var description: String {
        let text: String
        if address.count == 4 {
            text = address.map(String.init).joined(separator: ".")
        } else {
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            var raw = in6_addr()
            withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: address) }
            inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count))
            text = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return prefixLength == address.count * 8 ? text : "\(text)/\(prefixLength)"
    }

    static func parseAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    static func masked(_ bytes: [UInt8], _ prefix: Int) -> [UInt8] {
        bytes.enumerated().map { i, b in
            let bitsHere = max(0, min(8, prefix - i * 8))
            return bitsHere == 8 ? b : b & UInt8(truncatingIfNeeded: 0xff << (8 - bitsHere))
        }
    }
}
