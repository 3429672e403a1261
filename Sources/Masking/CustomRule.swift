import Foundation

/// A site's own rule from the configuration: keywords (the prefilter, always required), then
/// either a regular expression tried at each keyword or a value shape right after it.
public struct CustomRule: Sendable {
    public enum Charset: String, Sendable, CaseIterable {
        case alphanumeric, base64, base64url, hex, digits, upper, lower, visible

        var byteClass: ByteClass {
            switch self {
            case .alphanumeric: return .alphanumeric
            case .base64: return ByteClass.base64.union(.equals)
            case .base64url: return .base64URL
            case .hex: return [.digit, .hexLetter]
            case .digits: return .digit
            case .upper: return [.upper, .digit]
            case .lower: return [.lower, .digit]
            case .visible: return .visible
            }
        }
    }

    public struct Shape: Sendable {
        public let charset: Charset
        public let length: ClosedRange<Int>
        public let minEntropy: Double?
        /// Mask the keyword too (a token prefix) or only the value after it (a key).
        public let maskKeyword: Bool

        public init(charset: Charset, length: ClosedRange<Int>, minEntropy: Double? = nil, maskKeyword: Bool = true) {
            self.charset = charset
            self.length = length
            self.minEntropy = minEntropy
            self.maskKeyword = maskKeyword
        }
    }

    public enum Matcher: Sendable {
        /// Tried anchored at each keyword; a group named `secret` narrows the mask to it.
        case regex(RegexBox)
        case shape(Shape)
    }

    public let name: String
    public let keywords: [String]
    public let caseInsensitive: Bool
    public let matcher: Matcher

    public init(name: String, keywords: [String], caseInsensitive: Bool = false, matcher: Matcher) {
        self.name = name
        self.keywords = keywords
        self.caseInsensitive = caseInsensitive
        self.matcher = matcher
    }
}

/// NSRegularExpression is immutable once made and safe to share between threads.
public final class RegexBox: @unchecked Sendable {
    let regex: NSRegularExpression
    let hasSecretGroup: Bool

    public init(_ pattern: String) throws {
        regex = try NSRegularExpression(pattern: pattern)
        hasSecretGroup = pattern.contains("(?<secret>") || pattern.contains("(?P<secret>")
    }
}

/// Runs the custom rules. Regular expressions run only at keyword hits, on at most 1 KiB of
/// ASCII after the keyword, never over the whole stream.
struct CustomRuleDetector: Detector {
    let rules: [CustomRule]
    let keywords: [Keyword]
    let owners: [Int]

    init(rules: [CustomRule]) {
        self.rules = rules
        var keywords: [Keyword] = [], owners: [Int] = []
        for (r, rule) in rules.enumerated() {
            for keyword in rule.keywords {
                keywords.append(Keyword(keyword, caseInsensitive: rule.caseInsensitive))
                owners.append(r)
            }
        }
        self.keywords = keywords
        self.owners = owners
    }

    var ruleNames: [String] { rules.map(\.name) }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules enabled: EnabledRules) -> DetectorMatch? {
        let rule = rules[owners[keyword]]
        guard enabled.contains(rule.name) else { return nil }
        let keywordEnd = keywordStart + keywords[keyword].bytes.count
        switch rule.matcher {
        case .shape(let shape):
            if let first = keywords[keyword].bytes.first, ByteClass.byte(first, isIn: .alphanumeric),
               let before = w.byte(keywordStart - 1), ByteClass.byte(before, isIn: .alphanumeric) { return nil }
            let end = w.skip(shape.charset.byteClass, from: keywordEnd, limit: keywordEnd + shape.length.upperBound + 1)
            guard shape.length.contains(end - keywordEnd) else { return nil }
            if let minEntropy = shape.minEntropy, Entropy.bitsPerByte(w, keywordEnd..<end) < minEntropy { return nil }
            return DetectorMatch(ranges: [FoundRange(start: shape.maskKeyword ? keywordStart : keywordEnd, end: end, rule: rule.name)])
        case .regex(let box):
            var end = keywordStart
            while end < w.upper, end - keywordStart < 1024, w[end] != 0, w[end] < 0x80 { end += 1 }
            let text = String(decoding: UnsafeBufferPointer(start: w.base + keywordStart, count: end - keywordStart), as: UTF8.self)
            // ASCII only, so UTF-16 offsets are byte offsets.
            guard let found = box.regex.firstMatch(in: text, options: [.anchored], range: NSRange(location: 0, length: text.utf16.count)) else { return nil }
            let range = box.hasSecretGroup ? found.range(withName: "secret") : found.range
            guard range.location != NSNotFound, range.length > 0 else { return nil }
            return DetectorMatch(ranges: [FoundRange(start: keywordStart + range.location, end: keywordStart + range.location + range.length, rule: rule.name)])
        }
    }
}
