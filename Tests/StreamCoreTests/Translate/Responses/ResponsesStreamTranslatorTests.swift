import Foundation
import NIOCore
import Testing

@testable import StreamCore

/// A sealer for tests only: readable, reversible, and obviously not cryptography.
struct TestSealer: ResponsesReasoningSealer, ResponsesReasoningOpener {
    func seal(_ reasoning: SealedReasoning) -> String {
        "sealed:" + Data(reasoning.plaintext).base64EncodedString()
    }

    func open(_ encryptedContent: String) -> SealedReasoning? {
        guard encryptedContent.hasPrefix("sealed:"), let data = Data(base64Encoded: String(encryptedContent.dropFirst(7))) else { return nil }
        return SealedReasoning(plaintext: data)
    }
}

/// Decodes `upstream` in reads of the given sizes and runs a ``ResponsesStreamTranslator`` over it,
/// one output buffer per read, as the gateway's pump does; returns what the client receives.
func translateResponses(
    _ upstream: ByteBuffer,
    options: ResponsesStreamTranslator.Options = ResponsesGolden.options,
    readSizes: some Sequence<Int> = [Int.max]
) -> (sse: String, translator: ResponsesStreamTranslator) {
    var decoder = EventStreamDecoder()
    var translator = ResponsesStreamTranslator(options: options)
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

/// The expected bytes, written out by hand from OpenAI's event shapes (an oracle independent of
/// the writers under test).
enum ResponsesGolden {
    static let options = ResponsesStreamTranslator.Options(id: "resp_test", createdAt: 1_700_000_000, model: "claude-sonnet")

    /// One event: `fields` are the members between `type` and `sequence_number`, with a leading comma.
    static func event(_ type: String, _ fields: String, _ sequence: Int) -> String {
        "event: \(type)\ndata: {\"type\":\"\(type)\"\(fields),\"sequence_number\":\(sequence)}\n\n"
    }

    static func response(_ statusMembers: String, output: [String] = [], usage: String = "null") -> String {
        #"{"id":"resp_test","object":"response","created_at":1700000000,"status":\#(statusMembers),"model":"claude-sonnet","output":[\#(output.joined(separator: ","))],"usage":\#(usage)}"#
    }

    static let inProgress = #""in_progress","error":null,"incomplete_details":null"#
    static let completed = #""completed","error":null,"incomplete_details":null"#

    static func usage(input: Int, output: Int, cached: Int = 0) -> String {
        #"{"input_tokens":\#(input),"input_tokens_details":{"cached_tokens":\#(cached)},"output_tokens":\#(output),"output_tokens_details":{"reasoning_tokens":0},"total_tokens":\#(input + output)}"#
    }

    /// `response.created` and `response.in_progress` (sequence numbers 0 and 1).
    static let start = event("response.created", ",\"response\":" + response(inProgress), 0)
        + event("response.in_progress", ",\"response\":" + response(inProgress), 1)

    static func message(_ id: String, _ status: String, _ text: String?) -> String {
        let content = text.map { #"{"type":"output_text","annotations":[],"text":"\#($0)"}"# } ?? ""
        return #"{"id":"\#(id)","type":"message","status":"\#(status)","role":"assistant","content":[\#(content)]}"#
    }

    static func functionCall(_ id: String, _ status: String, arguments: String, callID: String, name: String) -> String {
        #"{"id":"\#(id)","type":"function_call","status":"\#(status)","arguments":"\#(arguments)","call_id":"\#(callID)","name":"\#(name)"}"#
    }

    static func reasoning(_ id: String, summary: String?, encrypted: String? = nil) -> String {
        let parts = summary.map { #"{"type":"summary_text","text":"\#($0)"}"# } ?? ""
        let sealed = encrypted.map { #","encrypted_content":"\#($0)""# } ?? ""
        return #"{"id":"\#(id)","type":"reasoning","summary":[\#(parts)]\#(sealed)}"#
    }

    /// A whole text item from `first`: added, part added, the deltas, the three `.done` events.
    static func textItem(index: Int, deltas: [String], status: String = "completed", first: Int) -> (events: String, item: String) {
        let id = "msg_test_\(index)"
        let ref = #","item_id":"\#(id)","output_index":\#(index),"content_index":0"#
        let text = deltas.joined()
        var sequence = first
        func next() -> Int {
            defer { sequence += 1 }
            return sequence
        }
        var events = event("response.output_item.added", #","output_index":\#(index),"item":\#(message(id, "in_progress", nil))"#, next())
        events += event("response.content_part.added", ref + #","part":{"type":"output_text","annotations":[],"text":""}"#, next())
        for delta in deltas {
            events += event("response.output_text.delta", ref + #","delta":"\#(delta)","logprobs":[]"#, next())
        }
        events += event("response.output_text.done", ref + #","text":"\#(text)","logprobs":[]"#, next())
        events += event("response.content_part.done", ref + #","part":{"type":"output_text","annotations":[],"text":"\#(text)"}"#, next())
        let item = message(id, status, text)
        events += event("response.output_item.done", #","output_index":\#(index),"item":\#(item)"#, next())
        return (events, item)
    }

    static func callItem(index: Int, callID: String, name: String, deltas: [String], first: Int) -> (events: String, item: String) {
        let id = "fc_test_\(index)"
        let ref = #","item_id":"\#(id)","output_index":\#(index)"#
        let arguments = deltas.joined()
        var sequence = first
        func next() -> Int {
            defer { sequence += 1 }
            return sequence
        }
        var events = event(
            "response.output_item.added",
            #","output_index":\#(index),"item":\#(functionCall(id, "in_progress", arguments: "", callID: callID, name: name))"#, next()
        )
        for delta in deltas {
            events += event("response.function_call_arguments.delta", ref + #","delta":"\#(delta)""#, next())
        }
        events += event("response.function_call_arguments.done", ref + #","name":"\#(name)","arguments":"\#(arguments)""#, next())
        let item = functionCall(id, "completed", arguments: arguments, callID: callID, name: name)
        events += event("response.output_item.done", #","output_index":\#(index),"item":\#(item)"#, next())
        return (events, item)
    }
}

struct ResponsesStreamTranslatorTests {
    typealias G = ResponsesGolden

    // MARK: Golden streams

    @Test("plain text: created, in_progress, one message item, completed with usage")
    func plainText() throws {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.text(0, "Hel"),
            ConverseFrames.text(0, #"lo, \"world\"\n"#),
            ConverseFrames.blockStop(0),
            ConverseFrames.messageStop("end_turn"),
            ConverseFrames.metadata(input: 12, output: 3),
        ])
        let (sse, translator) = translateResponses(upstream)
        let text = G.textItem(index: 0, deltas: ["Hel", #"lo, \"world\"\n"#], first: 2)
        let expected = G.start + text.events
            + G.event("response.completed", ",\"response\":" + G.response(G.completed, output: [text.item], usage: G.usage(input: 12, output: 3)), 9)
        #expect(sse == expected)
        #expect(translator.usage == TokenUsage(inputTokens: 12, outputTokens: 3))
        #expect(translator.ending == .completed)
        #expect(translator.finishReason == .stop)
        try checkEvents(sse)
    }

    @Test("two parallel function calls after text: one item each, call ids from toolUseId")
    func twoParallelFunctionCalls() throws {
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
            ConverseFrames.metadata(input: 100, output: 40, cacheRead: 80),
        ])
        let (sse, translator) = translateResponses(upstream)
        let text = G.textItem(index: 0, deltas: ["Reading both."], first: 2)
        let callA = G.callItem(index: 1, callID: "tooluse_A", name: "read_file", deltas: [#"{\"path\":"#, #"\"a.swift\"}"#], first: 8)
        let callB = G.callItem(index: 2, callID: "tooluse_B", name: "read_file", deltas: [#"{\"path\":\"b.swift\"}"#], first: 13)
        let expected = G.start + text.events + callA.events + callB.events
            + G.event(
                "response.completed",
                ",\"response\":" + G.response(G.completed, output: [text.item, callA.item, callB.item], usage: G.usage(input: 180, output: 40, cached: 80)),
                17
            )
        #expect(sse == expected)
        #expect(translator.finishReason == .toolCalls)
        try checkEvents(sse)
    }

    @Test("a function call without input gets one {} delta, so its arguments parse")
    func callWithoutInput() throws {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.toolStart(0, id: "t1", name: "list"),
            ConverseFrames.blockStop(0),
            ConverseFrames.messageStop("tool_use"),
        ])
        let (sse, _) = translateResponses(upstream)
        let call = G.callItem(index: 0, callID: "t1", name: "list", deltas: ["{}"], first: 2)
        #expect(sse == G.start + call.events + G.event("response.completed", ",\"response\":" + G.response(G.completed, output: [call.item]), 6))
        try checkEvents(sse)
    }

    @Test("a call of a namespace's tool is named back with its namespace; other calls as they came")
    func namespacedCall() throws {
        let request = try ResponsesRequestMapper(configuration: .init(opener: TestSealer())).map(ByteBuffer(string: #"""
            {"model":"claude-sonnet","input":"go","tools":[{"type":"function","name":"list"},{"type":"namespace","name":"multi_agent_v1","description":"Sub-agents.","tools":[{"type":"function","name":"spawn_agent"}]}]}
            """#))
        var options = G.options
        options.toolNamespaces = request.toolNamespaces
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.toolStart(0, id: "t1", name: "multi_agent_v1__spawn_agent"),
            ConverseFrames.toolInput(0, "{}"),
            ConverseFrames.blockStop(0),
            ConverseFrames.toolStart(1, id: "t2", name: "list"),
            ConverseFrames.blockStop(1),
            ConverseFrames.messageStop("tool_use"),
        ])
        let (sse, _) = translateResponses(upstream, options: options)
        let spawn = G.callItem(index: 0, callID: "t1", name: #"spawn_agent","namespace":"multi_agent_v1"#, deltas: ["{}"], first: 2)
        let list = G.callItem(index: 1, callID: "t2", name: "list", deltas: ["{}"], first: 6)
        #expect(sse == G.start + spawn.events + list.events + G.event("response.completed", ",\"response\":" + G.response(G.completed, output: [spawn.item, list.item]), 10))
        try checkEvents(sse)
    }

    @Test("reasoning with a signature, then text, then a function call; sealed when asked")
    func reasoningTextCall() throws {
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
        var options = G.options
        options.sealer = TestSealer()
        let (sse, _) = translateResponses(upstream, options: options)
        let sealed = TestSealer().seal(.signed(text: #"Let me think about "it"."#, signature: "EqQBCkYIARgCIkA="))
        let ref = #","item_id":"rs_test_0","output_index":0,"summary_index":0"#
        let summary = #"Let me think about \"it\"."#
        let reasoningItem = G.reasoning("rs_test_0", summary: summary, encrypted: sealed)
        let reasoningEvents = G.event("response.output_item.added", #","output_index":0,"item":\#(G.reasoning("rs_test_0", summary: nil))"#, 2)
            + G.event("response.reasoning_summary_part.added", ref + #","part":{"type":"summary_text","text":""}"#, 3)
            + G.event("response.reasoning_summary_text.delta", ref + #","delta":"Let me think""#, 4)
            + G.event("response.reasoning_summary_text.delta", ref + #","delta":" about \"it\".""#, 5)
            + G.event("response.reasoning_summary_text.done", ref + #","text":"\#(summary)""#, 6)
            + G.event("response.reasoning_summary_part.done", ref + #","part":{"type":"summary_text","text":"\#(summary)"}"#, 7)
            + G.event("response.output_item.done", #","output_index":0,"item":\#(reasoningItem)"#, 8)
        let text = G.textItem(index: 1, deltas: ["I will look."], first: 9)
        let call = G.callItem(index: 2, callID: "tu_1", name: "grep", deltas: ["{}"], first: 15)
        let expected = G.start + reasoningEvents + text.events + call.events
            + G.event(
                "response.completed",
                ",\"response\":" + G.response(G.completed, output: [reasoningItem, text.item, call.item], usage: G.usage(input: 10, output: 20)),
                19
            )
        #expect(sse == expected)
        try checkEvents(sse)
        // The sealed block opens back to the exact text and signature.
        #expect(TestSealer().open(sealed) == .signed(text: #"Let me think about "it"."#, signature: "EqQBCkYIARgCIkA="))
    }

    @Test("without a sealer a reasoning item has no encrypted_content")
    func reasoningUnsealed() {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.reasoning(0, text: "hmm"),
            ConverseFrames.signature(0, "c2ln"),
            ConverseFrames.blockStop(0),
            ConverseFrames.messageStop("end_turn"),
        ])
        let (sse, _) = translateResponses(upstream)
        #expect(sse.contains(#""item":{"id":"rs_test_0","type":"reasoning","summary":[{"type":"summary_text","text":"hmm"}]}"#))
        #expect(!sse.contains("encrypted_content"))
    }

    @Test("redacted reasoning becomes a reasoning item with no summary and the data sealed")
    func redactedReasoning() throws {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.event("contentBlockDelta", #"{"contentBlockIndex":0,"delta":{"reasoningContent":{"redactedContent":"AAEC"}}}"#),
            ConverseFrames.blockStop(0),
            ConverseFrames.messageStop("end_turn"),
        ])
        var options = G.options
        options.sealer = TestSealer()
        let (sse, _) = translateResponses(upstream, options: options)
        let item = G.reasoning("rs_test_0", summary: nil, encrypted: TestSealer().seal(.redacted(data: "AAEC")))
        #expect(sse == G.start
            + G.event("response.output_item.added", #","output_index":0,"item":\#(G.reasoning("rs_test_0", summary: nil))"#, 2)
            + G.event("response.output_item.done", #","output_index":0,"item":\#(item)"#, 3)
            + G.event("response.completed", ",\"response\":" + G.response(G.completed, output: [item]), 4))
        try checkEvents(sse)
    }

    @Test("stop reasons: completed, or incomplete with the reason", arguments: [
        ("end_turn", "completed", nil), ("stop_sequence", "completed", nil), ("tool_use", "completed", nil),
        ("max_tokens", "incomplete", "max_output_tokens"), ("model_context_window_exceeded", "incomplete", "max_output_tokens"),
        ("content_filtered", "incomplete", "content_filter"), ("guardrail_intervened", "incomplete", "content_filter"),
        ("something_new", "completed", nil),
    ] as [(String, String, String?)])
    func stopReasons(bedrock: String, status: String, reason: String?) throws {
        // No blockStop: the message item is still open at messageStop, as when a limit cuts it.
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(), ConverseFrames.text(0, "x"), ConverseFrames.messageStop(bedrock),
            ConverseFrames.metadata(input: 1, output: 1),
        ])
        let (sse, translator) = translateResponses(upstream)
        let itemStatus = bedrock == "max_tokens" || bedrock == "model_context_window_exceeded" ? "incomplete" : "completed"
        let text = G.textItem(index: 0, deltas: ["x"], status: itemStatus, first: 2)
        let members = reason.map { #""incomplete","error":null,"incomplete_details":{"reason":"\#($0)"}"# } ?? G.completed
        let type = status == "completed" ? "response.completed" : "response.incomplete"
        #expect(sse == G.start + text.events + G.event(type, ",\"response\":" + G.response(members, output: [text.item], usage: G.usage(input: 1, output: 1)), 8))
        #expect(translator.ending == .completed)
        try checkEvents(sse)
    }

    @Test("in-stream throttling becomes response.failed with the completed items; nothing follows")
    func inStreamThrottling() throws {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.text(0, "done part"),
            ConverseFrames.blockStop(0),
            ConverseFrames.text(1, "partial"),
            ConverseFrames.exception("throttlingException", #"{"message":"Too many tokens, please wait before trying again."}"#),
            ConverseFrames.text(1, "never shown"),
            ConverseFrames.messageStop("end_turn"),
        ])
        let (sse, translator) = translateResponses(upstream)
        let first = G.textItem(index: 0, deltas: ["done part"], first: 2)
        let ref = #","item_id":"msg_test_1","output_index":1,"content_index":0"#
        let failed = #""failed","error":{"code":"throttlingException","message":"Too many tokens, please wait before trying again."},"incomplete_details":null"#
        let expected = G.start + first.events
            + G.event("response.output_item.added", #","output_index":1,"item":\#(G.message("msg_test_1", "in_progress", nil))"#, 8)
            + G.event("response.content_part.added", ref + #","part":{"type":"output_text","annotations":[],"text":""}"#, 9)
            + G.event("response.output_text.delta", ref + #","delta":"partial","logprobs":[]"#, 10)
            + G.event("response.failed", ",\"response\":" + G.response(failed, output: [first.item]), 11)
        #expect(sse == expected)
        #expect(translator.ending == .failed(code: "throttlingException"))
        try checkEvents(sse)
    }

    @Test("a corrupt frame ends the stream with response.failed and none of its bytes reach the client")
    func corruptFrame() throws {
        var bad = ConverseFrames.text(0, "SECRET-CORRUPT")
        bad.setInteger(UInt8(ascii: "X"), at: bad.readerIndex + bad.readableBytes - 10)
        let upstream = ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.text(0, "ok"), bad, ConverseFrames.messageStop("end_turn")])
        let (sse, translator) = translateResponses(upstream)
        let ref = #","item_id":"msg_test_0","output_index":0,"content_index":0"#
        let failed = #""failed","error":{"code":"message_checksum","message":"upstream sent a corrupt event stream"},"incomplete_details":null"#
        #expect(sse == G.start
            + G.event("response.output_item.added", #","output_index":0,"item":\#(G.message("msg_test_0", "in_progress", nil))"#, 2)
            + G.event("response.content_part.added", ref + #","part":{"type":"output_text","annotations":[],"text":""}"#, 3)
            + G.event("response.output_text.delta", ref + #","delta":"ok","logprobs":[]"#, 4)
            + G.event("response.failed", ",\"response\":" + G.response(failed), 5))
        #expect(!sse.contains("SECRET"))
        #expect(translator.ending == .failed(code: "message_checksum"))
        try checkEvents(sse)
    }

    @Test("an exception before any event still starts the response first")
    func exceptionFirst() throws {
        let upstream = ConverseFrames.stream([
            ConverseFrames.exception("serviceUnavailableException", #"{"message":"busy"}"#),
        ])
        let (sse, _) = translateResponses(upstream)
        let failed = #""failed","error":{"code":"serviceUnavailableException","message":"busy"},"incomplete_details":null"#
        #expect(sse == G.start + G.event("response.failed", ",\"response\":" + G.response(failed), 2))
        try checkEvents(sse)
    }

    @Test("a stream cut before messageStop fails; one that lacks only metadata completes without usage")
    func truncation() throws {
        let cut = translateResponses(ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.text(0, "cut")]))
        #expect(cut.translator.ending == .failed(code: "upstream_truncated"))
        #expect(cut.sse.contains(#""error":{"code":"upstream_truncated","message":"the upstream stream ended before the response was complete"}"#))
        try checkEvents(cut.sse)

        let noUsage = translateResponses(ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.text(0, "a"), ConverseFrames.messageStop("end_turn")]))
        #expect(noUsage.translator.ending == .completed)
        #expect(noUsage.sse.hasSuffix(#""usage":null},"sequence_number":8}"# + "\n\n"))
        try checkEvents(noUsage.sse)
    }

    @Test("the response-format tool streams as message text and completes")
    func responseFormatTool() throws {
        let upstream = ConverseFrames.stream([
            ConverseFrames.messageStart(),
            ConverseFrames.toolStart(0, id: "t", name: "respond_with_json"),
            ConverseFrames.toolInput(0, #"{\"a\":"#),
            ConverseFrames.toolInput(0, "1}"),
            ConverseFrames.blockStop(0),
            ConverseFrames.messageStop("tool_use"),
        ])
        var options = G.options
        options.responseFormatToolName = "respond_with_json"
        let (sse, translator) = translateResponses(upstream, options: options)
        let text = G.textItem(index: 0, deltas: [#"{\"a\":"#, "1}"], first: 2)
        #expect(sse == G.start + text.events + G.event("response.completed", ",\"response\":" + G.response(G.completed, output: [text.item]), 9))
        #expect(translator.finishReason == .stop)
    }

    @Test("a malformed event payload fails the response", arguments: [
        #"{"contentBlockIndex":0,"delta":{"text":"unterminated}}"#,
        "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"raw \u{01} control\"}}",
        #"not json"#,
    ])
    func malformedPayload(json: String) throws {
        let (sse, translator) = translateResponses(ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.event("contentBlockDelta", json)]))
        #expect(translator.ending == .failed(code: "upstream_protocol_error"))
        try checkEvents(sse)
    }

    @Test("tool input for a block that never started fails the response")
    func orphanToolInput() {
        let (_, translator) = translateResponses(ConverseFrames.stream([ConverseFrames.messageStart(), ConverseFrames.toolInput(3, "{}")]))
        #expect(translator.ending == .failed(code: "upstream_protocol_error"))
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
    func everySplit() async throws {
        var options = G.options
        options.sealer = TestSealer()
        let whole = translateResponses(Self.mixedStream, options: options).sse
        #expect(whole.contains("response.completed"))
        try checkEvents(whole)
        let count = Self.mixedStream.readableBytes
        for size in [1, 2, 3, 7, 12, 13, 100, 1000] {
            await Task.yield()
            #expect(translateResponses(Self.mixedStream, options: options, readSizes: Array(repeating: size, count: count)).sse == whole, "reads of \(size)")
        }
        for cut in 0...count {
            // A whole translation each, hundreds of them: let other tasks run (see `decodeStream`).
            await Task.yield()
            #expect(translateResponses(Self.mixedStream, options: options, readSizes: [cut, Int.max]).sse == whole, "cut at \(cut)")
        }
        var rng = SeededGenerator(seed: 47)
        for _ in 0..<50 {
            await Task.yield()
            let sizes = (0..<count).map { _ in Int.random(in: 0...64, using: &rng) }
            #expect(translateResponses(Self.mixedStream, options: options, readSizes: sizes).sse == whole)
        }
    }

    @Test("what the deltas add up to equals the done events and response.completed; usage adds up")
    func deltasEqualDone() throws {
        let events = try checkEvents(translateResponses(Self.mixedStream).sse)
        var text = ""
        var arguments: [String: String] = [:]
        var completed: [String: Any]?
        for event in events {
            switch event["type"] as? String {
            case "response.output_text.delta": text += try #require(event["delta"] as? String)
            case "response.output_text.done": #expect(event["text"] as? String == text)
            case "response.function_call_arguments.delta":
                arguments[try #require(event["item_id"] as? String), default: ""] += try #require(event["delta"] as? String)
            case "response.function_call_arguments.done":
                #expect(event["arguments"] as? String == arguments[try #require(event["item_id"] as? String)])
            case "response.completed": completed = event["response"] as? [String: Any]
            default: break
            }
        }
        #expect(text == "Here é😀 \"q\"")
        let response = try #require(completed)
        let output = try #require(response["output"] as? [[String: Any]])
        #expect(output.map { $0["type"] as? String } == ["reasoning", "message", "function_call", "function_call"])
        #expect(output[2]["arguments"] as? String == #"{"k":1}"#)
        #expect(output[3]["call_id"] as? String == "b")
        let usage = try #require(response["usage"] as? [String: Any])
        #expect(usage["input_tokens"] as? Int == 9 + 7 + 6)
        #expect(usage["output_tokens"] as? Int == 8)
        #expect(usage["total_tokens"] as? Int == 9 + 7 + 6 + 8)
        #expect((usage["input_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == 7)
    }
}

/// Checks every event: an `event:` line naming the same type as the `data:` JSON (parsed with
/// Foundation), and sequence numbers 0, 1, 2, …; returns the parsed payloads.
@discardableResult
func checkEvents(_ sse: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
    var payloads: [[String: Any]] = []
    let blocks = sse.components(separatedBy: "\n\n")
    #expect(blocks.last == "", "the stream ends with a blank line", sourceLocation: sourceLocation)
    for (index, block) in blocks.dropLast().enumerated() {
        let lines = block.components(separatedBy: "\n")
        #expect(lines.count == 2 && lines[0].hasPrefix("event: ") && lines[1].hasPrefix("data: "), "\(block)", sourceLocation: sourceLocation)
        guard lines.count == 2 else { continue }
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(lines[1].dropFirst(6).utf8)) as? [String: Any], sourceLocation: sourceLocation
        )
        #expect(object["type"] as? String == String(lines[0].dropFirst(7)), sourceLocation: sourceLocation)
        #expect(object["sequence_number"] as? Int == index, sourceLocation: sourceLocation)
        payloads.append(object)
    }
    return payloads
}
