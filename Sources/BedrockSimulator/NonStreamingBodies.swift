internal import NIOCore
internal import StreamCore

/// The whole-message answers of Converse and InvokeModel, built from the same ``ResponsePlan`` as the
/// streams, so a client's fallback from a broken stream to `/invoke` gets the same content.
enum NonStreamingBodies {
    /// `{"output":{"message":{"role","content"}},"stopReason","usage","metrics"}`.
    static func converse(_ plan: ResponsePlan, start: ContinuousClock.Instant) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeStaticString("{\"output\":{\"message\":{\"role\":\"assistant\",\"content\":[")
        var needsComma = false
        func separate() {
            if needsComma { body.writeStaticString(",") }
            needsComma = true
        }
        if plan.reasoning {
            separate()
            body.writeStaticString("{\"reasoningContent\":{\"reasoningText\":{\"text\":")
            body.writeJSONString(ResponsePlan.reasoningPieces.joined())
            body.writeStaticString(",\"signature\":")
            body.writeJSONString(plan.signature)
            body.writeStaticString("}}}")
        }
        if plan.hasText {
            separate()
            body.writeStaticString("{\"text\":")
            body.writeJSONString(plan.fullText)
            body.writeStaticString("}")
        }
        for tool in plan.toolCalls {
            separate()
            body.writeStaticString("{\"toolUse\":{\"toolUseId\":")
            body.writeJSONString("tooluse_" + tool.idSuffix)
            body.writeStaticString(",\"name\":")
            body.writeJSONString(tool.name)
            body.writeStaticString(",\"input\":")
            // A validated compact JSON object (the scenario parser or the built-in default).
            body.writeString(tool.input)
            body.writeStaticString("}}")
        }
        body.writeStaticString("]}},\"stopReason\":")
        body.writeJSONString(plan.stopReason)
        body.writeStaticString(",\"usage\":")
        ConverseUsage.write(plan, into: &body)
        body.writeStaticString(",\"metrics\":{\"latencyMs\":")
        body.writeDecimal(ConverseStreamSource.milliseconds(since: start))
        body.writeStaticString("}}")
        return body
    }

    /// An Anthropic Messages response: `id, type, role, model, content, stop_reason, stop_sequence, usage`.
    static func invoke(_ plan: ResponsePlan, model: String) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeStaticString("{\"id\":")
        body.writeJSONString(AnthropicEvents.messageID(plan))
        body.writeStaticString(",\"type\":\"message\",\"role\":\"assistant\",\"model\":")
        body.writeJSONString(model)
        body.writeStaticString(",\"content\":[")
        var needsComma = false
        func separate() {
            if needsComma { body.writeStaticString(",") }
            needsComma = true
        }
        if plan.reasoning {
            separate()
            body.writeStaticString("{\"type\":\"thinking\",\"thinking\":")
            body.writeJSONString(ResponsePlan.reasoningPieces.joined())
            body.writeStaticString(",\"signature\":")
            body.writeJSONString(plan.signature)
            body.writeStaticString("}")
        }
        if plan.hasText {
            separate()
            body.writeStaticString("{\"type\":\"text\",\"text\":")
            body.writeJSONString(plan.fullText)
            body.writeStaticString("}")
        }
        for tool in plan.toolCalls {
            separate()
            body.writeStaticString("{\"type\":\"tool_use\",\"id\":")
            body.writeJSONString("toolu_bdrk_01" + tool.idSuffix)
            body.writeStaticString(",\"name\":")
            body.writeJSONString(tool.name)
            body.writeStaticString(",\"input\":")
            body.writeString(tool.input)
            body.writeStaticString("}")
        }
        body.writeStaticString("],\"stop_reason\":")
        body.writeJSONString(plan.stopReason)
        body.writeStaticString(",\"stop_sequence\":")
        AnthropicEvents.writeStopSequence(plan, into: &body)
        body.writeStaticString(",\"usage\":")
        AnthropicEvents.writeUsage(plan, outputTokens: plan.outputTokens, into: &body)
        body.writeStaticString("}")
        return body
    }
}

/// CountTokens (CLAUDE_CODE.md §2.5): `{"input":{"invokeModel":{"body":"<base64>"}}}` or
/// `{"input":{"converse":{…}}}` → `{"inputTokens":N}`, N ≈ bytes / 4 (at least 1).
enum CountTokens {
    static func answer(body: ByteBuffer) throws(BedrockError) -> ByteBuffer {
        guard let json = try? ParsedJSON.parse(body), let input = json["input"] else {
            throw BedrockError.validation("Malformed input request: input: Field required.")
        }
        let byteCount: Int
        if let encoded = input["invokeModel"]?["body"]?.stringValue {
            var decoded = ByteBuffer()
            let valid = ByteBuffer(string: encoded).withUnsafeReadableBytes { bytes in
                (try? Base64.decode(bytes, appendingTo: &decoded)) != nil
            }
            guard valid else { throw BedrockError.validation("input.invokeModel.body is not valid base64.") }
            byteCount = decoded.readableBytes
        } else if let converse = input["converse"], converse.isObject {
            var compact = ByteBuffer()
            converse.write(into: &compact)
            byteCount = compact.readableBytes
        } else {
            throw BedrockError.validation("Malformed input request: input must hold invokeModel or converse.")
        }
        var answer = ByteBuffer()
        answer.writeStaticString("{\"inputTokens\":")
        answer.writeDecimal(max(1, byteCount / 4))
        answer.writeStaticString("}")
        return answer
    }
}
