import Foundation
import JSONWriting
import XCTest

/// The one JSON writer against Foundation's own: byte for byte with JSONSerialization (which the
/// audit log's canonical lines depend on) and value for value with JSONDecoder/JSONEncoder.
final class JSONWriterTests: XCTestCase {
    /// Strings that have broken JSON writers: every C0 control, DEL, quotes and backslashes,
    /// U+2028/U+2029 (line terminators to JavaScript), non-BMP scalars, slashes, combining marks.
    static let awkward: [String] = {
        var strings = [
            "", "plain", "\"", "\\", "\\\"", "/", "a/b</script>", "\u{7F}", "\u{2028}", "\u{2029}", "a\u{2028}b\u{2029}c",
            "\u{FEFF}bom", "emoji 🛡️ and 𝄞", "e\u{301}", "\u{FFFD}", "tab\there", "crlf\r\n", "nul\u{0}in the middle",
            "\u{1B}[31mred\u{1B}[0m", "日本語", "\u{85}next line", "\u{0}\u{1}\u{2}",
        ]
        strings.append(String((0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) }))
        strings.append(String(repeating: "long line with \"quotes\" and \u{2028} ", count: 40_000))   // ~1.3 MB
        return strings
    }()

    func serialization(_ value: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed]), as: UTF8.self)
    }

    func testStringsAreByteForByteWhatJSONSerializationWrites() throws {
        for s in Self.awkward {
            XCTAssertEqual(JSONWriter.quoted(s), try serialization(s), s.debugDescription.prefix(80).description)
        }
    }

    func testStringsDecodeBackToThemselvesWithJSONDecoder() throws {
        for s in Self.awkward {
            XCTAssertEqual(try JSONDecoder().decode(String.self, from: Data(JSONWriter.quoted(s).utf8)), s)
            // And JSONEncoder's output decodes to the same value (its escaping may differ: it is
            // not the audit log's canonical form).
            XCTAssertEqual(try JSONDecoder().decode(String.self, from: JSONEncoder().encode(s)), s)
        }
    }

    func testInvalidUTF8BecomesReplacementCharacters() throws {
        let bytes: [UInt8] = [0x61, 0xFF, 0xC3, 0x28, 0xE2, 0x82, 0x62, 0xED, 0xA0, 0x80, 0xF4, 0x90, 0x80, 0x80]
        var w = JSONWriter()
        w.string(utf8: bytes)
        let decoded = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(w.bytes), options: .fragmentsAllowed) as? String)
        XCTAssertEqual(decoded, String(decoding: bytes, as: UTF8.self))
        XCTAssertTrue(decoded.hasPrefix("a\u{FFFD}"))
        XCTAssertNotNil(String(validatingUTF8: w.text), "the output is valid UTF-8")
    }

    func testObjectsAndArraysMatchJSONSerialization() throws {
        var w = JSONWriter()
        w.beginObject()
        w.member("a", "x\u{2028}")
        w.member("b", 42)
        w.member("c", strings: ["1", "\u{1F}", ""])
        w.key("d"); w.beginObject(); w.endObject()
        w.key("e"); w.beginArray(); w.bool(true); w.null(); w.number(-7); w.endArray()
        w.member("f", UInt64.max)
        w.endObject()
        let expected = try serialization(["a": "x\u{2028}", "b": 42, "c": ["1", "\u{1F}", ""], "d": [String: Any](), "e": [true, NSNull(), -7] as [Any], "f": UInt64.max] as [String: Any])
        XCTAssertEqual(w.text, expected)
    }

    func testSpacedLayoutIsStillTheSameValue() throws {
        var w = JSONWriter(layout: .spaced)
        w.beginArray(); w.number(literal: "0.250000"); w.string("o"); w.string("hi\n"); w.endArray()
        XCTAssertEqual(w.text, #"[0.250000, "o", "hi\n"]"#)
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(w.bytes)) as? [Any])
        XCTAssertEqual(parsed.count, 3)
    }
}
