import Foundation
import NIOCore
import Testing

@testable import StreamCore

/// Frames shaped like Bedrock's ConverseStream (BEDROCK_API.md §2), built with the encoder.
enum ConverseFrames {
    static let padding = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

    static func event(_ type: String, _ json: String) -> ByteBuffer {
        self.frame([(":event-type", type), (":content-type", "application/json"), (":message-type", "event")], json)
    }

    static func exception(_ type: String, _ json: String) -> ByteBuffer {
        self.frame([(":exception-type", type), (":content-type", "application/json"), (":message-type", "exception")], json)
    }

    static func frame(_ headers: [(String, String)], _ json: String) -> ByteBuffer {
        let headers = headers.map { EventStreamHeader(name: $0.0, value: .init(string: $0.1)) }
        // Encoding fixed, valid headers cannot fail; an empty buffer would fail the test loudly.
        return (try? EventStreamEncoder.encode(headers: headers, payload: ByteBuffer(string: json))) ?? ByteBuffer()
    }

    /// Bedrock's `p` padding: a prefix of the alphabet of some length.
    static func pad(_ length: Int) -> String {
        String(self.padding.prefix(length))
    }

    static func messageStart() -> ByteBuffer { self.event("messageStart", #"{"p":"abcd","role":"assistant"}"#) }
    static func text(_ block: Int, _ escaped: String) -> ByteBuffer {
        self.event("contentBlockDelta", #"{"contentBlockIndex":\#(block),"delta":{"text":"\#(escaped)"},"p":"\#(self.pad(block + 7))"}"#)
    }
    static func toolStart(_ block: Int, id: String, name: String) -> ByteBuffer {
        self.event("contentBlockStart", #"{"contentBlockIndex":\#(block),"start":{"toolUse":{"toolUseId":"\#(id)","name":"\#(name)"}},"p":"ab"}"#)
    }
    static func toolInput(_ block: Int, _ escaped: String) -> ByteBuffer {
        self.event("contentBlockDelta", #"{"contentBlockIndex":\#(block),"delta":{"toolUse":{"input":"\#(escaped)"}},"p":"abc"}"#)
    }
    static func reasoning(_ block: Int, text: String) -> ByteBuffer {
        self.event("contentBlockDelta", #"{"contentBlockIndex":\#(block),"delta":{"reasoningContent":{"text":"\#(text)"}},"p":"a"}"#)
    }
    static func signature(_ block: Int, _ signature: String) -> ByteBuffer {
        self.event("contentBlockDelta", #"{"contentBlockIndex":\#(block),"delta":{"reasoningContent":{"signature":"\#(signature)"}},"p":"ab"}"#)
    }
    static func blockStop(_ block: Int) -> ByteBuffer {
        self.event("contentBlockStop", #"{"contentBlockIndex":\#(block),"p":"abcdefgh"}"#)
    }
    static func messageStop(_ reason: String) -> ByteBuffer {
        self.event("messageStop", #"{"p":"abcdef","stopReason":"\#(reason)"}"#)
    }
    static func metadata(input: Int, output: Int, cacheRead: Int = 0, cacheWrite: Int = 0) -> ByteBuffer {
        self.event(
            "metadata",
            #"{"metrics":{"latencyMs":412},"p":"abc","usage":{"cacheReadInputTokens":\#(cacheRead),"cacheWriteInputTokens":\#(cacheWrite),"inputTokens":\#(input),"outputTokens":\#(output),"totalTokens":\#(input + output + cacheRead + cacheWrite)}}"#
        )
    }

    static func stream(_ frames: [ByteBuffer]) -> ByteBuffer {
        var out = ByteBuffer()
        for frame in frames { out.writeImmutableBuffer(frame) }
        return out
    }
}

/// Decodes `upstream` in reads of the given sizes and translates every message, one output buffer per
/// read; returns everything written, as the client would receive it.
func translate(
    _ upstream: ByteBuffer,
    options: ChatChunkTranslator.Options = .init(id: "chatcmpl-test", created: 1_700_000_000, model: "claude-sonnet"),
    readSizes: some Sequence<Int> = [Int.max]
) -> (sse: String, translator: ChatChunkTranslator) {
    var decoder = EventStreamDecoder()
    var translator = ChatChunkTranslator(options: options)
    var client = ByteBuffer()
    var rest = upstream
    var sizes = readSizes.makeIterator()
    // What a read produced goes out even when a later frame of the same read is corrupt.
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

/// The SSE bytes of one chunk with `delta`, as OpenAI writes them.
func chunk(_ delta: String, finish: String? = nil, model: String = "claude-sonnet") -> String {
    let reason = finish.map { "\"\($0)\"" } ?? "null"
    return #"data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"\#(model)","choices":[{"index":0,"delta":\#(delta),"finish_reason":\#(reason)}]}"#
        + "\n\n"
}

let roleChunk = chunk(#"{"role":"assistant","content":""}"#)
let done = "data: [DONE]\n\n"

struct ChatChunkTranslatorTests {
    // MARK: Golden streams

    @Test("plain text")
    func plainText() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.text(0, "Hel"),
            ConverseFrames.text(0, #"lo, \"world\"\n"#),
            ConverseFrames.blockStop(0),
            ConverseFrames.messageStop("end_turn"),
            ConverseFrames.metadata(input: 12, output: 3),
        ])
        let (sse, translator) = translate(upstream)
        #expect(sse == roleChunk + chunk(#"{"content":"Hel"}"#) + chunk(#"{"content":"lo, \"world\"\n"}"#) + chunk("{}", finish: "stop") + done)
        #expect(translator.usage == TokenUsage(inputTokens: 12, outputTokens: 3))
        #expect(translator.ending == .completed)
    }

    @Test("two parallel tool calls after text: dense indexes 0 and 1")
    func twoParallelToolCalls() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.text(0, "Reading both."),
            ConverseFrames.blockStop(0),
            ConverseFrames.toolStart(1, id: "tooluse_A", name: "read_file"),
            ConverseFrames.toolInput(1, #"{\"path\":"#),
            ConverseFrames.toolInput(1, #"\"a.swift\"}"#),
            ConverseFrames.blockStop(1),
            ConverseFrames.toolStart(2, id: "tooluse_B", name: "read_file"),
            ConverseFrames.toolInput(2, #"{\"path\":\"b.swift\"}"#),
            ConverseFrames.blockStop(2),
            ConverseFrames.messageStop("tool_use"),
            ConverseFrames.metadata(input: 100, output: 40),
        ])
        let (sse, _) = translate(upstream)
        let expected = roleChunk
            + chunk(#"{"content":"Reading both."}"#)
            + chunk(#"{"tool_calls":[{"index":0,"id":"tooluse_A","type":"function","function":{"name":"read_file","arguments":""}}]}"#)
            + chunk(#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]}"#)
            + chunk(#"{"tool_calls":[{"index":0,"function":{"arguments":"\"a.swift\"}"}}]}"#)
            + chunk(#"{"tool_calls":[{"index":1,"id":"tooluse_B","type":"function","function":{"name":"read_file","arguments":""}}]}"#)
            + chunk(#"{"tool_calls":[{"index":1,"function":{"arguments":"{\"path\":\"b.swift\"}"}}]}"#)
            + chunk("{}", finish: "tool_calls")
            + done
        #expect(sse == expected)
    }

    @Test("a tool call with no text before it starts at index 0")
    func toolCallWithoutText() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.toolStart(0, id: "t1", name: "bash"),
            ConverseFrames.toolInput(0, #"{\"cmd\":\"ls\"}"#),
            ConverseFrames.blockStop(0),
            ConverseFrames.messageStop("tool_use"),
            ConverseFrames.metadata(input: 5, output: 6),
        ])
        let (sse, _) = translate(upstream)
        #expect(sse == roleChunk
            + chunk(#"{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"bash","arguments":""}}]}"#)
            + chunk(#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"cmd\":\"ls\"}"}}]}"#)
            + chunk("{}", finish: "tool_calls") + done)
    }

    @Test("reasoning with a signature, then text, then a tool call")
    func reasoningTextTool() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.reasoning(0, text: "Let me think"),
            ConverseFrames.reasoning(0, text: #" about \"it\"."#),
            ConverseFrames.signature(0, "EqQBCkYIARgCIkA="),
            ConverseFrames.blockStop(0),
            ConverseFrames.text(1, "I will look."),
            ConverseFrames.blockStop(1),
            ConverseFrames.toolStart(2, id: "tu_1", name: "grep"),
            ConverseFrames.toolInput(2, #"{}"#),
            ConverseFrames.blockStop(2),
            ConverseFrames.messageStop("tool_use"),
            ConverseFrames.metadata(input: 10, output: 20),
        ])
        let (sse, _) = translate(upstream)
        #expect(sse == roleChunk
            + chunk(#"{"reasoning_content":"Let me think"}"#)
            + chunk(#"{"reasoning_content":" about \"it\"."}"#)
            + chunk(#"{"thinking_blocks":[{"type":"thinking","thinking":"","signature":"EqQBCkYIARgCIkA="}]}"#)
            + chunk(#"{"content":"I will look."}"#)
            + chunk(#"{"tool_calls":[{"index":0,"id":"tu_1","type":"function","function":{"name":"grep","arguments":""}}]}"#)
            + chunk(#"{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}"#)
            + chunk("{}", finish: "tool_calls") + done)
    }

    @Test("redacted reasoning becomes a redacted_thinking block")
    func redactedReasoning() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.event("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"reasoningContent":{"redactedContent":"AAEC"}}}"#),
            ConverseFrames.messageStop("end_turn"),
        ])
        let (sse, _) = translate(upstream)
        #expect(sse == roleChunk + chunk(#"{"thinking_blocks":[{"type":"redacted_thinking","data":"AAEC"}]}"#)
            + chunk("{}", finish: "stop") + done)
    }

    @Test("stop reasons map to finish reasons", arguments: [
        ("max_tokens", "length"), ("stop_sequence", "stop"), ("end_turn", "stop"),
        ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"), ("tool_use", "tool_calls"),
        ("something_new", "stop"),
    ])
    func stopReasons(bedrock: String, openAI: String) {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(), ConverseFrames.text(0, "x"), ConverseFrames.messageStop(bedrock),
        ])
        let (sse, _) = translate(upstream)
        #expect(sse == roleChunk + chunk(#"{"content":"x"}"#) + chunk("{}", finish: openAI) + done)
    }

    @Test("in-stream throttling becomes an error event and no [DONE]")
    func inStreamThrottling() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.text(0, "partial"),
            ConverseFrames.exception("throttlingException", #"{"message":"Too many tokens, please wait before trying again."}"#),
            ConverseFrames.text(0, "never shown"),
        ])
        let (sse, translator) = translate(upstream)
        #expect(sse == roleChunk + chunk(#"{"content":"partial"}"#)
            + #"data: {"error":{"message":"Too many tokens, please wait before trying again.","type":"throttlingException","param":null,"code":"throttlingException"}}"#
            + "\n\n")
        #expect(translator.ending == .failed(code: "throttlingException"))
    }

    @Test("an unmodeled error frame becomes an error event")
    func unmodeledError() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.frame([(":message-type", "error"), (":error-code", "InternalFailure"), (":error-message", "it \"broke\"")], ""),
        ])
        let (sse, _) = translate(upstream)
        #expect(sse == roleChunk + #"data: {"error":{"message":"it \"broke\"","type":"InternalFailure","param":null,"code":"InternalFailure"}}"# + "\n\n")
    }

    @Test("include_usage adds a usage chunk with cache reads and writes")
    func includeUsage() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(), ConverseFrames.text(0, "hi"), ConverseFrames.messageStop("end_turn"),
            ConverseFrames.metadata(input: 120, output: 40, cacheRead: 100, cacheWrite: 7),
        ])
        let (sse, translator) = translate(upstream, options: .init(id: "chatcmpl-test", created: 1_700_000_000, model: "claude-sonnet", includeUsage: true))
        #expect(sse == roleChunk + chunk(#"{"content":"hi"}"#) + chunk("{}", finish: "stop")
            + #"data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet","choices":[],"usage":{"prompt_tokens":227,"completion_tokens":40,"total_tokens":267,"prompt_tokens_details":{"cached_tokens":100,"cache_creation_tokens":7}}}"#
            + "\n\n" + done)
        #expect(translator.usage == TokenUsage(inputTokens: 120, outputTokens: 40, cacheReadInputTokens: 100, cacheWriteInputTokens: 7))
    }

    @Test("the response-format tool streams its input as content and finishes with stop")
    func responseFormatTool() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.toolStart(0, id: "t", name: "respond_with_json"),
            ConverseFrames.toolInput(0, #"{\"a\":"#),
            ConverseFrames.toolInput(0, #"1}"#),
            ConverseFrames.messageStop("tool_use"),
        ])
        let options = ChatChunkTranslator.Options(
            id: "chatcmpl-test", created: 1_700_000_000, model: "claude-sonnet", responseFormatToolName: "respond_with_json"
        )
        let (sse, _) = translate(upstream, options: options)
        #expect(sse == roleChunk + chunk(#"{"content":"{\"a\":"}"#) + chunk(#"{"content":"1}"}"#) + chunk("{}", finish: "stop") + done)
    }

    @Test("the model name is escaped once into every chunk")
    func modelNameEscaped() {
        let upstream = ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.messageStop("end_turn")])
        let (sse, _) = translate(upstream, options: .init(id: "chatcmpl-test", created: 1_700_000_000, model: #"we"ird\"#))
        #expect(sse == chunk(#"{"role":"assistant","content":""}"#, model: #"we\"ird\\"#) + chunk("{}", finish: "stop", model: #"we\"ird\\"#) + done)
    }

    // MARK: Robustness

    @Test("field order, whitespace, padding and unknown fields do not matter")
    func tolerantScanning() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.event("contentBlockDelta", " {\n \"p\" : \"abc\\\"}\", \"delta\" : { \"citation\":{\"x\":[1,{\"y\":null}]}, \"text\" : \"ok\" } ,\"contentBlockIndex\" : 0 , \"extra\": [true,false,-1.5e3] } "),
            ConverseFrames.event("someFutureEvent", #"{"anything":1}"#),
            ConverseFrames.messageStop("end_turn"),
        ])
        let (sse, _) = translate(upstream)
        #expect(sse == roleChunk + chunk(#"{"content":"ok"}"#) + chunk("{}", finish: "stop") + done)
    }

    @Test("a malformed event payload ends the stream with an error", arguments: [
        #"{"contentBlockIndex":0,"delta":{"text":"unterminated}}"#,
        "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"raw \u{01} control\"}}",
        #"{"contentBlockIndex":0,"delta":{"text":"bad \q escape"}}"#,
        #"not json"#,
    ])
    func malformedPayload(json: String) {
        let upstream = ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.event("contentBlockDelta", json)])
        let (sse, translator) = translate(upstream)
        #expect(sse == roleChunk + #"data: {"error":{"message":"upstream sent a malformed event","type":"upstream_protocol_error","param":null,"code":"upstream_protocol_error"}}"# + "\n\n")
        #expect(translator.ending == .failed(code: "upstream_protocol_error"))
    }

    @Test("the padding member p is not read: its text changes nothing, while the delta's text is still checked")
    func paddingIsNotRead() {
        let events = [
            // Bedrock's layout with padding that is not well-formed JSON text: the delta is relayed.
            #"{"contentBlockIndex":0,"delta":{"text":"ok"},"p":"a\q"}"#,
            "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"ok\"},\"p\":\"raw \u{01}\"}",
            // Ends as `"}` after more members: the fast path ignores them, as the general scan does.
            #"{"contentBlockIndex":0,"delta":{"text":"ok"},"p":"abc","later":"x"}"#,
        ]
        for event in events {
            let upstream = ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.event("contentBlockDelta", event), ConverseFrames.messageStop("end_turn")])
            let (sse, _) = translate(upstream)
            #expect(sse == roleChunk + chunk(#"{"content":"ok"}"#) + chunk("{}", finish: "stop") + done, "\(event)")
        }
        // The text itself is read as strictly as before, padding or not.
        let bad = #"{"contentBlockIndex":0,"delta":{"text":"bad \q"},"p":"abc"}"#
        let (_, translator) = translate(ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.event("contentBlockDelta", bad)]))
        #expect(translator.ending == .failed(code: "upstream_protocol_error"))
        // A payload that does not end as the padding string does goes to the general scan, which
        // refuses the unterminated padding.
        let cut = #"{"contentBlockIndex":0,"delta":{"text":"ok"},"p":"abc}"#
        let (_, cutTranslator) = translate(ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.event("contentBlockDelta", cut)]))
        #expect(cutTranslator.ending == .failed(code: "upstream_protocol_error"))
    }

    @Test("tool input for a block that never started is refused")
    func orphanToolInput() {
        let upstream = ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.toolInput(3, "{}")])
        let (_, translator) = translate(upstream)
        #expect(translator.ending == .failed(code: "upstream_protocol_error"))
    }

    @Test("a stream that ends before messageStop ends with an error, not [DONE]")
    func truncatedBeforeStop() {
        let upstream = ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.text(0, "cut")])
        let (sse, translator) = translate(upstream)
        #expect(sse.hasSuffix(#"data: {"error":{"message":"the upstream stream ended before the response was complete","type":"upstream_truncated","param":null,"code":"upstream_truncated"}}"# + "\n\n"))
        #expect(!sse.contains("[DONE]"))
        #expect(translator.ending == .failed(code: "upstream_truncated"))
    }

    @Test("a corrupt frame ends the stream with an error and none of its bytes reach the client")
    func corruptFrame() {
        var bad = ConverseFrames.text(0, "SECRET-CORRUPT")
        bad.setInteger(UInt8(ascii: "X"), at: bad.readerIndex + bad.readableBytes - 10)
        let upstream = ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.text(0, "ok"), bad, ConverseFrames.messageStop("end_turn")])
        let (sse, translator) = translate(upstream)
        #expect(sse == roleChunk + chunk(#"{"content":"ok"}"#)
            + #"data: {"error":{"message":"upstream sent a corrupt event stream","type":"message_checksum","param":null,"code":"message_checksum"}}"# + "\n\n")
        #expect(!sse.contains("SECRET"))
        #expect(translator.ending == .failed(code: "message_checksum"))
    }

    // MARK: Properties

    static let mixedStream = ConverseFrames.stream([
        ConverseFrames.messageStart(),
        ConverseFrames.reasoning(0, text: "hmm"), ConverseFrames.signature(0, "c2ln"), ConverseFrames.blockStop(0),
        ConverseFrames.text(1, #"Here \u00e9\ud83d\ude00 \"q\""#), ConverseFrames.blockStop(1),
        ConverseFrames.toolStart(2, id: "a", name: "f"), ConverseFrames.toolInput(2, #"{\"k\":"#), ConverseFrames.toolInput(2, "1}"),
        ConverseFrames.toolStart(3, id: "b", name: "g"), ConverseFrames.toolInput(3, "{}"),
        ConverseFrames.messageStop("tool_use"), ConverseFrames.metadata(input: 9, output: 8, cacheRead: 7, cacheWrite: 6),
    ])

    @Test("the SSE output is identical for every split of the upstream bytes")
    func everySplit() async {
        let options = ChatChunkTranslator.Options(id: "chatcmpl-test", created: 1_700_000_000, model: "m", includeUsage: true)
        let whole = translate(Self.mixedStream, options: options).sse
        #expect(whole.hasSuffix(done))
        let count = Self.mixedStream.readableBytes
        for size in [1, 2, 3, 7, 12, 13, 100, 1000] {
            await Task.yield()
            #expect(translate(Self.mixedStream, options: options, readSizes: Array(repeating: size, count: count)).sse == whole, "reads of \(size)")
        }
        for cut in 0...count {
            // A whole translation each, hundreds of them: let other tasks run (see `decodeStream`).
            await Task.yield()
            #expect(translate(Self.mixedStream, options: options, readSizes: [cut, Int.max]).sse == whole, "cut at \(cut)")
        }
        var rng = SeededGenerator(seed: 31)
        for _ in 0..<50 {
            await Task.yield()
            let sizes = (0..<count).map { _ in Int.random(in: 0...64, using: &rng) }
            #expect(translate(Self.mixedStream, options: options, readSizes: sizes).sse == whole)
        }
    }

    @Test("every chunk is valid JSON and the usage chunk equals the metadata numbers")
    func chunksParseAndUsageAddsUp() throws {
        let options = ChatChunkTranslator.Options(id: "chatcmpl-test", created: 1_700_000_000, model: "m", includeUsage: true)
        let events = try sseEvents(translate(Self.mixedStream, options: options).sse)
        #expect(events.last == "[DONE]")
        var usage: [String: Any]?
        for data in events.dropLast() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])
            #expect(object["id"] as? String == "chatcmpl-test")
            if let found = object["usage"] as? [String: Any] { usage = found }
        }
        let reported = try #require(usage)
        #expect(reported["prompt_tokens"] as? Int == 9 + 7 + 6)
        #expect(reported["completion_tokens"] as? Int == 8)
        #expect(reported["total_tokens"] as? Int == 9 + 7 + 6 + 8)
        #expect((reported["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 7)
    }
}

/// The `data:` payloads of an SSE text, parsed with the project's incremental parser.
func sseEvents(_ sse: String) throws -> [String] {
    var parser = SSEParser()
    parser.feed(ByteBuffer(string: sse))
    var events: [String] = []
    while let event = try parser.next() { events.append(event.data) }
    #expect(!parser.hasPendingEvent)
    return events
}
