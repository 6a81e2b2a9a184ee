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
}
