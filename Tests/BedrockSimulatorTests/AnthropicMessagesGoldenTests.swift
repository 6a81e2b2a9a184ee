import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// The Anthropic Messages path against the simulator: requests mapped by `AnthropicRequestMapper`,
/// InvokeModelWithResponseStream answers relayed by `AnthropicStreamTranslator` into the exact SSE a
/// client receives, and the simulator's per-model betas (`invalid beta flag`).
struct AnthropicMessagesGoldenTests {
    static let sonnet = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0"
    static let invokeStream = "/model/\(sonnet)/invoke-with-response-stream"

    /// The SSE for the simulator's answer to `body`, with Bedrock's latencies (wall-clock) set to 0.
    static func sse(_ simulator: Simulator, _ body: String, headers: [(String, String)] = []) async throws -> (String, AnthropicStreamTranslator) {
        let (response, bytes) = try await simulator.send(Self.invokeStream, body: body, headers: headers)
        #expect(response.status == .ok)
        var decoder = EventStreamDecoder()
        var translator = AnthropicStreamTranslator()
        var out = ByteBuffer()
        try decoder.feed(bytes)
        while let message = try decoder.next() {
            translator.translate(message, into: &out)
        }
        try decoder.finish()
        translator.finish(into: &out)
        let sse = String(buffer: out)
            .replacing(/"invocationLatency":\d+/, with: #""invocationLatency":0"#)
            .replacing(/"firstByteLatency":\d+/, with: #""firstByteLatency":0"#)
        return (sse, translator)
    }

    static func event(_ type: String, _ json: String) -> String {
        "event: \(type)\ndata: \(json)\n\n"
    }

    static let claudeModel = "claude-sonnet-4-5-20250929"

    @Test("text: the simulator's events as SSE, byte for byte")
    func text() async throws {
        try await Simulator.run { simulator in
            let (sse, translator) = try await Self.sse(simulator, Bodies.anthropic("Hi [[sim chunks=2 chunk_size=4]]"))
            #expect(
                sse == Self.event("message_start", #"{"type":"message_start","message":{"id":"msg_bdrk_01w1o9ECsloDdb1WZ5jWJdX9","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":39,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#)
                    + Self.event("content_block_start", #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#)
                    + Self.event("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"past"}}"#)
                    + Self.event("content_block_delta", #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" C:\\"}}"#)
                    + Self.event("content_block_stop", #"{"type":"content_block_stop","index":0}"#)
                    + Self.event("message_delta", #"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2}}"#)
                    + Self.event("message_stop", #"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":39,"outputTokenCount":2,"invocationLatency":0,"firstByteLatency":0}}"#)
            )
            #expect(translator.ending == .completed)
            #expect(translator.usage == TokenUsage(inputTokens: 39, outputTokens: 2))
        }
    }

    @Test("thinking with a signature, text, and a tool call named from the request")
    func thinkingTextTool() async throws {
        try await Simulator.run { simulator in
            let (sse, translator) = try await Self.sse(
                simulator, Bodies.anthropic(#"go [[sim reasoning=1 chunks=1 tools=1 tool_input={"command":"ls"}]]"#, tools: ["Bash"])
            )
            let events = sse.split(separator: "\n\n").map(String.init)
            let types = events.map { $0.split(separator: "\n").first.map(String.init) ?? "" }
            #expect(
                types == [
                    "event: message_start",
                    "event: content_block_start", "event: content_block_delta", "event: content_block_delta", "event: content_block_delta",
                    "event: content_block_delta", "event: content_block_stop",
                    "event: content_block_start", "event: content_block_delta", "event: content_block_stop",
                    "event: content_block_start", "event: content_block_delta", "event: content_block_delta", "event: content_block_delta",
                    "event: content_block_delta", "event: content_block_stop",
                    "event: message_delta", "event: message_stop",
                ]
            )
            #expect(events[1].hasSuffix(#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#))
            #expect(events[2].hasSuffix(#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants a \"simulated\" answer; "}}"#))
            #expect(events[5].contains(#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":""#))
            #expect(events[10].contains(#""content_block":{"type":"tool_use","id":"toolu_bdrk_01"#) && events[10].hasSuffix(#","name":"Bash","input":{}}}"#))
            #expect(events[11].hasSuffix(#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"co"}}"#))
            #expect(events[16].hasSuffix(#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":8}}"#))
            #expect(translator.finishReason == "tool_use")
            #expect(translator.ending == .completed)
        }
    }

    @Test("an in-stream exception after the first bytes: the events before it, then one error event")
    func inStreamException() async throws {
        try await Simulator.run { simulator in
            let (sse, translator) = try await Self.sse(simulator, Bodies.anthropic("busy [[sim chunks=4 exception_after=3 exception=throttlingException]]"))
            #expect(sse.hasPrefix("event: message_start\n"))
            #expect(sse.split(separator: "event: content_block_delta\n").count == 2)
            #expect(sse.hasSuffix(#"event: error"# + "\n" + #"data: {"type":"error","error":{"type":"rate_limit_error","message":"Too many requests, please wait before trying again."}}"# + "\n\n"))
            #expect(translator.ending == .failed(code: "throttlingException"))
        }
    }

    @Test("a corrupt frame from the simulator: the decoder stops it and the client gets api_error")
    func corruptFrame() async throws {
        try await Simulator.run { simulator in
            let (response, bytes) = try await simulator.send(Self.invokeStream, body: Bodies.anthropic("x [[sim chunks=3 corrupt_after=2]]"))
            #expect(response.status == .ok)
            let (sse, translator) = StreamRelay.relay(bytes)
            #expect(sse.split(separator: "event: ").count == 3)  // two events, then the error
            #expect(sse.hasSuffix(#"data: {"type":"error","error":{"type":"api_error","message":"upstream sent a corrupt event stream"}}"# + "\n\n"))
            #expect(translator.ending == .failed(code: "message_checksum"))
        }
    }

    // MARK: Betas

    static let claudeCodeBetas = [
        "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20"
    ]
    static let claudeCodeBody = #"{"model":"claude-sonnet-4-5-20250929","messages":[{"role":"user","content":"Run ls [[sim chunks=1]]"}],"tools":[{"name":"Bash","input_schema":{"type":"object"}},{"name":"Deferred","input_schema":{"type":"object"},"defer_loading":true}],"max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999},"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},"stream":true}"#

    @Test("a model that takes only interleaved thinking: Claude Code's betas as sent fail, filtered they pass")
    func strictModel() async throws {
        let accepted = ["*claude-sonnet-4-5*": ["interleaved-thinking-2025-05-14"]]
        try await Simulator.run(acceptedBetas: accepted) { simulator in
            let path = Self.invokeStream
            // Passthrough: Bedrock's answer to the raw betas.
            let raw = try AnthropicRequestMapper(configuration: .init(betas: .init(mode: .passthrough)))
                .map(ByteBuffer(string: Self.claudeCodeBody), betaHeaders: Self.claudeCodeBetas, region: "us-east-1")
            let (refused, refusedBody) = try await simulator.send(path, body: String(buffer: raw.body))
            #expect(refused.status == .badRequest)
            #expect(refused.headers.first(name: "x-amzn-ErrorType")?.hasPrefix("ValidationException:") == true)
            #expect(String(buffer: refusedBody) == #"{"message":"invalid beta flag"}"#)

            // The built-in table keeps context management for Sonnet 4.5, which this model refuses:
            // the gateway's retry without betas works, and the refusal is remembered.
            let refusals = AnthropicBetaRefusals()
            let mapper = AnthropicRequestMapper(configuration: .init(betas: .init(refusals: refusals)))
            let first = try mapper.map(ByteBuffer(string: Self.claudeCodeBody), betaHeaders: Self.claudeCodeBetas, region: "us-east-1")
            #expect(first.betas == ["interleaved-thinking-2025-05-14", "context-management-2025-06-27"])
            #expect(try await simulator.send(path, body: String(buffer: first.body)).response.status == .badRequest)
            #expect(refusals.remember(model: first.modelID, refused: first.betas) == first.betas)
            let retried = try mapper.map(ByteBuffer(string: Self.claudeCodeBody), betaHeaders: Self.claudeCodeBetas, region: "us-east-1")
            #expect(retried.betas.isEmpty)
            #expect(try await simulator.send(path, body: String(buffer: retried.body)).response.status == .ok)

            // A table that matches the model: one call, no refusal.
            let strict = AnthropicBetaPolicy(rules: [.init(model: "claude-sonnet-4-5", change: .replace(["interleaved-thinking-2025-05-14"]))])
            let filtered = try AnthropicRequestMapper(configuration: .init(betas: strict))
                .map(ByteBuffer(string: Self.claudeCodeBody), betaHeaders: Self.claudeCodeBetas, region: "us-east-1")
            #expect(filtered.betas == ["interleaved-thinking-2025-05-14"])
            let (ok, stream) = try await simulator.send(path, body: String(buffer: filtered.body))
            #expect(ok.status == .ok)
            #expect(StreamRelay.relay(stream).translator.ending == .completed)

            // Other models take everything (no configured key matches them).
            let haiku = "/model/us.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke"
            #expect(try await simulator.send(haiku, body: String(buffer: raw.body)).response.status == .ok)
        }
    }

    @Test("[[sim accept_betas=…]] sets the accepted values per request, over the configuration")
    func acceptBetasDirective() async throws {
        try await Simulator.run(acceptedBetas: ["*": []]) { simulator in
            func body(_ directive: String, betas: String) -> String {
                #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"anthropic_beta":[\#(betas)],"messages":[{"role":"user","content":"x \#(directive)"}]}"#
            }
            let path = "/model/\(Self.sonnet)/invoke"
            let cases: [(String, String, HTTPResponseStatus)] = [
                ("", #""a""#, .badRequest),  // the configuration accepts none
                ("", "", .ok),
                ("[[sim accept_betas=a,b chunks=1]]", #""b","a""#, .ok),
                ("[[sim accept_betas=a,b chunks=1]]", #""a","c""#, .badRequest),
                ("[[sim accept_betas=* chunks=1]]", #""anything""#, .ok),
                ("[[sim accept_betas= chunks=1]]", #""a""#, .badRequest),
            ]
            for (directive, betas, status) in cases {
                let (response, answer) = try await simulator.send(path, body: body(directive, betas: betas))
                #expect(response.status == status, "\(directive) \(betas)")
                if status == .badRequest { #expect(String(buffer: answer) == #"{"message":"invalid beta flag"}"#) }
            }
            // The header form reads the list too, and keeps reading pairs after it.
            let (response, _) = try await simulator.send(
                path, body: body("", betas: #""a""#), headers: [("x-sluice-sim-scenario", "accept_betas=a,c,chunks=1")]
            )
            #expect(response.status == .ok)
        }
    }

    @Test("reasoning=auto: a signed thinking block exactly when the request enables thinking")
    func reasoningFollowsThinking() async throws {
        try await Simulator.run { simulator in
            let thinking = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":2048,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":"x [[sim reasoning=auto chunks=1]]"}]}"#
            let plain = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":2048,"messages":[{"role":"user","content":"x [[sim reasoning=auto chunks=1]]"}]}"#
            let (withThinking, _) = try await Self.sse(simulator, thinking)
            #expect(withThinking.contains(#""signature_delta""#) && withThinking.contains(#""content_block":{"type":"thinking""#))
            let (without, _) = try await Self.sse(simulator, plain)
            #expect(!without.contains("thinking"))
        }
    }

    @Test("CountTokens answers a deterministic inputTokens for the mapped body")
    func countTokens() async throws {
        try await Simulator.run { simulator in
            let request = try AnthropicRequestMapper().map(ByteBuffer(string: Self.claudeCodeBody), betaHeaders: Self.claudeCodeBetas, region: "us-east-1")
            var base64 = ByteBuffer()
            base64.writeBase64ForTests(request.body)
            let countBody = #"{"input":{"invokeModel":{"body":""# + String(buffer: base64) + #""}}}"#
            let path = "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens"
            let (first, firstBytes) = try await simulator.send(path, body: countBody)
            let (_, secondBytes) = try await simulator.send(path, body: countBody)
            #expect(first.status == .ok)
            #expect(String(buffer: firstBytes) == #"{"inputTokens":\#(request.body.readableBytes / 4)}"#)
            #expect(firstBytes == secondBytes)
        }
    }
}

/// Relays a whole upstream body as the gateway would, corrupt frames included.
enum StreamRelay {
    static func relay(_ bytes: ByteBuffer) -> (sse: String, translator: AnthropicStreamTranslator) {
        var decoder = EventStreamDecoder()
        var translator = AnthropicStreamTranslator()
        var out = ByteBuffer()
        do {
            try decoder.feed(bytes)
            while let message = try decoder.next() {
                translator.translate(message, into: &out)
            }
            try decoder.finish()
            translator.finish(into: &out)
        } catch let error as EventStreamError {
            translator.fail(code: error.code.description, message: "upstream sent a corrupt event stream", into: &out)
        } catch {
            translator.fail(code: "internal", message: "unexpected", into: &out)
        }
        return (String(buffer: out), translator)
    }
}
