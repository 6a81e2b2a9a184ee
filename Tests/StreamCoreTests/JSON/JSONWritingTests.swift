import Foundation
import NIOCore
import Testing

@testable import StreamCore

struct JSONWritingTests {
    @Test("writeJSONString round-trips every control character, quotes, backslashes and non-ASCII", arguments: [
        "", "plain", "\"", "\\", "a\"b\\c", "line\nbreak\r\ttab\u{8}\u{C}", String((0..<32).map { Character(Unicode.Scalar(UInt8($0))) }),
        "é ✓ 日本語 🚀 \u{2028}\u{2029}", String(repeating: "x", count: 1000) + "\"" + String(repeating: "y", count: 7),
    ])
    func roundTrip(text: String) throws {
        var buffer = ByteBuffer()
        buffer.writeStaticString("[")
        buffer.writeJSONString(text)
        buffer.writeStaticString("]")
        let decoded = try JSONDecoder().decode([String].self, from: Data(buffer.readableBytesView))
        #expect(decoded == [text])
    }

    @Test("special bytes are found at every position of a word")
    func specialBytesEverywhere() {
        for special in [UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x00, 0x1F] {
            for position in 0..<20 {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: 20)
                bytes[position] = special
                // Bytes at and above 0x80 (UTF-8) and 0x20…0x7F other than `"` and `\` are never special.
                bytes[(position + 3) % 20] = 0xE9
                let found = bytes.withUnsafeBytes { JSONSpecialBytes.first(in: $0, from: 0) }
                #expect(found == position, "special \(special) at \(position)")
            }
        }
        let none = Array("abcdefghijklmnopqrstuvwxyz é ✓ ~!@#$%^&*()".utf8)
        #expect(none.withUnsafeBytes { JSONSpecialBytes.first(in: $0, from: 0) } == none.count)
    }

    @Test("the 16-byte scan finds what a byte loop finds, from every start, at every length and position")
    func specialBytesAgainstByteLoop() async {
        // Every kind of byte near the boundaries the vector compare must get right: 0x1F/0x20
        // (control or not), 0x21/0x22/0x23 around the quote, 0x5B/0x5C/0x5D around the backslash,
        // 0x7F/0x80/0xFF (unsigned compare), and plain letters.
        let alphabet: [UInt8] = [0x00, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7F, 0x80, 0xFF]
            + Array(repeating: UInt8(ascii: "a"), count: 24)
        var rng = SeededGenerator(seed: 0x5CA7)
        for length in 0..<72 {
            await Task.yield()  // seconds of work in a debug build: see `decodeStream`
            for _ in 0..<40 {
                let bytes = (0..<length).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
                for start in 0...length {
                    let expected = bytes[start...].firstIndex { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 } ?? length
                    let found = bytes.withUnsafeBytes { JSONSpecialBytes.first(in: $0, from: start) }
                    #expect(found == expected, "\(bytes) from \(start)")
                }
            }
        }
    }
}
