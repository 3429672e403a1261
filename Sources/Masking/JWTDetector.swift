/// JSON Web Tokens: `header.payload.signature`, each base64url, the header a JSON object that
/// names an algorithm or a type. The header is decoded and checked, so base64 of any other JSON
/// (which also starts `eyJ`) is not taken for a token.
struct JWTDetector: Detector {
    static let rule = "jwt"
    let keywords = [Keyword("eyJ", anchorOffset: 1)]
    var ruleNames: [String] { [Self.rule] }

    func quickCheck(_ w: ByteWindow, keywordStart: Int, keyword: Int) -> QuickVerdict {
        if let before = w.byte(keywordStart - 1), ByteClass.byte(before, isIn: ByteClass.base64URL.union(.dot)) { return .reject }
        return .candidate
    }

    func match(_ w: ByteWindow, keywordStart: Int, keyword: Int, rules: EnabledRules) -> DetectorMatch? {
        guard rules.contains(Self.rule), quickCheck(w, keywordStart: keywordStart, keyword: keyword) == .candidate,
              let end = Self.tokenEnd(w, at: keywordStart) else { return nil }
        return DetectorMatch(ranges: [FoundRange(start: keywordStart, end: end, rule: Self.rule)])
    }

    /// The end of a JWT starting at `start`, if one does.
    static func tokenEnd(_ w: ByteWindow, at start: Int) -> Int? {
        let headerEnd = w.skip(.base64URL, from: start, limit: start + 2048)
        guard headerEnd - start >= 12, w.byte(headerEnd) == UInt8(ascii: "."), headerLooksLikeJOSE(w, start..<headerEnd) else { return nil }
        let payloadEnd = w.skip(.base64URL, from: headerEnd + 1)
        guard payloadEnd - headerEnd - 1 >= 8 else { return nil }
        // An unsecured token has an empty signature; the dot still belongs to it.
        guard w.byte(payloadEnd) == UInt8(ascii: ".") else { return nil }
        let signatureEnd = w.skip(.base64URL, from: payloadEnd + 1)
        if let after = w.byte(signatureEnd), ByteClass.byte(after, isIn: .alphanumeric) { return nil }
        return signatureEnd
    }

    /// Decodes the header and looks for `"alg"` or `"typ"` near its start.
    static func headerLooksLikeJOSE(_ w: ByteWindow, _ range: Range<Int>) -> Bool {
        var decoded: [UInt8] = []
        decoded.reserveCapacity(range.count * 3 / 4)
        var accumulator: UInt32 = 0, bits = 0
        for i in range {
            guard let value = base64URLValue(w[i]) else { return false }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                decoded.append(UInt8((accumulator >> UInt32(bits)) & 0xFF))
            }
        }
        guard decoded.first == UInt8(ascii: "{") else { return false }
        let text = String(decoding: decoded, as: UTF8.self)
        return text.hasBytes("\"alg\"") || text.hasBytes("\"typ\"") || text.hasBytes("\"kid\"")
    }

    static func base64URLValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return b - 65
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return b - 97 + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - 48 + 52
        case UInt8(ascii: "-"), UInt8(ascii: "+"): return 62
        case UInt8(ascii: "_"), UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
