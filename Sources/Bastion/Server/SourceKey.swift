import Foundation

/// Who a connection counts against: its IPv4 address, or the /64 of its IPv6 address (one host
/// or site is usually given a whole /64, so per-address limits alone would not bind it).
struct SourceKey: Hashable, Sendable, CustomStringConvertible {
    let text: String

    init(address: String) {
        var v6 = in6_addr()
        if address.contains(":"), inet_pton(AF_INET6, address, &v6) == 1 {
            let groups = withUnsafeBytes(of: &v6) { raw in (0..<4).map { UInt16(raw[$0 * 2]) << 8 | UInt16(raw[$0 * 2 + 1]) } }
            text = groups.map { String($0, radix: 16) }.joined(separator: ":") + "::/64"
        } else {
            text = address
        }
    }

    var description: String { text }
}
