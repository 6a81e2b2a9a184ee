import Testing

@testable import StreamCore

/// `JSONScanner.readString` finds a string's end and checks its escapes in one vector pass
/// (CJSONScan's `sluice_json_string_end`); these compare it with a byte-at-a-time reading of the
/// JSON grammar on strings built to put escapes, quotes and bad bytes at every block boundary.
struct JSONStringScanTests {
    /// The grammar, one byte at a time: the closing quote's index, or the failure offset the scanner
    /// reports (a control byte, a bad escape's backslash, or the end when the string is not closed).
    static func reference(_ bytes: [UInt8], from start: Int) -> Result<Int, JSONScanner.Failure> {
        var index = start
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") { return .success(index) }
            if byte < 0x20 { return .failure(.init(offset: index)) }
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { return .failure(.init(offset: index)) }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    let hex = Array("0123456789abcdefABCDEF".utf8)
                    guard index + 6 <= bytes.count, bytes[(index + 2)..<(index + 6)].allSatisfy(hex.contains) else {
                        return .failure(.init(offset: index))
                    }
                    index += 6
                default:
                    return .failure(.init(offset: index))
                }
                continue
            }
            index += 1
        }
        return .failure(.init(offset: bytes.count))
    }

    static func scanned(_ bytes: [UInt8]) -> Result<Int, JSONScanner.Failure> {
        bytes.withUnsafeBytes { raw in
            var scanner = JSONScanner(raw)
            do throws(JSONScanner.Failure) {
                let range = try scanner.readString()
                #expect(scanner.index == range.upperBound + 1)
                return .success(range.upperBound)
            } catch {
                #expect(scanner.index == error.offset)
                return .failure(error)
            }
        }
    }

    @Test("every piece at every offset of strings 0–40 bytes long, inside buffers shorter and longer than a block")
    func piecesEverywhere() {
        let pieces: [[UInt8]] = [
            Array(#"\""#.utf8), Array(#"\\"#.utf8), Array(#"\n"#.utf8), Array(#"\/"#.utf8), Array(#"\u00e9"#.utf8),
            Array(#"\uD83D\uDE80"#.utf8), Array(#"""#.utf8), [0x01], [0x1F], Array(#"\q"#.utf8), Array(#"\u12G4"#.utf8),
            Array(#"\u12"#.utf8), Array(#"\"#.utf8), [0xC3, 0xA9], [0x7F],
        ]
        var checked = 0
        for length in [0, 1, 7, 14, 15, 16, 17, 30, 31, 32, 33, 40] {
            for piece in pieces {
                for offset in 0...length {
                    for tail in [[UInt8](), Array(#""}"#.utf8), Array(#"","p":"abcdefghijklmnop"}"#.utf8)] {
                        var text = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                        text.insert(contentsOf: piece, at: offset)
                        let bytes = [UInt8(ascii: "\"")] + text + tail
                        #expect(Self.scanned(bytes) == Self.reference(bytes, from: 1), "\(String(decoding: bytes, as: UTF8.self))")
                        checked += 1
                    }
                }
            }
        }
        #expect(checked > 5_000)
    }

    @Test("random strings of escapes, quotes and control bytes read as the grammar says")
    func randomStrings() {
        var rng = SeededGenerator(seed: 0x5EED)
        func next(_ bound: Int) -> Int { Int.random(in: 0..<bound, using: &rng) }
        // Mostly plain bytes, so that strings often run past several blocks before their first special.
        let alphabet = Array(#"\\\"un0aF/ "#.utf8) + [0x00, 0x1F, 0x80, 0xFF] + Array(repeating: UInt8(ascii: "x"), count: 30)
        for _ in 0..<20_000 {
            let bytes = [UInt8(ascii: "\"")] + (0..<next(70)).map { _ in alphabet[next(alphabet.count)] }
            #expect(Self.scanned(bytes) == Self.reference(bytes, from: 1), "\(bytes)")
        }
    }
}
