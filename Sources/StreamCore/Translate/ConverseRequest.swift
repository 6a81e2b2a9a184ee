package import NIOCore

/// A chat-completions request translated for Bedrock: where to send it and what to send.
///
/// Made by ``ChatRequestMapper/map(_:allocator:)``. The gateway sends ``body`` to
/// `POST /model/{modelID}/converse-stream` when ``isStreaming`` (else `/converse`), path-escaping
/// ``modelID`` (it may be an ARN with `:` and `/`).
package struct ConverseRequest: Sendable {
    /// The Bedrock model id, inference-profile id or ARN to call (after alias lookup).
    package var modelID: String
    /// The `model` the client wrote; responses echo it back.
    package var requestedModel: String
    /// `stream: true`.
    package var isStreaming: Bool
    /// `stream_options.include_usage: true`: the stream ends with a usage chunk.
    package var includesUsage: Bool
    /// OpenAI's `user` field, for the audit log only; never forwarded to Bedrock.
    package var user: String?
    /// OpenAI's `prompt_cache_key`: the client's key for keeping a conversation on one upstream (its
    /// prompt cache); routing only, never forwarded.
    package var promptCacheKey: String?
    /// The request asked for `response_format` JSON, emulated with the forced tool
    /// ``ChatRequestMapper/responseFormatToolName``: that tool's input is the answer's `content`.
    package var usesResponseFormatTool: Bool
    /// Extended thinking was requested of an Anthropic model.
    package var isThinkingEnabled: Bool
    /// How many entries the client's `messages` array held (for the audit line).
    package var messageCount: Int
    /// The `maxTokens` sent upstream (thinking budget included), or `nil` when the model's default applies.
    package var maxTokens: Int?
    /// The Converse request JSON.
    package var body: ByteBuffer
}
