import Foundation
import NIOCore
import Testing

@testable import StreamCore

/// Decodes `upstream` in reads of the given sizes and relays every message as Anthropic SSE, one
/// output buffer per read, as the gateway's pump does; returns what the client receives.
func relayAnthropic(_ upstream: ByteBuffer, readSizes: some Sequence<Int> = [Int.max]) -> (sse: String, translator: AnthropicStreamTranslator) {
    var decoder = EventStreamDecoder()
    var translator = AnthropicStreamTranslator()
    var client = ByteBuffer()
    var rest = upstream
    var sizes = readSizes.makeIterator()
    var out = ByteBuffer()
    do {
        while rest.readableBytes > 0 {
            let size = min(sizes.next() ?? Int.max, rest.readableBytes)
            // Safe to force unwrap: size <= readableBytes.
            try decoder.feed(rest.readSlice(length: size)!)
            while let message = try decoder.next() {
                translator.translate(message, into: &out)
            }
            client.writeBuffer(&out)
        }
        try decoder.finish()
        translator.finish(into: &client)
    } catch let error as EventStreamError {
        client.writeBuffer(&out)
        translator.fail(code: error.code.description, message: "upstream sent a corrupt event stream", into: &client)
    } catch {
        translator.fail(code: "internal", message: "unexpected", into: &client)
    }
    return (String(buffer: client), translator)
}

/// One SSE event as Anthropic writes it.
func anthropicEvent(_ type: String, _ json: String) -> String {
    "event: \(type)\ndata: \(json)\n\n"
}

/// Anthropic streaming events of a thinking + text + tool-use answer, as Bedrock's Claude sends them.
enum AnthropicEvents {
    static let messageStart = #"{"type":"message_start","message":{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":2048,"cache_creation_input_tokens":0,"cache_read_input_tokens":1900,"output_tokens":1}}}"#
    static let thinkingStart = #"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#
    static let thinking1 = #"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants \"ls\"; "}}"#
    static let thinking2 = #"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"run Bash.\n"}}"#
    static let signature = #"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYIARgCIkB0aGlzIGlzIGEgc2lnbmF0dXJl"}}"#
    static let stop0 = #"{"type":"content_block_stop","index":0}"#
    static let textStart = #"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#
    static let text = #"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Listing — ✓ \"files\"\n"}}"#
    static let stop1 = #"{"type":"content_block_stop","index":1}"#
    static let toolStart = #"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_bdrk_01XYZ","name":"Bash","input":{}}}"#
    static let tool1 = #"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#
    static let tool2 = #"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"ls"}}"#
    static let tool3 = #"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":" -la\"}"}}"#
    static let stop2 = #"{"type":"content_block_stop","index":2}"#
    static let messageDelta = #"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":87}}"#
    static let messageStop = #"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":2048,"outputTokenCount":88,"invocationLatency":2210,"firstByteLatency":640,"cacheReadInputTokenCount":1900,"cacheWriteInputTokenCount":0}}"#

    static let all = [
        messageStart, thinkingStart, thinking1, thinking2, signature, stop0, textStart, text, stop1, toolStart, tool1, tool2,
        tool3, stop2, messageDelta, messageStop,
    ]
    static let types = [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta",
        "content_block_stop", "content_block_start", "content_block_delta", "content_block_stop", "content_block_start",
        "content_block_delta", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop",
    ]
}

struct AnthropicStreamTranslatorTests {
    // MARK: Golden streams

    @Test("text: every event spliced as the model wrote it, usage from Bedrock's invocation metrics")
    func text() {
        let events = [
            InvokeFrames.messageStart, InvokeFrames.blockStart, InvokeFrames.delta, InvokeFrames.blockStop, InvokeFrames.messageDelta,
            InvokeFrames.messageStop,
        ]
        let (sse, translator) = relayAnthropic(ConverseFrames.stream(events.map(InvokeFrames.chunk)))
        #expect(
            sse == """
                event: message_start
                data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":7,"cache_read_input_tokens":100,"output_tokens":1}}}

                event: content_block_start
                data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

                event: content_block_delta
                data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \\"there\\" ✓"}}

                event: content_block_stop
                data: {"type":"content_block_stop","index":0}

                event: message_delta
                data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

                event: message_stop
                data: {"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":25,"outputTokenCount":16,"invocationLatency":900,"firstByteLatency":300}}


                """
        )
        #expect(translator.ending == .completed)
        #expect(translator.finishReason == "end_turn")
        #expect(translator.usage == TokenUsage(inputTokens: 25, outputTokens: 16, cacheReadInputTokens: 100, cacheWriteInputTokens: 7))
        #expect(translator.producedBytes == #"Hi \"there\" ✓"#.utf8.count)
    }

    @Test("thinking with its signature, then text, then a tool call")
    func thinkingTextTool() {
        let (sse, translator) = relayAnthropic(ConverseFrames.stream(AnthropicEvents.all.map(InvokeFrames.chunk)))
        #expect(sse == zip(AnthropicEvents.types, AnthropicEvents.all).map(anthropicEvent).joined())
        #expect(sse.contains(#"event: content_block_delta"# + "\n" + #"data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYIARgCIkB0aGlzIGlzIGEgc2lnbmF0dXJl"}}"#))
        #expect(translator.ending == .completed)
        #expect(translator.finishReason == "tool_use")
        #expect(translator.usage == TokenUsage(inputTokens: 2048, outputTokens: 88, cacheReadInputTokens: 1900, cacheWriteInputTokens: 0))
    }

    @Test("a tool call alone: input_json_delta pieces pass through in order")
    func toolUse() {
        let events = [
            AnthropicEvents.messageStart, AnthropicEvents.toolStart, AnthropicEvents.tool1, AnthropicEvents.tool2, AnthropicEvents.tool3,
            AnthropicEvents.stop2, AnthropicEvents.messageDelta, #"{"type":"message_stop"}"#,
        ]
        let (sse, translator) = relayAnthropic(ConverseFrames.stream(events.map(InvokeFrames.chunk)))
        let expected = anthropicEvent("message_start", AnthropicEvents.messageStart)
            + anthropicEvent("content_block_start", #"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_bdrk_01XYZ","name":"Bash","input":{}}}"#)
            + anthropicEvent("content_block_delta", #"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#)
            + anthropicEvent("content_block_delta", #"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"ls"}}"#)
            + anthropicEvent("content_block_delta", #"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":" -la\"}"}}"#)
            + anthropicEvent("content_block_stop", #"{"type":"content_block_stop","index":2}"#)
            + anthropicEvent("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":87}}"#)
            + anthropicEvent("message_stop", #"{"type":"message_stop"}"#)
        #expect(sse == expected)
        // Without invocation metrics: input and cache counts from message_start, output from message_delta.
        #expect(translator.usage == TokenUsage(inputTokens: 2048, outputTokens: 87, cacheReadInputTokens: 1900, cacheWriteInputTokens: 0))
        #expect(translator.producedBytes == #"{\"command\": \"ls"#.utf8.count + #" -la\"}"#.utf8.count)
    }

    @Test("an exception frame mid-stream becomes an error event of Anthropic's type, and the stream ends", arguments: [
        ("throttlingException", "rate_limit_error"),
        ("serviceUnavailableException", "overloaded_error"),
        ("modelStreamErrorException", "api_error"),
        ("internalServerException", "api_error"),
        ("validationException", "invalid_request_error"),
    ])
    func exceptionMidStream(exception: String, errorType: String) {
        let upstream = ConverseFrames.stream([
            InvokeFrames.chunk(AnthropicEvents.messageStart),
            InvokeFrames.chunk(AnthropicEvents.textStart),
            InvokeFrames.chunk(AnthropicEvents.text),
            ConverseFrames.exception(exception, #"{"message":"Too many tokens, please \"wait\"."}"#),
            InvokeFrames.chunk(AnthropicEvents.stop1),
        ])
        let (sse, translator) = relayAnthropic(upstream)
        #expect(
            sse == anthropicEvent("message_start", AnthropicEvents.messageStart)
                + anthropicEvent("content_block_start", AnthropicEvents.textStart)
                + anthropicEvent("content_block_delta", AnthropicEvents.text)
                + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"\(errorType)\",\"message\":\"Too many tokens, please \\\"wait\\\".\"}}\n\n"
        )
        #expect(translator.ending == .failed(code: exception))
        #expect(translator.usage?.inputTokens == 2048)
    }

    @Test("an unmodeled error frame becomes an api_error event")
    func unmodeledError() {
        let upstream = ConverseFrames.stream([
            InvokeFrames.chunk(AnthropicEvents.messageStart),
            ConverseFrames.frame([(":message-type", "error"), (":error-code", "InternalFailure"), (":error-message", "it broke")], ""),
        ])
        let (sse, translator) = relayAnthropic(upstream)
        #expect(sse.hasSuffix(#"event: error"# + "\n" + #"data: {"type":"error","error":{"type":"api_error","message":"it broke"}}"# + "\n\n"))
        #expect(translator.ending == .failed(code: "InternalFailure"))
    }

    @Test("a corrupt frame ends the stream with an api_error event and none of its bytes reach the client")
    func corruptFrame() {
        var bad = InvokeFrames.chunk(#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"SECRET-CORRUPT"}}"#)
        bad.setInteger(UInt8(ascii: "X"), at: bad.readerIndex + bad.readableBytes - 12)
        let upstream = ConverseFrames.stream([
            InvokeFrames.chunk(AnthropicEvents.messageStart), InvokeFrames.chunk(AnthropicEvents.textStart), bad,
            InvokeFrames.chunk(AnthropicEvents.stop1),
        ])
        let (sse, translator) = relayAnthropic(upstream)
        #expect(
            sse == anthropicEvent("message_start", AnthropicEvents.messageStart)
                + anthropicEvent("content_block_start", AnthropicEvents.textStart)
                + #"event: error"# + "\n" + #"data: {"type":"error","error":{"type":"api_error","message":"upstream sent a corrupt event stream"}}"# + "\n\n"
        )
        #expect(!sse.contains("SECRET"))
        #expect(translator.ending == .failed(code: "message_checksum"))
    }

    @Test("a chunk whose payload is not what Bedrock sends ends the stream with api_error", arguments: [
        #"{"bytes":"not base64!"}"#, #"{"bytes":"YWJj"}"#, #"{"nobytes":1}"#, #"{"bytes":"e30="}"#,
    ])
    func malformedChunk(payload: String) {
        let upstream = ConverseFrames.stream([InvokeFrames.chunk(AnthropicEvents.messageStart), ConverseFrames.event("chunk", payload)])
        let (sse, translator) = relayAnthropic(upstream)
        #expect(sse.hasSuffix(#"data: {"type":"error","error":{"type":"api_error","message":"upstream sent a malformed event"}}"# + "\n\n"))
        #expect(translator.ending == .failed(code: "upstream_protocol_error"))
    }

    @Test("a stream that ends before message_stop ends with an api_error event")
    func truncated() {
        let upstream = ConverseFrames.stream([InvokeFrames.chunk(AnthropicEvents.messageStart), InvokeFrames.chunk(AnthropicEvents.textStart)])
        let (sse, translator) = relayAnthropic(upstream)
        #expect(sse.hasSuffix(#"event: error"# + "\n" + #"data: {"type":"error","error":{"type":"api_error","message":"the upstream stream ended before the response was complete"}}"# + "\n\n"))
        #expect(translator.ending == .failed(code: "upstream_truncated"))
        #expect(translator.finishReason == nil)
    }

    @Test("fail(code:) picks the error type; nothing is written after the stream ended")
    func failAfterEnd() {
        var translator = AnthropicStreamTranslator()
        var out = ByteBuffer()
        #expect(translator.usage == nil)
        #expect(!translator.hasWrittenEvent)
        translator.fail(code: "overloaded", message: "upstream busy", into: &out)
        #expect(String(buffer: out) == #"event: error"# + "\n" + #"data: {"type":"error","error":{"type":"overloaded_error","message":"upstream busy"}}"# + "\n\n")
        #expect(translator.ending == .failed(code: "overloaded"))
        translator.fail(code: "upstream_timeout", message: "again", into: &out)
        translator.finish(into: &out)
        translator.translate(Self.decode(InvokeFrames.chunk(AnthropicEvents.messageStart)), into: &out)
        #expect(String(buffer: out).components(separatedBy: "event:").count == 2)
        #expect(AnthropicStreamTranslator.errorType(forCode: "throttlingException") == "rate_limit_error")
        #expect(AnthropicStreamTranslator.errorType(forCode: "upstream_timeout") == "api_error")
    }

    private static func decode(_ frame: ByteBuffer) -> EventStreamMessage {
        var decoder = EventStreamDecoder()
        try? decoder.feed(frame)
        // The frame was built by the encoder: it decodes.
        return (try? decoder.next()).flatMap { $0 } ?? EventStreamMessage(headers: EventStreamHeaders(), payload: ByteBuffer())
    }

    // MARK: Properties

    @Test("the SSE output is identical for every split of the upstream bytes")
    func everySplit() async {
        let upstream = ConverseFrames.stream(AnthropicEvents.all.map(InvokeFrames.chunk))
        let whole = relayAnthropic(upstream).sse
        #expect(whole.hasSuffix(anthropicEvent("message_stop", AnthropicEvents.messageStop)))
        let count = upstream.readableBytes
        for size in [1, 2, 3, 7, 12, 13, 100, 1000] {
            await Task.yield()
            #expect(relayAnthropic(upstream, readSizes: Array(repeating: size, count: count)).sse == whole, "reads of \(size)")
        }
        for cut in 0...count {
            // A whole translation each, hundreds of them: let other tasks run (see `decodeStream`).
            await Task.yield()
            #expect(relayAnthropic(upstream, readSizes: [cut, Int.max]).sse == whole, "cut at \(cut)")
        }
        var rng = SeededGenerator(seed: 15)
        for _ in 0..<50 {
            await Task.yield()
            let sizes = (0..<count).map { _ in Int.random(in: 0...64, using: &rng) }
            #expect(relayAnthropic(upstream, readSizes: sizes).sse == whole)
        }
    }

    @Test("every event's data parses as JSON and names its own type")
    func eventsParse() throws {
        let sse = relayAnthropic(ConverseFrames.stream(AnthropicEvents.all.map(InvokeFrames.chunk))).sse
        var parser = SSEParser()
        parser.feed(ByteBuffer(string: sse))
        var count = 0
        while let event = try parser.next() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any])
            #expect(object["type"] as? String == event.event)
            count += 1
        }
        #expect(count == AnthropicEvents.all.count)
    }

    // MARK: Non-streamed answers

    @Test("a non-streamed InvokeModel answer: usage and stop reason read, body untouched")
    func responseSummary() {
        let body = ByteBuffer(string: #"{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"usage: {\"x\":1}"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":3,"cache_read_input_tokens":40,"output_tokens":7,"server_tool_use":null}}"#)
        let summary = AnthropicResponseSummary(body: body)
        #expect(summary.stopReason == "max_tokens")
        #expect(summary.usage == TokenUsage(inputTokens: 12, outputTokens: 7, cacheReadInputTokens: 40, cacheWriteInputTokens: 3))
        #expect(AnthropicResponseSummary(body: ByteBuffer(string: "not json")) == AnthropicResponseSummary())
    }
}
