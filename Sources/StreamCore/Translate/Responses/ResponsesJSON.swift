import NIOCore

/// The Responses API's output items and `response` object, written the same way by the stream
/// translator and the non-streaming mapper, so `response.completed` and a non-streamed answer agree
/// byte for byte on every item.
///
/// Every text argument is the *escaped* contents of a JSON string (what the translator splices from
/// Bedrock's frames); ids are plain ASCII made by Sluice.
///
/// Shapes (openai-python `types/responses`, and what Codex CLI deserializes as `ResponseItem`):
/// - message: `{"id","type":"message","status","role":"assistant","content":[{"type":"output_text","annotations":[],"text"}]}`
/// - function call: `{"id","type":"function_call","status","arguments","call_id","name"}`
/// - reasoning: `{"id","type":"reasoning","summary":[{"type":"summary_text","text"}],"encrypted_content"?}`
enum ResponsesJSON {
    /// An item id: `msg_`/`fc_`/`rs_`, the response id without its `resp_` prefix, `_`, the output index.
    static func writeItemID(_ prefix: StaticString, base: [UInt8], outputIndex: Int, into id: inout [UInt8]) {
        id.removeAll(keepingCapacity: true)
        prefix.withUTF8Buffer { id.append(contentsOf: $0) }
        id.append(contentsOf: base)
        id.append(UInt8(ascii: "_"))
        // Decimal digits without a String (no allocation when an item opens mid-stream).
        var divisor = 1
        while divisor <= outputIndex / 10 { divisor *= 10 }
        var rest = outputIndex
        while divisor > 0 {
            id.append(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }

    /// The escaped id base for a response id: without its `resp_` prefix when it has one.
    static func itemIDBase(responseID: String) -> [UInt8] {
        let core = responseID.hasPrefix("resp_") ? String(responseID.dropFirst(5)) : responseID
        var buffer = ByteBuffer()
        buffer.writeJSONStringContents(core)
        return Array(buffer.readableBytesView)
    }

    static func writeMessageItem(
        into out: inout ByteBuffer, id: UnsafeRawBufferPointer, status: StaticString, text: UnsafeRawBufferPointer?
    ) {
        out.writeStaticString("{\"id\":\"")
        out.writeBytes(id)
        out.writeStaticString("\",\"type\":\"message\",\"status\":\"")
        out.writeStaticString(status)
        out.writeStaticString("\",\"role\":\"assistant\",\"content\":[")
        if let text {
            out.writeStaticString("{\"type\":\"output_text\",\"annotations\":[],\"text\":\"")
            out.writeBytes(text)
            out.writeStaticString("\"}")
        }
        out.writeStaticString("]}")
    }

    static func writeFunctionCallItem(
        into out: inout ByteBuffer,
        id: UnsafeRawBufferPointer,
        status: StaticString,
        arguments: UnsafeRawBufferPointer,
        callID: UnsafeRawBufferPointer,
        name: UnsafeRawBufferPointer
    ) {
        out.writeStaticString("{\"id\":\"")
        out.writeBytes(id)
        out.writeStaticString("\",\"type\":\"function_call\",\"status\":\"")
        out.writeStaticString(status)
        out.writeStaticString("\",\"arguments\":\"")
        out.writeBytes(arguments)
        out.writeStaticString("\",\"call_id\":\"")
        out.writeBytes(callID)
        out.writeStaticString("\",\"name\":\"")
        out.writeBytes(name)
        out.writeStaticString("\"}")
    }

    /// A reasoning item; `summary` nil writes `"summary":[]` (redacted reasoning, or the item as added).
    static func writeReasoningItem(
        into out: inout ByteBuffer, id: UnsafeRawBufferPointer, summary: UnsafeRawBufferPointer?, encryptedContent: String?
    ) {
        out.writeStaticString("{\"id\":\"")
        out.writeBytes(id)
        out.writeStaticString("\",\"type\":\"reasoning\",\"summary\":[")
        if let summary {
            out.writeStaticString("{\"type\":\"summary_text\",\"text\":\"")
            out.writeBytes(summary)
            out.writeStaticString("\"}")
        }
        out.writeStaticString("]")
        if let encryptedContent {
            out.writeStaticString(",\"encrypted_content\":")
            out.writeJSONString(encryptedContent)
        }
        out.writeStaticString("}")
    }

    /// How a response ended, as its `status` (and `incomplete_details.reason`) says.
    enum Outcome {
        case inProgress, completed
        case incomplete(reason: StaticString)
        /// `message` is escaped JSON string contents.
        case failed(code: String, message: [UInt8])

        init(_ finishReason: FinishReason) {
            switch finishReason {
            case .length: self = .incomplete(reason: "max_output_tokens")
            case .contentFilter: self = .incomplete(reason: "content_filter")
            case .stop, .toolCalls: self = .completed
            }
        }

        /// The terminal stream event for this outcome.
        var eventType: StaticString {
            switch self {
            case .inProgress: "response.in_progress"
            case .completed: "response.completed"
            case .incomplete: "response.incomplete"
            case .failed: "response.failed"
            }
        }
    }

    /// The `response` object. `head` is `"id":…,"object":"response","created_at":…`; `model` the
    /// escaped model name; `output` the items joined by commas.
    static func writeResponse(
        into out: inout ByteBuffer,
        head: UnsafeRawBufferPointer,
        model: UnsafeRawBufferPointer,
        outcome: Outcome,
        output: UnsafeRawBufferPointer,
        usage: TokenUsage?
    ) {
        out.writeStaticString("{")
        out.writeBytes(head)
        out.writeStaticString(",\"status\":\"")
        switch outcome {
        case .inProgress: out.writeStaticString("in_progress\",\"error\":null,\"incomplete_details\":null")
        case .completed: out.writeStaticString("completed\",\"error\":null,\"incomplete_details\":null")
        case .incomplete(let reason):
            out.writeStaticString("incomplete\",\"error\":null,\"incomplete_details\":{\"reason\":\"")
            out.writeStaticString(reason)
            out.writeStaticString("\"}")
        case .failed(let code, let message):
            out.writeStaticString("failed\",\"error\":{\"code\":")
            out.writeJSONString(code)
            out.writeStaticString(",\"message\":\"")
            out.writeBytes(message)
            out.writeStaticString("\"},\"incomplete_details\":null")
        }
        out.writeStaticString(",\"model\":\"")
        out.writeBytes(model)
        out.writeStaticString("\",\"output\":[")
        out.writeBytes(output)
        out.writeStaticString("],\"usage\":")
        if let usage {
            writeUsage(usage, into: &out)
        } else {
            out.writeStaticString("null")
        }
        out.writeStaticString("}")
    }

    /// `usage`: `input_tokens` counts every input token, cached or not (OpenAI's meaning; Bedrock's
    /// `inputTokens` excludes cache reads and writes, see ``TokenUsage/promptTokens``), `cached_tokens`
    /// the cache reads. Bedrock does not report reasoning tokens apart from output tokens, so
    /// `reasoning_tokens` is 0 (Codex requires the field when `output_tokens_details` is present).
    static func writeUsage(_ usage: TokenUsage, into out: inout ByteBuffer) {
        out.writeStaticString("{\"input_tokens\":")
        out.writeDecimal(usage.promptTokens)
        out.writeStaticString(",\"input_tokens_details\":{\"cached_tokens\":")
        out.writeDecimal(usage.cacheReadInputTokens)
        out.writeStaticString("},\"output_tokens\":")
        out.writeDecimal(usage.outputTokens)
        out.writeStaticString(",\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":")
        out.writeDecimal(usage.totalTokens)
        out.writeStaticString("}")
    }

    /// The `"id":…,"object":"response","created_at":…` members, built once per response.
    static func responseHead(id: String, createdAt: Int) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeStaticString("\"id\":")
        buffer.writeJSONString(id)
        buffer.writeStaticString(",\"object\":\"response\",\"created_at\":")
        buffer.writeDecimal(createdAt)
        return Array(buffer.readableBytesView)
    }

    static func escaped(_ text: String) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeJSONStringContents(text)
        return Array(buffer.readableBytesView)
    }

    /// The text of escaped JSON string contents (for sealing reasoning; once per block).
    static func unescaped(_ escaped: ByteBuffer) -> String? {
        var quoted: [UInt8] = [UInt8(ascii: "\"")]
        quoted.reserveCapacity(escaped.readableBytes + 2)
        quoted.append(contentsOf: escaped.readableBytesView)
        quoted.append(UInt8(ascii: "\""))
        let parsed = quoted.withUnsafeBytes { bytes in
            try? JSONParser.parse(bytes, maximumNestingDepth: 1)
        }
        return parsed?.stringValue
    }
}
