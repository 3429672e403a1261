import Foundation

/// A key trusted to have signed something only during the interval it was in use.
///
/// Rotation retires keys, but what they signed (session recordings above all) must stay
/// verifiable for as long as it exists. A retired key therefore stays trusted *for verification*,
/// bounded by the interval during which it was active: a signature it made is accepted only for
/// something that says it was made inside that interval. A stolen retired key cannot vouch for a
/// recording that claims to start after the key was retired.
public struct TrustedKey: Sendable, Equatable, CustomStringConvertible {
    public var key: SSHPublicKey
    /// Microseconds since the Unix epoch from which the key signed; nil when unknown (no lower bound).
    public var activeFromMicros: UInt64?
    /// Microseconds since the Unix epoch at which the key left the trusted set; nil while it is
    /// still trusted (the current keys).
    public var activeUntilMicros: UInt64?

    public init(key: SSHPublicKey, activeFromMicros: UInt64? = nil, activeUntilMicros: UInt64? = nil) {
        self.key = key
        self.activeFromMicros = activeFromMicros
        self.activeUntilMicros = activeUntilMicros
    }

    /// True for a verify-only key (no longer trusted to sign anything new).
    public var isRetired: Bool { activeUntilMicros != nil }

    /// Nil when the key may have signed at `micros`, otherwise why not (a sentence naming the interval).
    public func refusal(atMicros micros: UInt64, what: String) -> String? {
        if let from = activeFromMicros, micros < from {
            return "\(what) \(TrustedKey.format(micros)) is before the key \(key.fingerprint) became active (\(intervalText))"
        }
        if let until = activeUntilMicros, micros > until {
            return "\(what) \(TrustedKey.format(micros)) is after the key \(key.fingerprint) was retired (\(intervalText))"
        }
        return nil
    }

    /// "active from X until Y" for messages and `ca status`.
    public var intervalText: String {
        let from = activeFromMicros.map(TrustedKey.format) ?? "the beginning"
        if let until = activeUntilMicros { return "active from \(from) until \(TrustedKey.format(until))" }
        return "active since \(from)"
    }

    public var description: String { "\(key.fingerprint) \(intervalText)" }

    /// Nil when one of `keys` is `key` and held `micros` in its interval (one key can be listed
    /// more than once); otherwise why not. `.unknown` when no entry is that key at all.
    public static func check(_ key: SSHPublicKey, atMicros micros: UInt64, in keys: [TrustedKey], what: String) -> Refusal? {
        let matching = keys.filter { $0.key == key }
        guard !matching.isEmpty else { return .unknown }
        var reasons: [String] = []
        for candidate in matching {
            guard let reason = candidate.refusal(atMicros: micros, what: what) else { return nil }
            reasons.append(reason)
        }
        return .outsideInterval(reasons.joined(separator: "; "))
    }

    public enum Refusal: Sendable, Equatable {
        case unknown
        case outsideInterval(String)
    }

    // MARK: Time text

    /// RFC 3339 UTC with microseconds: the interval bounds are exact to the microsecond, as
    /// recording times are, so a bound printed and read back means the same instant.
    public static func format(_ micros: UInt64) -> String {
        // Any value a hostile header can hold prints as something, never garbage.
        var time = time_t(Int64(micros / 1_000_000))
        var parts = tm()
        guard gmtime_r(&time, &parts) != nil, parts.tm_year + 1900 <= 9999 else { return "\(micros) µs since the epoch" }
        var buffer = [CChar](repeating: 0, count: 32)
        strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
        let seconds = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let fraction = String(micros % 1_000_000)
        return seconds + "." + String(repeating: "0", count: 6 - fraction.count) + fraction + "Z"
    }

    /// Reads "YYYY-MM-DDTHH:MM:SS[.f…]Z" (what `format` writes); nil for anything else.
    public static func parseTime(_ text: String) -> UInt64? {
        let scalars = Array(text.utf8)
        guard scalars.count >= 20, scalars.last == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= scalars.count else { return nil }
            var value = 0
            for byte in scalars[range] {
                guard (0x30...0x39).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        let separators: [(Int, UInt8)] = [(4, 0x2D), (7, 0x2D), (10, 0x54), (13, 0x3A), (16, 0x3A)]
        guard separators.allSatisfy({ scalars[$0.0] == $0.1 }),
              let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var micros: UInt64 = 0
        if scalars.count > 20 {
            // ".ffffff" between the seconds and the Z: 1 to 6 digits.
            guard scalars[19] == UInt8(ascii: "."), (21...26).contains(scalars.count - 1), let digits = number(20..<(scalars.count - 1)) else { return nil }
            micros = UInt64(digits) * UInt64(pow(10.0, Double(6 - (scalars.count - 21))))
        } else if scalars[19] != UInt8(ascii: "Z") {
            return nil
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900); parts.tm_mon = Int32(month - 1); parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour); parts.tm_min = Int32(minute); parts.tm_sec = Int32(second)
        let epoch = timegm(&parts)
        guard epoch >= 0 else { return nil }
        return UInt64(epoch) * 1_000_000 + micros
    }
}
