package import NIOCore

/// What the gateway's stream pump needs from a ConverseStream → client-API translator, so one
/// generic pump drives chat completions (``ChatChunkTranslator``) and the Responses API
/// (``ResponsesStreamTranslator``) alike.
///
/// Use it as a generic constraint (`func pump<T: ConverseStreamTranslating>(_ translator: inout T, …)`),
/// not as an existential: the per-frame call then stays a direct, specialized call.
package protocol ConverseStreamTranslating {
    /// Translates one decoded message, appending zero or more SSE events to `out`.
    mutating func translate(_ message: EventStreamMessage, into out: inout ByteBuffer)
    /// Ends the stream at the end of the upstream body.
    mutating func finish(into out: inout ByteBuffer)
    /// Ends the stream with an error event for a failure outside the frames.
    mutating func fail(code: String, message: String, into out: inout ByteBuffer)
    /// The usage the `metadata` event reported, if it came.
    var usage: TokenUsage? { get }
    /// Bytes of generated content so far, for estimating output when usage never came.
    var producedBytes: Int { get }
    /// Bedrock's stop reason as a finish reason, once `messageStop` came.
    var finishReason: FinishReason? { get }
    /// How the stream ended, once it has.
    var ending: ChatChunkTranslator.Ending? { get }
    /// Whether anything has been written to the client yet.
    var hasWrittenOutput: Bool { get }
}

extension ChatChunkTranslator: ConverseStreamTranslating {
    package var hasWrittenOutput: Bool { self.hasWrittenChunk }
}

extension ResponsesStreamTranslator: ConverseStreamTranslating {
    package var hasWrittenOutput: Bool { self.hasWrittenEvent }
}
