/// OpenAI's `finish_reason` for a Bedrock `stopReason`.
///
/// Shared by the non-streaming response mapper and the streaming translator; the byte-based
/// initializer compares against static UTF-8 so the per-chunk path allocates nothing.
///
/// | Bedrock `stopReason` | OpenAI `finish_reason` |
/// |---|---|
/// | `end_turn`, `stop_sequence` | `stop` |
/// | `max_tokens`, `model_context_window_exceeded` | `length` |
/// | `tool_use` | `tool_calls` |
/// | `content_filtered`, `guardrail_intervened` | `content_filter` |
/// | anything else (`malformed_model_output`, `malformed_tool_use`, new values) | `stop` |
///
/// `model_context_window_exceeded` becomes `length` because the output was cut short by a token
/// limit, which is what `length` tells a client (retry with less context), not a natural stop.
package enum FinishReason: Sendable, Hashable {
    case stop
    case length
    case toolCalls
    case contentFilter

    /// Maps the raw `stopReason` bytes (the JSON string's contents, without quotes).
    package init(bedrockStopReason bytes: some Collection<UInt8>) {
        if Self.equals(bytes, "end_turn") || Self.equals(bytes, "stop_sequence") {
            self = .stop
        } else if Self.equals(bytes, "tool_use") {
            self = .toolCalls
        } else if Self.equals(bytes, "max_tokens") || Self.equals(bytes, "model_context_window_exceeded") {
            self = .length
        } else if Self.equals(bytes, "content_filtered") || Self.equals(bytes, "guardrail_intervened") {
            self = .contentFilter
        } else {
            self = .stop
        }
    }

    package init(bedrockStopReason: String) {
        self.init(bedrockStopReason: bedrockStopReason.utf8)
    }

    /// The OpenAI value, without quotes; write it with `ByteBuffer.writeStaticString`.
    package var openAIValue: StaticString {
        switch self {
        case .stop: "stop"
        case .length: "length"
        case .toolCalls: "tool_calls"
        case .contentFilter: "content_filter"
        }
    }

    private static func equals(_ bytes: some Collection<UInt8>, _ literal: StaticString) -> Bool {
        guard bytes.count == literal.utf8CodeUnitCount else { return false }
        return literal.withUTF8Buffer { bytes.elementsEqual($0) }
    }
}
