import Foundation
import NIOCore
import Testing

@testable import StreamCore

private typealias T = TranslateTestSupport

extension TranslateTests {
    /// The request-side JSON parser and writer (internal; reached with @testable).
    struct ParsedJSONTests {
        static func parse(_ text: String, depth: Int = 64) throws(JSONParseError) -> ParsedJSON {
            try JSONParser.parse(text, maximumNestingDepth: depth)
        }

        static func write(_ value: ParsedJSON) -> String {
            var output = JSONOutput(buffer: ByteBuffer())
            output.value(value)
            return String(buffer: output.buffer)
        }

        @Test("round-trips objects keeping key order, duplicates and number literals")
        func roundTrip() throws {
            let text = #"{"z":1,"a":[true,false,null,-0.5e+10,0,"s"],"m":{},"n":[],"z":2.50}"#
            let value = try Self.parse(text)
            #expect(Self.write(value) == text)
            #expect(value.objectValue?["z"] == .number("2.50"))  // the later duplicate wins on lookup
        }

        @Test("whitespace between tokens is accepted and dropped on output")
        func whitespace() throws {
            #expect(Self.write(try Self.parse(" \n{ \"a\" :\t[ 1 , 2 ] }\r\n")) == #"{"a":[1,2]}"#)
        }

        @Test("unescapes every JSON escape, including surrogate pairs")
        func escapes() throws {
            let value = try Self.parse(#""q\" b\\ s\/ \b\f\n\r\t \u00e9 \u2192 \ud83d\ude80""#)
            #expect(value == .string("q\" b\\ s/ \u{08}\u{0C}\n\r\t é → 🚀"))
        }

        @Test("lone surrogates become U+FFFD instead of failing")
        func loneSurrogates() throws {
            #expect(try Self.parse(#""a\ud83d b""#) == .string("a\u{FFFD} b"))
            #expect(try Self.parse(#""\ude80""#) == .string("\u{FFFD}"))
            #expect(try Self.parse(#""\ud83d\u0041""#) == .string("\u{FFFD}A"))
        }

        @Test("invalid UTF-8 is refused in plain and in escaped strings", arguments: [
            [0x80], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF],
            // Three bytes of a four-byte sequence then ASCII: the standard library's repair turns
            // them into U+FFFD, also three bytes, so only the bytes (not the length) show it.
            [0xF0, 0x9F, 0x9A], [0xE2, 0x86],
        ])
        func invalidUTF8(sequence: [UInt8]) {
            for (before, after) in [("", ""), ("ok ", " ok"), ("a\\n", "\\\"")] {
                let document = [UInt8(ascii: "\"")] + Array(before.utf8) + sequence + Array(after.utf8) + [UInt8(ascii: "\"")]
                let result: Result<ParsedJSON, JSONParseError> = document.withUnsafeBytes { bytes in
                    Result { () throws(JSONParseError) -> ParsedJSON in try JSONParser.parse(bytes, maximumNestingDepth: 4) }
                }
                #expect(throws: JSONParseError.self, "\(document)") { try result.get() }
            }
        }

        @Test("random text comes back exactly, escaped by Foundation, by our writer, or entirely as \\u escapes", arguments: 0..<8)
        func randomText(seed: UInt64) throws {
            var rng = SeededGenerator(seed: 0x7E47 &+ seed)
            let pieces = ["a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "\u{7F}", "é", "→", "日本", "🚀", "\u{FFFD}", "\u{2028}"]
            for _ in 0..<50 {
                let count = Int(rng.next() % 200)
                let text = (0..<count).map { _ in pieces[Int(rng.next() % UInt64(pieces.count))] }.joined()
                let foundation = String(decoding: try JSONSerialization.data(withJSONObject: [text]), as: UTF8.self)
                #expect(try Self.parse(foundation) == .array([.string(text)]))
                #expect(try Self.parse(Self.write(.string(text))) == .string(text))
                let allEscaped = "\"" + text.utf16.map { String(format: "\\u%04x", $0) }.joined() + "\""
                #expect(try Self.parse(allEscaped) == .string(text))
            }
        }

        @Test("the writer escapes quotes, backslashes and control characters, and keeps UTF-8 as is")
        func writerEscapes() throws {
            let original = "q\" b\\ \u{01}\u{1F}\n\t é 🚀 </script>"
            let written = Self.write(.string(original))
            #expect(written == #""q\" b\\ \u0001\u001f\n\t é 🚀 </script>""#)
            #expect(try JSONSerialization.jsonObject(with: Data(written.utf8), options: [.fragmentsAllowed]) as? String == original)
        }

        @Test(
            "rejects what RFC 8259 rejects",
            arguments: [
                "", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul",
                "\"unterminated", "\"bad \\x escape\"", "\"\\u12\"", "{\"a\" 1}", "[1 2]", "1 2", "NaN",
                "\"tab\there\"",
            ]
        )
        func rejectsInvalid(text: String) {
            #expect(throws: JSONParseError.self) { try Self.parse(text) }
        }

        @Test("numbers keep their literal; integer access accepts integral forms only")
        func numbers() throws {
            #expect(try Self.parse("12").intValue == 12)
            #expect(try Self.parse("2e3").intValue == 2000)
            #expect(try Self.parse("4.0").intValue == 4)
            #expect(try Self.parse("4.5").intValue == nil)
            #expect(try Self.parse("-0.25").doubleValue == -0.25)
            #expect(try Self.parse("1E400").intValue == nil)
        }

        @Test("nesting beyond the limit fails, at the limit succeeds")
        func depthLimit() throws {
            let atLimit = String(repeating: "[", count: 8) + String(repeating: "]", count: 8)
            #expect(throws: Never.self) { try Self.parse(atLimit, depth: 8) }
            let over = String(repeating: "{\"a\":", count: 9) + "1" + String(repeating: "}", count: 9)
            #expect(throws: JSONParseError.self) { try Self.parse(over, depth: 8) }
        }

        @Test("error offsets point at the problem")
        func errorOffset() {
            do {
                _ = try Self.parse(#"{"a":[1,2,x]}"#)
                Issue.record("expected a parse error")
            } catch {
                #expect(error.offset == 10)
            }
        }
    }
}
