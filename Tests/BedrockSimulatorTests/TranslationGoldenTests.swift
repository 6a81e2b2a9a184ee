import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// Golden streams recorded from the simulator's scenarios: the ConverseStream bytes the simulator
/// sends over HTTP, translated by `ChatChunkTranslator` into the exact OpenAI SSE bytes a client gets.
/// The encoder-built goldens (StreamCoreTests) pin each mapping alone; these pin whole answers as the
/// simulator shapes them, including the fault keys only its HTTP route applies.
struct TranslationGoldenTests {
    static let converseStream = "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"

    /// The SSE a client receives for the simulator's answer to `body` (translated in one pass, as
    /// it arrived: `translate` in StreamCoreTests already shows every split gives the same bytes).
    static func sse(_ simulator: Simulator, _ body: String, scenario: String? = nil) async throws -> String {
        let headers = scenario.map { [("x-sluice-sim-scenario", $0)] } ?? []
        let (response, bytes) = try await simulator.send(Self.converseStream, body: body, headers: headers)
        #expect(response.status == .ok)
        var decoder = EventStreamDecoder()
        var translator = ChatChunkTranslator(options: .init(id: "chatcmpl-sim", created: 1_700_000_000, model: "claude-sonnet", includeUsage: true))
        var out = ByteBuffer()
        try decoder.feed(bytes)
        while let message = try decoder.next() {
            translator.translate(message, into: &out)
        }
        try decoder.finish()
        translator.finish(into: &out)
        return String(buffer: out)
    }

    /// One chunk as the translator writes it.
    static func chunk(_ delta: String, finish: String? = nil) -> String {
        let reason = finish.map { "\"\($0)\"" } ?? "null"
        return #"data: {"id":"chatcmpl-sim","object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet","choices":[{"index":0,"delta":\#(delta),"finish_reason":\#(reason)}]}"#
            + "\n\n"
    }

    /// The usage chunk (`include_usage`): no choices; cache reads and writes count into the prompt.
    static func usage(input: Int, output: Int, cacheRead: Int = 0, cacheWrite: Int = 0) -> String {
        let prompt = input + cacheRead + cacheWrite
        return #"data: {"id":"chatcmpl-sim","object":"chat.completion.chunk","created":1700000000,"model":"claude-sonnet","choices":[],"usage":{"prompt_tokens":\#(prompt),"completion_tokens":\#(output),"total_tokens":\#(prompt + output),"prompt_tokens_details":{"cached_tokens":\#(cacheRead),"cache_creation_tokens":\#(cacheWrite)}}}"#
            + "\n\n"
    }

    /// A tool call's first chunk, then its argument pieces as the simulator splits its default input.
    static func toolCall(_ index: Int, id: String, name: String) -> [String] {
        [#"{"tool_calls":[{"index":\#(index),"id":"\#(id)","type":"function","function":{"name":"\#(name)","arguments":""}}]}"#]
            + [#"{\"location\":\"Z"#, #"ürich, \\\"CH\\\"\""#, #",\"unit\":\"celsi"#, #"us\",\"days\":3}"#].map {
                #"{"tool_calls":[{"index":\#(index),"function":{"arguments":"\#($0)"}}]}"#
            }
    }

    static let role = chunk(#"{"role":"assistant","content":""}"#)
    static let done = "data: [DONE]\n\n"

    /// The role chunk, a chunk per delta, the finish chunk, the usage chunk and `[DONE]`.
    static func answer(_ deltas: [String], finish: String, usage: String) -> String {
        Self.role + deltas.map { Self.chunk($0) }.joined() + Self.chunk("{}", finish: finish) + usage + Self.done
    }

    @Test("plain text")
    func plainText() async throws {
        try await Simulator.run { simulator in
            let sse = try await Self.sse(simulator, Bodies.converse("Hi [[sim chunks=3 chunk_size=4]]"))
            #expect(
                sse == Self.answer([#"{"content":"\"slu"}"#, #"{"content":"ice\""}"#, #"{"content":" gat"}"#], finish: "stop", usage: Self.usage(input: 21, output: 3))
            )
        }
    }

    @Test("two parallel tool calls after text: dense indexes 0 and 1 though their blocks are 1 and 2")
    func twoToolCalls() async throws {
        try await Simulator.run { simulator in
            let sse = try await Self.sse(simulator, Bodies.converse("weather? [[sim tools=2 chunks=1]]", tools: ["read_file", "bash"]))
            let deltas = [#"{"content":"back\\slash, "}"#]
                + Self.toolCall(0, id: "tooluse_8H3Z82S0f2DakS7y40O8UN", name: "read_file")
                + Self.toolCall(1, id: "tooluse_syjwlzz6JPQaRdwpSuMIvi", name: "bash")
            #expect(sse == Self.answer(deltas, finish: "tool_calls", usage: Self.usage(input: 64, output: 9)))
        }
    }

    @Test("a tool call with no text before it is index 0")
    func toolCallFirst() async throws {
        try await Simulator.run { simulator in
            let sse = try await Self.sse(simulator, Bodies.converse("go [[sim chunks=0 tools=1]]"))
            let deltas = Self.toolCall(0, id: "tooluse_VOyhOGg2kACWM8XGqOmrdr", name: "get_weather")
            #expect(sse == Self.answer(deltas, finish: "tool_calls", usage: Self.usage(input: 20, output: 4)))
        }
    }

    @Test("reasoning with a signature, then text, then a tool call")
    func reasoningTextTool() async throws {
        try await Simulator.run { simulator in
            let sse = try await Self.sse(simulator, Bodies.converse("think [[sim reasoning=1 chunks=2 tools=1]]", tools: ["read_file"]))
            let signature = "DwO4IKJeAgQnQuexCodxXmoOPghvMTz7kwlHrp7iXWF2LgU5MrPtVkf2GJUOrm1oagyKM8TuHg2KPfTgnxi8Qzrn"
            let deltas = [
                #"{"reasoning_content":"The user wants a \"simulated\" answer; "}"#,
                #"{"reasoning_content":"I will think in three steps \\ plan, draft, check —\n"}"#,
                #"{"reasoning_content":"then reply. ✓"}"#,
                #"{"thinking_blocks":[{"type":"thinking","thinking":"","signature":"\#(signature)"}]}"#,
                #"{"content":"語 🚀 {json: ["}"#,
                #"{"content":"1, 2]} <tag>"}"#,
            ] + Self.toolCall(0, id: "tooluse_XfMFuO3O3T2h2mBp0LC0vV", name: "read_file")
            #expect(sse == Self.answer(deltas, finish: "tool_calls", usage: Self.usage(input: 49, output: 9)))
        }
    }

    @Test("max_tokens, stop sequence and guardrail intervention finish as length, stop and content_filter")
    func stopReasons() async throws {
        try await Simulator.run { simulator in
            let maxTokens = try await Self.sse(simulator, Bodies.converse("long [[sim chunks=2 stop=max_tokens]]"))
            #expect(maxTokens == Self.answer([#"{"content":"& 'single'\tq"}"#, #"{"content":"uotes.\nNext "}"#], finish: "length", usage: Self.usage(input: 22, output: 2)))

            let stopSequence = try await Self.sse(simulator, Bodies.converse("stop [[sim chunks=2 stop=stop_sequence]]"))
            #expect(stopSequence == Self.answer([#"{"content":"e: back\\slas"}"#, #"{"content":"h, \"quoted\","}"#], finish: "stop", usage: Self.usage(input: 23, output: 2)))

            let guardrail = try await Self.sse(simulator, Bodies.converse("block [[sim chunks=1 stop=guardrail_intervened]]"))
            #expect(guardrail == Self.answer([#"{"content":"n: [1, 2]} <"}"#], finish: "content_filter", usage: Self.usage(input: 25, output: 1)))
        }
    }

    @Test("in-stream throttling: the chunks before it, then an error event and no [DONE]")
    func throttling() async throws {
        try await Simulator.run { simulator in
            let sse = try await Self.sse(simulator, Bodies.converse("busy"), scenario: "chunks=4,exception_after=3,exception=throttlingException")
            let error = #"data: {"error":{"message":"Too many requests, please wait before trying again.","type":"throttlingException","param":null,"code":"throttlingException"}}"# + "\n\n"
            #expect(sse == Self.role + Self.chunk(#"{"content":"ain; naïve c"}"#) + Self.chunk(#"{"content":"afé ✓ 日本語 🚀 "}"#) + error)
        }
    }

    @Test("cache reads and writes are in the usage chunk")
    func cacheUsage() async throws {
        try await Simulator.run { simulator in
            let sse = try await Self.sse(simulator, Bodies.converse("cached [[sim chunks=1 cache_read=100 cache_write=20]]"))
            #expect(sse == Self.answer([#"{"content":"é ✓ 日本語 🚀 {j"}"#], finish: "stop", usage: Self.usage(input: 26, output: 1, cacheRead: 100, cacheWrite: 20)))
        }
    }
}
