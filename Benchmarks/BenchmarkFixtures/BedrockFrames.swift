public import NIOCore
import StreamCore

/// A deterministic stream of typical Bedrock ConverseStream `contentBlockDelta` frames: three string
/// headers (87 bytes), a text delta of 1–40 characters and a `p` padding field of 0–62 characters,
/// so frames are 155–256 bytes with a mean near 206 (EVENTSTREAM.md §6).
public enum BedrockFrames {
    static let padding = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
    static let words = ["fn", " main", "()", " {", "\\n", "    let", " x", " =", " \\\"quoted\\\"", ";", " // é✓", " return", " 42"]

    /// `count` frames, one after another, and the byte length of each.
    public static func stream(count: Int, seed: UInt64 = 0x5EED) -> (bytes: ByteBuffer, frameLengths: [Int]) {
        var state = seed
        func next(_ bound: Int) -> Int {
            // SplitMix64: deterministic across runs and toolchains.
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
        let headers = [
            EventStreamHeader(name: ":event-type", value: .init(string: "contentBlockDelta")),
            EventStreamHeader(name: ":content-type", value: .init(string: "application/json")),
            EventStreamHeader(name: ":message-type", value: .init(string: "event")),
        ]
        var out = ByteBuffer()
        var lengths: [Int] = []
        for _ in 0..<count {
            var text = ""
            let target = 1 + next(40)
            while text.utf8.count < target { text += words[next(words.count)] }
            var payload = ByteBuffer()
            payload.writeString(#"{"contentBlockIndex":0,"delta":{"text":""#)
            payload.writeString(text)
            payload.writeString(#""},"p":""#)
            payload.writeBytes(padding[0..<next(63)])
            payload.writeString(#""}"#)
            let before = out.writerIndex
            // The headers and sizes above are valid, so encoding cannot fail.
            try? EventStreamEncoder.write(headers: headers, payload: payload, into: &out)
            lengths.append(out.writerIndex - before)
        }
        return (out, lengths)
    }
}
