package import NIOCore

/// Relays one Bedrock InvokeModelWithResponseStream of a Claude model as Anthropic Messages
/// server-sent events, with the API shape of ``ChatChunkTranslator`` so the gateway's one stream
/// pump drives either.
///
/// The per-chunk work is ``InvokeStreamTranslator``'s: decode the `chunk` frame's base64 into one
/// reused buffer, meter usage, and write `event: <type>\ndata: <json>\n\n` with the JSON bytes as
/// Bedrock's model produced them (message_start, content_block_*, message_delta, message_stop,
/// Bedrock's `amazon-bedrock-invocationMetrics` left in place: the SDKs ignore unknown members).
/// This type adds how the stream ends.
///
/// ```swift
/// var translator = AnthropicStreamTranslator()
/// var out = ByteBuffer()
/// while let message = try decoder.next() { translator.translate(message, into: &out) }
/// translator.finish(into: &out)   // at the end of the upstream body
/// ```
///
/// Errors after the first byte become `event: error` with Anthropic's error types, and the stream
/// ends: throttling → `rate_limit_error`; service unavailable and model not ready →
/// `overloaded_error`; validation → `invalid_request_error`; anything else (model stream errors,
/// corrupt or malformed frames, truncation, time limits) → `api_error`.
package struct AnthropicStreamTranslator {
    /// How the stream ended, once it has.
    package enum Ending: Hashable, Sendable {
        /// `message_stop` arrived.
        case completed
        /// An exception or error frame, a malformed event, a truncated stream, or a failure reported
        /// with ``fail(code:message:into:)``: an `error` event was written. `code` is the Bedrock
        /// exception name or the gateway's code (bounded; a metric label).
        case failed(code: String)
    }

    private var inner = InvokeStreamTranslator()
    private var sawEvent = false

    /// Set once the stream has ended; later input is ignored.
    package private(set) var ending: Ending?
    /// Whether any byte has been written for the client yet.
    package private(set) var hasWrittenEvent = false

    package init() {}

    /// Usage metered so far: `nil` before `message_start`; final once ``ending`` is `.completed`
    /// (Bedrock's invocation metrics in `message_stop` win over the model's own counts).
    package var usage: TokenUsage? { self.sawEvent ? self.inner.usage : nil }
    /// Bytes of generated text, thinking and tool input so far (escaped as they arrived): what the
    /// output is estimated from when a stream ends before its usage.
    package var producedBytes: Int { self.inner.producedBytes }
    /// Anthropic's `stop_reason` (`end_turn`, `tool_use`, `max_tokens`, …) once `message_delta` came.
    package var finishReason: String? { self.inner.stopReason }

    // MARK: Translating

    /// Translates one decoded message, appending zero or one SSE event to `out`.
    package mutating func translate(_ message: EventStreamMessage, into out: inout ByteBuffer) {
        guard self.ending == nil else { return }
        switch self.inner.translate(message, into: &out) {
        case .event:
            self.sawEvent = true
            self.hasWrittenEvent = true
            if self.inner.isComplete { self.ending = .completed }
        case .skipped:
            break
        case .failed(let type, _):
            self.hasWrittenEvent = true
            self.ending = .failed(code: type)
        case .malformed:
            self.hasWrittenEvent = true
            self.ending = .failed(code: "upstream_protocol_error")
        }
    }

    /// Ends the stream when the upstream body has ended: nothing more after `message_stop`,
    /// otherwise an `api_error` event, since a stream cut before `message_stop` is incomplete (the
    /// SDKs would otherwise report a truncated message as finished).
    package mutating func finish(into out: inout ByteBuffer) {
        guard self.ending == nil else { return }
        self.writeError(
            code: "upstream_truncated", type: "api_error",
            message: "the upstream stream ended before the response was complete", into: &out
        )
    }

    /// Ends the stream with an `error` event for a failure outside the frames: a corrupt frame, a
    /// dropped connection, a time limit.
    ///
    /// - Parameters:
    ///   - code: a short fixed code (`message_checksum`, `upstream_timeout`, or a Bedrock exception
    ///     name such as `throttlingException`); it picks the Anthropic error type.
    ///   - message: text for the user; must not contain secrets or upstream bodies.
    package mutating func fail(code: String, message: String, into out: inout ByteBuffer) {
        guard self.ending == nil else { return }
        self.writeError(code: code, type: Self.errorType(forCode: code), message: message, into: &out)
    }

    /// Anthropic's error type for a failure code: Bedrock exception names as
    /// ``InvokeStreamTranslator/anthropicErrorType(forBedrockException:)`` maps them, the gateway's
    /// own `rate_limited` and `overloaded`, else `api_error`.
    package static func errorType(forCode code: String) -> String {
        switch code {
        case "rate_limited", "rate_limit_error": "rate_limit_error"
        case "overloaded", "overloaded_error": "overloaded_error"
        default: InvokeStreamTranslator.anthropicErrorType(forBedrockException: code)
        }
    }

    private mutating func writeError(code: String, type: String, message: String, into out: inout ByteBuffer) {
        InvokeStreamTranslator.writeError(type: type, message: message, into: &out)
        self.hasWrittenEvent = true
        self.ending = .failed(code: code)
    }
}

@available(*, unavailable)
extension AnthropicStreamTranslator: Sendable {}

/// What an InvokeModel answer (not streamed) says about itself: its JSON body is already an
/// Anthropic Messages response, so the gateway returns it unchanged and only reads these.
package struct AnthropicResponseSummary: Sendable, Hashable {
    /// `usage` (`input_tokens`, `output_tokens`, `cache_read_input_tokens`,
    /// `cache_creation_input_tokens`); `nil` when the body has none.
    package var usage: TokenUsage?
    /// `stop_reason`, as written.
    package var stopReason: String?

    package init(usage: TokenUsage? = nil, stopReason: String? = nil) {
        self.usage = usage
        self.stopReason = stopReason
    }

    /// Reads the summary with the scanner (no tree is built); a body that is not a JSON object gives
    /// what was read before the malformed part, possibly nothing.
    package init(body: ByteBuffer) {
        self.init()
        body.withUnsafeReadableBytes { bytes in
            var scanner = JSONScanner(bytes)
            try? scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                if scanner.bytes(in: key, equal: "stop_reason"), scanner.peek() == UInt8(ascii: "\"") {
                    let range = try scanner.readString()
                    self.stopReason = JSONParser.string(validatingUTF8: UnsafeRawBufferPointer(rebasing: bytes[range]))
                } else if scanner.bytes(in: key, equal: "usage"), scanner.peek() == UInt8(ascii: "{") {
                    var usage = TokenUsage()
                    try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                        guard scanner.peek() != UInt8(ascii: "n") else { return try scanner.skipValue() }
                        if scanner.bytes(in: key, equal: "input_tokens") {
                            usage.inputTokens = try scanner.readInteger()
                        } else if scanner.bytes(in: key, equal: "output_tokens") {
                            usage.outputTokens = try scanner.readInteger()
                        } else if scanner.bytes(in: key, equal: "cache_read_input_tokens") {
                            usage.cacheReadInputTokens = try scanner.readInteger()
                        } else if scanner.bytes(in: key, equal: "cache_creation_input_tokens") {
                            usage.cacheWriteInputTokens = try scanner.readInteger()
                        } else {
                            try scanner.skipValue()
                        }
                    }
                    self.usage = usage
                } else {
                    try scanner.skipValue()
                }
            }
        }
    }
}
