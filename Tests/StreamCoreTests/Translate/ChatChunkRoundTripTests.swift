import Foundation
import NIOCore
import Testing

@testable import StreamCore

/// Round-trip truth: whatever text the frames carried, in whatever legal JSON escaping, is exactly
/// what a client reassembles from the chunks, checked with Foundation's JSON parser.
struct ChatChunkRoundTripTests {
    /// Text with everything that breaks naive splicing: quotes, backslashes, every control character,
    /// slashes, non-ASCII, emoji outside the BMP, and U+2028/U+2029.
    static func randomText(using rng: inout SeededGenerator, scalars: Int) -> String {
        let pool: [Unicode.Scalar] = ["\"", "\\", "/", "\n", "\r", "\t", "\u{0}", "\u{1}", "\u{1F}", "\u{7F}", "a", "Z", " ", "é", "✓",
                                      "\u{2028}", "\u{2029}", "😀", "🧵", "\u{FEFF}", "中", "{", "}", ":", ","]
        var text = String.UnicodeScalarView()
        for _ in 0..<scalars {
            if Int.random(in: 0..<4, using: &rng) == 0 {
                text.append(pool[Int.random(in: 0..<pool.count, using: &rng)])
            } else {
                text.append(Unicode.Scalar(UInt8.random(in: 0x20...0x7E, using: &rng)))
            }
        }
        return String(text)
    }

    /// A legal JSON encoding of `text`'s contents, choosing per character among the forms JSON allows.
    static func escape(_ text: Substring, using rng: inout SeededGenerator) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let style = Int.random(in: 0..<3, using: &rng)
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += style == 0 ? "\\u005c" : "\\\\"
            case "/": out += style == 0 ? "\\/" : "/"
            case "\n": out += style == 0 ? "\\u000a" : "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += String(format: "\\u%04x", scalar.value)
            case _ where style == 0 && scalar.value > 0x7F:
                if scalar.value > 0xFFFF {
                    let value = scalar.value - 0x10000
                    out += String(format: "\\u%04X\\u%04x", 0xD800 + (value >> 10), 0xDC00 + (value & 0x3FF))
                } else {
                    out += String(format: "\\u%04x", scalar.value)
                }
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// Cuts `text` into pieces at character boundaries (Bedrock never splits an escape).
    static func pieces(of text: String, using rng: inout SeededGenerator, maximum: Int) -> [Substring] {
        var result: [Substring] = []
        var start = text.startIndex
        while start < text.endIndex {
            let length = Int.random(in: 1...maximum, using: &rng)
            let end = text.index(start, offsetBy: length, limitedBy: text.endIndex) ?? text.endIndex
            result.append(text[start..<end])
            start = end
        }
        return result
    }

    /// The chunk fields a client reads. Decoded with `JSONDecoder`: `JSONSerialization` on Linux drops
    /// a raw U+FEFF at the start of a string value, which would fail this test for Foundation's sake.
    private struct Chunk: Decodable {
        struct Choice: Decodable { var delta: Delta? }
        struct Delta: Decodable {
            var content: String?
            var reasoning_content: String?
            var tool_calls: [ToolCall]?
        }
        struct ToolCall: Decodable {
            struct Function: Decodable { var arguments: String? }
            var index: Int
            var function: Function?
        }
        var choices: [Choice]
    }

    private func reassemble(_ sse: String) throws -> (content: String, arguments: [Int: String], reasoning: String) {
        var content = ""
        var arguments: [Int: String] = [:]
        var reasoning = ""
        for data in try sseEvents(sse) where data != "[DONE]" {
            let chunk = try JSONDecoder().decode(Chunk.self, from: Data(data.utf8))
            guard let delta = chunk.choices.first?.delta else { continue }
            content += delta.content ?? ""
            reasoning += delta.reasoning_content ?? ""
            for call in delta.tool_calls ?? [] {
                arguments[call.index, default: ""] += call.function?.arguments ?? ""
            }
        }
        return (content, arguments, reasoning)
    }

    @Test("random Unicode text survives in every escaping", arguments: 0..<8)
    func text(seed: UInt64) throws {
        var rng = SeededGenerator(seed: 0x7E47 + seed)
        let text = Self.randomText(using: &rng, scalars: 3000)
        let reasoningText = Self.randomText(using: &rng, scalars: 500)
        var frames = [ConverseFrames.messageStart()]
        for piece in Self.pieces(of: reasoningText, using: &rng, maximum: 20) {
            frames.append(ConverseFrames.reasoning(0, text: Self.escape(piece, using: &rng)))
        }
        for piece in Self.pieces(of: text, using: &rng, maximum: 30) {
            frames.append(ConverseFrames.text(1, Self.escape(piece, using: &rng)))
        }
        frames.append(ConverseFrames.messageStop("end_turn"))
        let (sse, _) = translate(ConverseFrames.stream(frames))
        let result = try self.reassemble(sse)
        #expect(firstDifference(result.content, text) == nil)
        #expect(firstDifference(result.reasoning, reasoningText) == nil)
    }

    @Test("tool arguments survive, per tool, in two interleaved-index tools")
    func toolArguments() throws {
        var rng = SeededGenerator(seed: 0xA565)
        let first = Self.randomText(using: &rng, scalars: 2000)
        let second = Self.randomText(using: &rng, scalars: 2000)
        var frames = [ConverseFrames.messageStart(), ConverseFrames.text(0, "x"), ConverseFrames.toolStart(1, id: "a", name: "one")]
        for piece in Self.pieces(of: first, using: &rng, maximum: 40) {
            frames.append(ConverseFrames.toolInput(1, Self.escape(piece, using: &rng)))
        }
        frames.append(ConverseFrames.toolStart(2, id: "b", name: "two"))
        for piece in Self.pieces(of: second, using: &rng, maximum: 40) {
            frames.append(ConverseFrames.toolInput(2, Self.escape(piece, using: &rng)))
        }
        frames.append(ConverseFrames.messageStop("tool_use"))
        let (sse, _) = translate(ConverseFrames.stream(frames))
        let result = try self.reassemble(sse)
        #expect(result.arguments == [0: first, 1: second])
    }

    @Test("a 1 MiB delta survives whole")
    func oneMebibyteDelta() async throws {
        var rng = SeededGenerator(seed: 1 << 20)
        var text = ""
        while text.utf8.count < 1 << 20 {
            await Task.yield()  // seconds of work in a debug build: see `decodeStream`
            text += Self.randomText(using: &rng, scalars: 4096)
        }
        let frames = [
            ConverseFrames.messageStart(),
            ConverseFrames.text(0, Self.escape(Substring(text), using: &rng)),
            ConverseFrames.messageStop("end_turn"),
        ]
        let (sse, _) = translate(ConverseFrames.stream(frames), readSizes: Array(repeating: 4096, count: 2000))
        #expect(try self.reassemble(sse).content == text)
    }
}

/// Where two texts first differ, by Unicode scalar, with context; `nil` when they are identical.
func firstDifference(_ a: String, _ b: String) -> String? {
    let x = Array(a.unicodeScalars)
    let y = Array(b.unicodeScalars)
    for index in 0..<max(x.count, y.count) where index >= x.count || index >= y.count || x[index] != y[index] {
        let around = { (s: [Unicode.Scalar]) in s[max(0, index - 3)..<min(s.count, index + 3)].map { String($0.value, radix: 16) } }
        return "scalar \(index): \(around(x)) vs \(around(y)) (counts \(x.count) vs \(y.count))"
    }
    return nil
}
