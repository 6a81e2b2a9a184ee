public import NIOCore
import StreamCore

/// A deterministic stream of InvokeModelWithResponseStream `chunk` frames of a Claude model, as the
/// Anthropic Messages route receives them: the three string headers Bedrock sends, a payload
/// `{"bytes":"<base64 of a text_delta event>","p":"<padding>"}` with 1–40 characters of text and
/// 0–62 of padding (frames of about 240–330 bytes).
public enum AnthropicChunkFrames {
    static let padding = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
    static let words = ["fn", " main", "()", " {", "\\n", "    let", " x", " =", " \\\"quoted\\\"", ";", " // é✓", " return", " 42"]

    public static func stream(count: Int, seed: UInt64 = 0x5EED) -> ByteBuffer {
        var state = seed
        func next(_ bound: Int) -> Int {
            // SplitMix64, as BedrockFrames: the same mix of text lengths.
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
        let headers = [
            EventStreamHeader(name: ":event-type", value: .init(string: "chunk")),
            EventStreamHeader(name: ":content-type", value: .init(string: "application/json")),
            EventStreamHeader(name: ":message-type", value: .init(string: "event")),
        ]
        var out = ByteBuffer()
        for _ in 0..<count {
            var text = ""
            let target = 1 + next(40)
            while text.utf8.count < target { text += words[next(words.count)] }
            let event = Array(#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\#(text)"}}"#.utf8)
            var payload = ByteBuffer()
            payload.writeString(#"{"bytes":""#)
            payload.writeBytes(Self.base64(event))
            payload.writeString(#"","p":""#)
            payload.writeBytes(padding[0..<next(63)])
            payload.writeString(#""}"#)
            // The headers and sizes above are valid, so encoding cannot fail.
            try? EventStreamEncoder.write(headers: headers, payload: payload, into: &out)
        }
        return out
    }

    /// Standard padded base64 (no Foundation in the benchmark targets).
    static func base64(_ bytes: [UInt8]) -> [UInt8] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var word: UInt32 = 0
            for (offset, byte) in chunk.enumerated() { word |= UInt32(byte) << (16 - 8 * offset) }
            for position in 0..<4 {
                if position <= chunk.count {
                    out.append(alphabet[Int((word >> (18 - 6 * position)) & 0x3F)])
                } else {
                    out.append(UInt8(ascii: "="))
                }
            }
            index += 3
        }
        return out
    }
}
