package import NIOCore

/// A Responses API request translated for Bedrock, plus what the gateway and the response
/// translators need to know about it.
///
/// Made by ``ResponsesRequestMapper/map(_:allocator:)``. The gateway sends ``converse``'s `body` to
/// `POST /model/{modelID}/converse-stream` when ``isStreaming`` (else `/converse`), exactly as for
/// chat completions.
package struct ResponsesRequest: Sendable {
    /// The Converse call: model id, body, and the flags shared with chat completions
    /// (`usesResponseFormatTool`, `isThinkingEnabled`, `maxTokens`, `messageCount`).
    package var converse: ConverseRequest
    /// `previous_response_id`, only when the mapper's configuration says a response store exists
    /// (``ResponsesRequestMapper/Configuration/isStoreEnabled``); the gateway then prepends the stored
    /// items. Without a store the mapper refuses the field.
    package var previousResponseID: String?
    /// `prompt_cache_key`: the client's cache-affinity key (Codex sends its session id).
    package var promptCacheKey: String?
    /// `include` asked for `reasoning.encrypted_content`: reasoning items carry a sealed block.
    package var includesEncryptedReasoning: Bool
    /// `store` as the client sent it (OpenAI's default is `true`). Sluice keeps nothing unless the
    /// gateway's response store is on.
    package var store: Bool
    /// `instructions`, for a store that keeps responses (the Converse body already has it as system).
    package var instructions: String?
    /// The request's `namespace` tools as Bedrock got them, to name calls of them back.
    package var toolNamespaces = ToolNamespaces()
    /// With a response store and `store` not false: the conversation so far as a JSON array of input
    /// items (the stored history, then this request's `input`); the response's output items follow it
    /// into the store. Nil when nothing is to be kept.
    package var conversationItems: ByteBuffer?

    package var modelID: String { converse.modelID }
    package var requestedModel: String { converse.requestedModel }
    package var isStreaming: Bool { converse.isStreaming }
    package var user: String? { converse.user }
    package var messageCount: Int { converse.messageCount }
    package var maxTokens: Int? { converse.maxTokens }
    package var body: ByteBuffer { converse.body }

    /// The forced tool emulating `text.format` JSON, when the request asked for it.
    package var responseFormatToolName: String? {
        converse.usesResponseFormatTool ? ChatRequestMapper.responseFormatToolName.description : nil
    }
}
