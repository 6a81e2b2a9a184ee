package import NIOCore

/// A Responses API `response` object made from a Converse response.
package struct ResponsesResponse: Sendable {
    /// The `response` JSON.
    package var body: ByteBuffer
    /// For limits, the usage ledger and the audit log.
    package var usage: TokenUsage
    package var finishReason: FinishReason
    /// The output items, comma-separated (the inside of `output`), as ``ResponsesStreamTranslator/completedItems``.
    package var outputItems: ByteBuffer
}

/// Translates a non-streaming Converse response into a Responses API `response` object, with the
/// same output items, item ids and usage the stream translator's `response.completed` carries
/// (``ResponsesStreamTranslator``; both write through `ResponsesJSON`).
///
/// ```swift
/// let response = try ResponsesResponseMapper.makeResponse(
///     converseResponse: upstreamBody, id: "resp_…", createdAt: now, for: request, sealer: cipher)
/// ```
///
/// Blocks in order: `reasoningContent` → a `reasoning` item (summary = the thinking text;
/// `encrypted_content` when the request's `include` asked and a sealer is given); `text` → a
/// `message` item; `toolUse` → a `function_call` item (`arguments` = the input serialized compactly);
/// the response-format tool's input → a `message` item with the JSON as text. The response's status
/// is `incomplete` (with `incomplete_details.reason`) for `max_tokens` and content filtering, as when
/// streaming; items are `completed`.
package enum ResponsesResponseMapper {
    package static func makeResponse(
        converseResponse body: ByteBuffer,
        id: String,
        createdAt: Int,
        for request: ResponsesRequest,
        sealer: (any ResponsesReasoningSealer)?,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(BedrockResponseError) -> ResponsesResponse {
        try makeResponse(
            converseResponse: body,
            id: id,
            createdAt: createdAt,
            model: request.requestedModel,
            usesResponseFormatTool: request.converse.usesResponseFormatTool,
            sealer: request.includesEncryptedReasoning ? sealer : nil,
            toolNamespaces: request.toolNamespaces,
            allocator: allocator
        )
    }

    /// - Parameters:
    ///   - body: the Converse response JSON.
    ///   - id: the response id (`resp_…`), made by the caller.
    ///   - createdAt: Unix seconds, from the caller's clock.
    ///   - model: the model name as the client wrote it.
    ///   - usesResponseFormatTool: the request emulated `text.format` with the forced tool.
    ///   - sealer: seals reasoning into `encrypted_content`; nil leaves it out.
    ///   - toolNamespaces: the request's `namespace` tools, to name calls of them back.
    package static func makeResponse(
        converseResponse body: ByteBuffer,
        id: String,
        createdAt: Int,
        model: String,
        usesResponseFormatTool: Bool,
        sealer: (any ResponsesReasoningSealer)?,
        toolNamespaces: ToolNamespaces = ToolNamespaces(),
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(BedrockResponseError) -> ResponsesResponse {
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

        let usageObject = root.present("usage")?.objectValue
        let usage = TokenUsage(
            inputTokens: usageObject?.present("inputTokens")?.intValue ?? 0,
            outputTokens: usageObject?.present("outputTokens")?.intValue ?? 0,
            cacheReadInputTokens: usageObject?.present("cacheReadInputTokens")?.intValue ?? 0,
            cacheWriteInputTokens: usageObject?.present("cacheWriteInputTokens")?.intValue ?? 0
        )
        var finishReason = FinishReason(bedrockStopReason: root.present("stopReason")?.stringValue ?? "")
        // Every block of a Converse response ended (when streamed, Bedrock stops each block before
        // `messageStop`, even at max_tokens), so items are complete; the response's status says
        // whether the answer was cut, as in the stream translator's terminal event.
        let itemStatus: StaticString = "completed"

        let idBase = ResponsesJSON.itemIDBase(responseID: id)
        var items = allocator.buffer(capacity: body.readableBytes + 256)
        var itemID: [UInt8] = []
        var outputIndex = 0
        var functionCalls = 0
        var answeredWithFormatTool = false
        let formatToolName = ChatRequestMapper.responseFormatToolName.description

        func beginItem(_ prefix: StaticString) {
            if outputIndex > 0 { items.writeStaticString(",") }
            ResponsesJSON.writeItemID(prefix, base: idBase, outputIndex: outputIndex, into: &itemID)
            outputIndex += 1
        }

        for block in content {
            guard let block = block.objectValue else { continue }
            if let text = block.present("text")?.stringValue {
                beginItem("msg_")
                let escaped = ResponsesJSON.escaped(text)
                itemID.withUnsafeBytes { id in
                    escaped.withUnsafeBytes { ResponsesJSON.writeMessageItem(into: &items, id: id, status: itemStatus, text: $0) }
                }
            } else if let toolUse = block.present("toolUse")?.objectValue {
                guard let callID = toolUse.present("toolUseId")?.stringValue, let name = toolUse.present("name")?.stringValue
                else { throw BedrockResponseError(message: "Converse toolUse block without toolUseId or name") }
                var input = JSONOutput(buffer: allocator.buffer(capacity: 256))
                input.value(toolUse.present("input") ?? .object(JSONObject()))
                let arguments = input.buffer.withUnsafeReadableBytes { ResponsesJSON.escaped(String(decoding: $0, as: UTF8.self)) }
                if usesResponseFormatTool, name == formatToolName, !answeredWithFormatTool {
                    answeredWithFormatTool = true
                    beginItem("msg_")
                    itemID.withUnsafeBytes { id in
                        arguments.withUnsafeBytes { ResponsesJSON.writeMessageItem(into: &items, id: id, status: itemStatus, text: $0) }
                    }
                    continue
                }
                functionCalls += 1
                beginItem("fc_")
                let escapedID = ResponsesJSON.escaped(callID)
                let escapedName = toolNamespaces.nameFragment(forBedrockName: name) ?? ResponsesJSON.escaped(name)
                itemID.withUnsafeBytes { id in
                    arguments.withUnsafeBytes { arguments in
                        escapedID.withUnsafeBytes { callID in
                            escapedName.withUnsafeBytes { name in
                                ResponsesJSON.writeFunctionCallItem(
                                    into: &items, id: id, status: itemStatus, arguments: arguments, callID: callID, name: name
                                )
                            }
                        }
                    }
                }
            } else if let reasoning = block.present("reasoningContent")?.objectValue {
                var summary: [UInt8]?
                var sealed: SealedReasoning?
                if let text = reasoning.present("reasoningText")?.objectValue {
                    let thinking = text.present("text")?.stringValue ?? ""
                    summary = ResponsesJSON.escaped(thinking)
                    if let signature = text.present("signature")?.stringValue, !signature.isEmpty {
                        sealed = .signed(text: thinking, signature: signature)
                    }
                } else if let data = reasoning.present("redactedContent")?.stringValue {
                    sealed = .redacted(data: data)
                } else {
                    continue
                }
                beginItem("rs_")
                let encrypted = sealed.flatMap { sealer?.seal($0) }
                itemID.withUnsafeBytes { id in
                    if let summary {
                        summary.withUnsafeBytes {
                            ResponsesJSON.writeReasoningItem(into: &items, id: id, summary: $0, encryptedContent: encrypted)
                        }
                    } else {
                        ResponsesJSON.writeReasoningItem(into: &items, id: id, summary: nil, encryptedContent: encrypted)
                    }
                }
            }
            // Other blocks (citations, images, guard content) have no Responses output item.
        }
        if answeredWithFormatTool, functionCalls == 0, finishReason == .toolCalls {
            finishReason = .stop
        }

        var output = allocator.buffer(capacity: items.readableBytes + 512)
        let head = ResponsesJSON.responseHead(id: id, createdAt: createdAt)
        let escapedModel = ResponsesJSON.escaped(model)
        head.withUnsafeBytes { head in
            escapedModel.withUnsafeBytes { model in
                items.withUnsafeReadableBytes { items in
                    ResponsesJSON.writeResponse(
                        into: &output, head: head, model: model, outcome: .init(finishReason), output: items, usage: usage
                    )
                }
            }
        }
        return ResponsesResponse(body: output, usage: usage, finishReason: finishReason, outputItems: items)
    }
}
