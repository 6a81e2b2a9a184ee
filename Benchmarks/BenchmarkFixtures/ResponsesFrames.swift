public import NIOCore
import StreamCore

/// The ConverseStream frames around a run of text deltas, for the Responses translator (whose item
/// opens at `messageStart` and the first delta, and closes at `contentBlockStop`).
public enum ResponsesFrames {
    /// `messageStart`, the same text deltas as the measured ones, then `contentBlockStop`.
    public static func warmUp(deltas: ByteBuffer) -> ByteBuffer {
        var out = ByteBuffer()
        out.writeImmutableBuffer(Self.event("messageStart", #"{"p":"abcd","role":"assistant"}"#))
        out.writeImmutableBuffer(deltas)
        out.writeImmutableBuffer(Self.event("contentBlockStop", #"{"contentBlockIndex":0,"p":"abcdefgh"}"#))
        return out
    }

    public static func event(_ type: String, _ json: String) -> ByteBuffer {
        let headers = [
            EventStreamHeader(name: ":event-type", value: .init(string: type)),
            EventStreamHeader(name: ":content-type", value: .init(string: "application/json")),
            EventStreamHeader(name: ":message-type", value: .init(string: "event")),
        ]
        var out = ByteBuffer()
        // The headers and sizes are valid, so encoding cannot fail.
        try? EventStreamEncoder.write(headers: headers, payload: ByteBuffer(string: json), into: &out)
        return out
    }
}
