package import NIOCore

/// A Converse response body that is not what Bedrock documents (the gateway answers 502).
package struct BedrockResponseError: Error, Sendable, Hashable, CustomStringConvertible {
    package var message: String

    package init(message: String) {
        self.message = message
    }

    package var description: String { "BedrockResponseError: \(message)" }
}

/// A `chat.completion` made from a Converse response.
package struct ChatCompletionResponse: Sendable {
    /// The `chat.completion` JSON.
    package var body: ByteBuffer
    /// For limits, the usage ledger and the audit log.
    package var usage: TokenUsage
    package var finishReason: FinishReason
}

/// Translates a non-streaming Converse response into an OpenAI `chat.completion`.
///
/// ```swift
/// let completion = try ChatResponseMapper.makeChatCompletion(
///     converseResponse: upstreamBody, id: "chatcmpl-…", created: now, for: request)
/// ```
///
/// - `message.content`: the text blocks concatenated; `null` when the answer is only tool calls,
///   `""` when Bedrock returned nothing at all (clients read `content` as a string then).
/// - `message.tool_calls`: one per `toolUse`, `arguments` = the `input` serialized compactly.
/// - `message.reasoning_content` (DeepSeek style) and `message.thinking_blocks` (LiteLLM style, with
///   signatures so clients can send them back) from `reasoningContent` blocks.
/// - With `response_format` emulation, the ``ChatRequestMapper/responseFormatToolName`` call's input
///   becomes `content` and the finish reason `stop`; text the model wrote before that call is dropped
///   so `content` parses as JSON.
/// - `usage.prompt_tokens_details.cached_tokens` = cache reads; cache writes are reported as
///   `usage.prompt_tokens_details.cache_creation_tokens` (OpenAI has no field for them; the name
///   follows Anthropic's `cache_creation_input_tokens`), and both are included in `prompt_tokens`.
package enum ChatResponseMapper {
    package static func makeChatCompletion(
        converseResponse body: ByteBuffer,
        id: String,
        created: Int,
        for request: ConverseRequest,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(BedrockResponseError) -> ChatCompletionResponse {
        try makeChatCompletion(
            converseResponse: body,
            id: id,
            created: created,
            model: request.requestedModel,
            usesResponseFormatTool: request.usesResponseFormatTool,
            allocator: allocator
        )
    }

    /// - Parameters:
    ///   - body: the Converse response JSON.
    ///   - id: the completion id (`chatcmpl-…`), made by the caller.
    ///   - created: Unix seconds, from the caller's clock.
    ///   - model: the model name as the client wrote it.
    ///   - usesResponseFormatTool: the request emulated `response_format` with the forced tool.
    package static func makeChatCompletion(
        converseResponse body: ByteBuffer,
        id: String,
        created: Int,
        model: String,
        usesResponseFormatTool: Bool,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(BedrockResponseError) -> ChatCompletionResponse {
        let parsed: ParsedJSON
        do throws(JSONParseError) {
            parsed = try body.withUnsafeReadableBytes { bytes throws(JSONParseError) in
                try JSONParser.parse(bytes, maximumNestingDepth: 256)
            }
        } catch {
            throw BedrockResponseError(message: "Converse response is not JSON: \(error.reason) at byte \(error.offset)")
        }
        guard let root = parsed.objectValue,
            let message = root.present("output")?.objectValue?.present("message")?.objectValue,
            let content = message.present("content")?.arrayValue
        else {
            throw BedrockResponseError(message: "Converse response has no output.message.content array")
        }

        var texts: [String] = []
        var reasoning: [ConverseBlock] = []
        var toolCalls: [(id: String, name: String, input: ParsedJSON)] = []
        var jsonAnswer: ParsedJSON?
        let jsonToolName = ChatRequestMapper.responseFormatToolName.description
        for block in content {
            guard let block = block.objectValue else { continue }
            if let text = block.present("text")?.stringValue {
                texts.append(text)
            } else if let toolUse = block.present("toolUse")?.objectValue {
                guard let toolID = toolUse.present("toolUseId")?.stringValue, let name = toolUse.present("name")?.stringValue
                else { throw BedrockResponseError(message: "Converse toolUse block without toolUseId or name") }
                let input = toolUse.present("input") ?? .object(JSONObject())
                if usesResponseFormatTool, name == jsonToolName, jsonAnswer == nil {
                    jsonAnswer = input
                } else {
                    toolCalls.append((toolID, name, input))
                }
            } else if let reasoningContent = block.present("reasoningContent")?.objectValue {
                if let text = reasoningContent.present("reasoningText")?.objectValue {
                    reasoning.append(
                        .reasoning(
                            text: text.present("text")?.stringValue ?? "",
                            signature: text.present("signature")?.stringValue ?? ""
                        )
                    )
                } else if let redacted = reasoningContent.present("redactedContent")?.stringValue {
                    reasoning.append(.redactedReasoning(redacted))
                }
            }
            // Other blocks (citations, images, guard content) have no chat.completion equivalent.
        }

        let usageObject = root.present("usage")?.objectValue
        let usage = TokenUsage(
            inputTokens: usageObject?.present("inputTokens")?.intValue ?? 0,
            outputTokens: usageObject?.present("outputTokens")?.intValue ?? 0,
            cacheReadInputTokens: usageObject?.present("cacheReadInputTokens")?.intValue ?? 0,
            cacheWriteInputTokens: usageObject?.present("cacheWriteInputTokens")?.intValue ?? 0
        )
        var finishReason = FinishReason(bedrockStopReason: root.present("stopReason")?.stringValue ?? "")
        if jsonAnswer != nil, toolCalls.isEmpty, finishReason == .toolCalls {
            finishReason = .stop
        }

        let textBytes = texts.reduce(0) { $0 + $1.utf8.count }
        var output = JSONOutput(buffer: allocator.buffer(capacity: body.readableBytes + textBytes / 8 + 512))
        output.raw("{\"id\":")
        output.string(id)
        output.raw(",\"object\":\"chat.completion\",\"created\":")
        output.int(created)
        output.raw(",\"model\":")
        output.string(model)
        output.raw(",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":")
        if let jsonAnswer {
            var serialized = JSONOutput(buffer: allocator.buffer(capacity: 256))
            serialized.value(jsonAnswer)
            output.string(containing: serialized.buffer)
        } else if !texts.isEmpty {
            output.string(texts.count == 1 ? texts[0] : texts.joined())
        } else if !toolCalls.isEmpty {
            output.raw("null")
        } else {
            output.raw("\"\"")
        }
        output.raw(",\"refusal\":null")
        if !reasoning.isEmpty {
            writeReasoning(reasoning, to: &output)
        }
        if !toolCalls.isEmpty {
            output.raw(",\"tool_calls\":[")
            var arguments = JSONOutput(buffer: allocator.buffer(capacity: 256))
            for (index, call) in toolCalls.enumerated() {
                if index > 0 { output.raw(",") }
                output.raw("{\"id\":")
                output.string(call.id)
                output.raw(",\"type\":\"function\",\"function\":{\"name\":")
                output.string(call.name)
                output.raw(",\"arguments\":")
                arguments.buffer.clear()
                arguments.value(call.input)
                output.string(containing: arguments.buffer)
                output.raw("}}")
            }
            output.raw("]")
        }
        output.raw("},\"logprobs\":null,\"finish_reason\":\"")
        output.raw(finishReason.openAIValue)
        output.raw("\"}],\"usage\":{\"prompt_tokens\":")
        output.int(usage.promptTokens)
        output.raw(",\"completion_tokens\":")
        output.int(usage.completionTokens)
        output.raw(",\"total_tokens\":")
        output.int(usage.totalTokens)
        output.raw(",\"prompt_tokens_details\":{\"cached_tokens\":")
        output.int(usage.cacheReadInputTokens)
        output.raw(",\"cache_creation_tokens\":")
        output.int(usage.cacheWriteInputTokens)
        output.raw("}}}")
        return ChatCompletionResponse(body: output.buffer, usage: usage, finishReason: finishReason)
    }

    private static func writeReasoning(_ blocks: [ConverseBlock], to output: inout JSONOutput) {
        var reasoningText = ""
        for case .reasoning(let text, _) in blocks { reasoningText += text }
        if !reasoningText.isEmpty {
            output.raw(",\"reasoning_content\":")
            output.string(reasoningText)
        }
        output.raw(",\"thinking_blocks\":[")
        for (index, block) in blocks.enumerated() {
            if index > 0 { output.raw(",") }
            switch block {
            case .reasoning(let text, let signature):
                output.raw("{\"type\":\"thinking\",\"thinking\":")
                output.string(text)
                output.raw(",\"signature\":")
                output.string(signature)
                output.raw("}")
            case .redactedReasoning(let data):
                output.raw("{\"type\":\"redacted_thinking\",\"data\":")
                output.string(data)
                output.raw("}")
            default:
                break
            }
        }
        output.raw("]")
    }
}
