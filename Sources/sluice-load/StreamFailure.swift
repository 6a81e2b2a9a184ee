/// Why one stream did not count as good. The raw values are the keys of the report's `errors` map.
enum StreamFailure: Hashable, Sendable {
    /// No connection (refused, unreachable, connect timeout).
    case connect
    /// The whole-request time limit (`--timeout`) ran out.
    case timeout
    /// A response status other than 200; the body is not read as a stream.
    case httpStatus(Int)
    /// The server said the stream failed: an OpenAI `data: {"error":…}` event, or a Bedrock
    /// `exception` / `error` message.
    case errorEvent
    /// A Bedrock frame failed its checks (CRC, lengths) or the SSE was unreadable.
    case badFrame
    /// The body ended (or the connection broke) before the end marker: `[DONE]` on the OpenAI route,
    /// `messageStop` + `metadata` and a frame boundary on the Bedrock route.
    case truncated
    /// A text delta without a well-formed stamp, or with a stamp from the future.
    case badStamp
    /// The stream ended properly but with a different number of text deltas than `chunks=`.
    case incompleteContent
    /// Any other transport error before a response arrived.
    case transport

    var key: String {
        switch self {
        case .connect: "connect"
        case .timeout: "timeout"
        case .httpStatus(let status): "http_\(status)"
        case .errorEvent: "error_event"
        case .badFrame: "bad_frame"
        case .truncated: "truncated"
        case .badStamp: "bad_stamp"
        case .incompleteContent: "incomplete_content"
        case .transport: "transport"
        }
    }
}
