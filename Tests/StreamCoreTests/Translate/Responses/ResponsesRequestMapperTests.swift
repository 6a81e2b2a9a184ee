import Foundation
import NIOCore
import Testing

@testable import StreamCore

struct ResponsesRequestMapperTests {
    static let claude = TranslateTestSupport.claude

    static func map(_ json: String, configuration: ResponsesRequestMapper.Configuration = .init(opener: TestSealer())) throws -> ResponsesRequest {
        try ResponsesRequestMapper(configuration: configuration).map(ByteBuffer(string: json))
    }

    static func converse(_ json: String) throws -> [String: Any] {
        try TranslateTestSupport.object(map(json).body)
    }

    static func error(_ json: String, configuration: ResponsesRequestMapper.Configuration = .init(opener: TestSealer())) throws -> OpenAIRequestError {
        try #require(throws: OpenAIRequestError.self) { try Self.map(json, configuration: configuration) }
    }

    static func request(_ input: String, _ extra: String = "") -> String {
        "{\"model\":\"\(claude)\",\"input\":\(input)\(extra.isEmpty ? "" : ",\(extra)")}"
    }

    // MARK: Input forms

    @Test("a string input is one user turn; instructions become system")
    func stringInput() throws {
        let request = try Self.map(Self.request(#""Hi""#, #""instructions":"Be brief.","stream":true,"store":false,"prompt_cache_key":"sess-1","user":"u1""#))
        let body = try TranslateTestSupport.object(request.body)
        #expect(try TranslateTestSupport.isSame(body["messages"], #"[{"role":"user","content":[{"text":"Hi"}]}]"#))
        #expect(try TranslateTestSupport.isSame(body["system"], #"[{"text":"Be brief."}]"#))
        #expect(request.isStreaming)
        #expect(!request.store)
        #expect(request.promptCacheKey == "sess-1")
        #expect(request.user == "u1")
        #expect(request.requestedModel == Self.claude)
        #expect(request.messageCount == 1)
    }

    @Test("message items: roles, text parts, images; system and developer go to system; same roles merge")
    func messageItems() throws {
        let png = TranslateTestSupport.pngBase64
        let body = try Self.converse(Self.request(#"""
            [{"type":"message","role":"developer","content":"Rules."},
             {"role":"user","content":[{"type":"input_text","text":"Look:"},{"type":"input_image","image_url":"data:image/png;base64,\#(png)","detail":"auto"}]},
             {"type":"message","role":"user","content":"and this"},
             {"type":"message","role":"assistant","content":[{"type":"output_text","text":"Seen.","annotations":[]}]},
             {"type":"message","role":"system","content":[{"type":"input_text","text":"More rules."}]},
             {"type":"message","role":"user","content":"ok"}]
            """#, #""instructions":"First.""#))
        #expect(try TranslateTestSupport.isSame(body["system"], #"[{"text":"First."},{"text":"Rules."},{"text":"More rules."}]"#))
        #expect(try TranslateTestSupport.isSame(body["messages"], #"""
            [{"role":"user","content":[{"text":"Look:"},{"image":{"format":"png","source":{"bytes":"\#(png)"}}},{"text":"and this"}]},
             {"role":"assistant","content":[{"text":"Seen."}]},
             {"role":"user","content":[{"text":"ok"}]}]
            """#))
    }

    @Test("function_call and function_call_output become toolUse and toolResult; history tools get specs")
    func functionCallRoundTrip() throws {
        let body = try Self.converse(Self.request(#"""
            [{"type":"message","role":"user","content":"list files"},
             {"type":"function_call","id":"fc_1","call_id":"call_1","name":"shell","arguments":"{\"command\":[\"ls\"]}"},
             {"type":"function_call","call_id":"call:2","name":"noargs","arguments":""},
             {"type":"function_call_output","call_id":"call_1","output":"a.txt\nb.txt"},
             {"type":"function_call_output","call_id":"call:2","output":[{"type":"input_text","text":"done"}]},
             {"type":"function_call_output","call_id":"call_3x","output":""}]
            """#, #""tools":[{"type":"function","name":"shell","description":"Runs a command","parameters":{"type":"object","properties":{"command":{"type":"array"}}},"strict":false}]"#))
        #expect(try TranslateTestSupport.isSame(body["messages"], #"""
            [{"role":"user","content":[{"text":"list files"}]},
             {"role":"assistant","content":[{"toolUse":{"toolUseId":"call_1","name":"shell","input":{"command":["ls"]}}},{"toolUse":{"toolUseId":"call_2","name":"noargs","input":{}}}]},
             {"role":"user","content":[{"toolResult":{"toolUseId":"call_1","content":[{"text":"a.txt\nb.txt"}]}},{"toolResult":{"toolUseId":"call_2","content":[{"text":"done"}]}},{"toolResult":{"toolUseId":"call_3x","content":[{"text":"(empty)"}]}}]}]
            """#))
        let tools = try #require(body.object("toolConfig")?["tools"] as? [[String: Any]])
        let names = tools.compactMap { ($0["toolSpec"] as? [String: Any])?["name"] as? String }
        #expect(names == ["shell", "noargs"])
        #expect(try TranslateTestSupport.isSame(body.object("additionalModelRequestFields")?["anthropic_beta"], #"["fine-grained-tool-streaming-2025-05-14"]"#))
    }

    @Test("namespace tools (Codex CLI's sub-agent tools) go to Bedrock flat as <namespace>__<name>, and so do calls of them in history")
    func namespaceTools() throws {
        let request = try Self.map(Self.request(#"""
            [{"type":"message","role":"user","content":"spawn"},
             {"type":"function_call","call_id":"call_1","name":"spawn_agent","namespace":"multi_agent_v1","arguments":"{}"},
             {"type":"function_call_output","call_id":"call_1","output":"spawned"}]
            """#, #""tools":[{"type":"function","name":"exec_command","parameters":{"type":"object","properties":{}}},{"type":"namespace","name":"multi_agent_v1","description":"Sub-agents.","tools":[{"type":"function","name":"spawn_agent","description":"Spawns one.","strict":false,"parameters":{"type":"object","properties":{"task":{"type":"string"}}}},{"type":"function","name":"close_agent"}]}]"#))
        let body = try TranslateTestSupport.object(request.body)
        let tools = try #require(body.object("toolConfig")?["tools"] as? [[String: Any]])
        let specs = tools.compactMap { $0["toolSpec"] as? [String: Any] }
        #expect(specs.compactMap { $0["name"] as? String } == ["exec_command", "multi_agent_v1__spawn_agent", "multi_agent_v1__close_agent"])
        #expect(specs[1]["description"] as? String == "Sub-agents.\n\nSpawns one.")
        #expect(specs[2]["description"] as? String == "Sub-agents.")
        #expect(try TranslateTestSupport.isSame(body["messages"], #"""
            [{"role":"user","content":[{"text":"spawn"}]},
             {"role":"assistant","content":[{"toolUse":{"toolUseId":"call_1","name":"multi_agent_v1__spawn_agent","input":{}}}]},
             {"role":"user","content":[{"toolResult":{"toolUseId":"call_1","content":[{"text":"spawned"}]}}]}]
            """#))
        #expect(!request.toolNamespaces.isEmpty)
        #expect(request.toolNamespaces.nameFragment(forBedrockName: "multi_agent_v1__close_agent") == Array(#"close_agent","namespace":"multi_agent_v1"#.utf8))
        #expect(request.toolNamespaces.nameFragment(forBedrockName: "exec_command") == nil)
    }

    @Test("a reasoning item with encrypted_content is replayed as a signed reasoning block before the tool call")
    func reasoningRoundTrip() throws {
        let sealed = TestSealer().seal(.signed(text: "Think \"hard\".", signature: "sig=="))
        let request = try Self.map(Self.request(#"""
            [{"type":"message","role":"user","content":"go"},
             {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Think"}],"encrypted_content":"\#(sealed)"},
             {"type":"function_call","call_id":"c1","name":"shell","arguments":"{}"},
             {"type":"function_call_output","call_id":"c1","output":"ok"}]
            """#, #""reasoning":{"effort":"high","summary":"auto"},"include":["reasoning.encrypted_content"],"tools":[{"type":"function","name":"shell","parameters":{"type":"object"}}]"#))
        let body = try TranslateTestSupport.object(request.body)
        let assistant = try #require(body.objects("messages").dropFirst().first)
        #expect(try TranslateTestSupport.isSame(assistant["content"], #"""
            [{"reasoningContent":{"reasoningText":{"text":"Think \"hard\".","signature":"sig=="}}},{"toolUse":{"toolUseId":"c1","name":"shell","input":{}}}]
            """#))
        #expect(request.includesEncryptedReasoning)
        #expect(request.converse.isThinkingEnabled)
        #expect(try TranslateTestSupport.isSame(body.object("additionalModelRequestFields")?["thinking"], #"{"type":"enabled","budget_tokens":16384}"#))
        #expect(body.object("inferenceConfig")?["maxTokens"] as? Int == 16384 + ChatRequestMapper.defaultAnswerTokens)
    }

    @Test("a reasoning item without encrypted_content is dropped, and thinking is skipped for that tool turn")
    func unsignedReasoningDropped() throws {
        let request = try Self.map(Self.request(#"""
            [{"type":"message","role":"user","content":"go"},
             {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"Think"}]},
             {"type":"function_call","call_id":"c1","name":"shell","arguments":"{}"},
             {"type":"function_call_output","call_id":"c1","output":"ok"}]
            """#, #""reasoning":{"effort":"medium"}"#))
        let body = try TranslateTestSupport.object(request.body)
        #expect(!String(buffer: request.body).contains("reasoningContent"))
        // Anthropic would refuse thinking when the answered tool turn has no thinking block.
        #expect(!request.converse.isThinkingEnabled)
        #expect(body["additionalModelRequestFields"].flatMap { ($0 as? [String: Any])?["thinking"] } == nil)
    }

    @Test("reasoning effort budgets", arguments: [("minimal", 1024), ("low", 1024), ("medium", 4096), ("high", 16384), ("xhigh", 32768)])
    func effortBudgets(effort: String, budget: Int) throws {
        let request = try Self.map(Self.request(#""hi""#, #""reasoning":{"effort":"\#(effort)"},"max_output_tokens":100000"#))
        let body = try TranslateTestSupport.object(request.body)
        #expect(try TranslateTestSupport.isSame(body.object("additionalModelRequestFields")?["thinking"], #"{"type":"enabled","budget_tokens":\#(budget)}"#))
        #expect(request.maxTokens == 100000)
    }

    @Test("effort none, or a model that does not think, sends no thinking")
    func noThinking() throws {
        #expect(!(try Self.map(Self.request(#""hi""#, #""reasoning":{"effort":"none"}"#)).converse.isThinkingEnabled))
        let nova = "{\"model\":\"\(TranslateTestSupport.nova)\",\"input\":\"hi\",\"reasoning\":{\"effort\":\"high\"}}"
        #expect(!(try Self.map(nova).converse.isThinkingEnabled))
    }

    @Test("sampling: max_output_tokens, temperature (clamped for Anthropic), top_p dropped beside temperature")
    func sampling() throws {
        let body = try Self.converse(Self.request(#""hi""#, #""max_output_tokens":300,"temperature":1.5,"top_p":0.9"#))
        #expect(try TranslateTestSupport.isSame(body["inferenceConfig"], #"{"maxTokens":300,"temperature":1}"#))
    }

    @Test("tool_choice forms", arguments: [
        (#""auto""#, #"{"auto":{}}"#), (#""required""#, #"{"any":{}}"#), (#"{"type":"function","name":"shell"}"#, #"{"tool":{"name":"shell"}}"#),
    ])
    func toolChoice(choice: String, expected: String) throws {
        let body = try Self.converse(Self.request(#""hi""#, #""tools":[{"type":"function","name":"shell"}],"tool_choice":\#(choice),"parallel_tool_calls":true"#))
        #expect(try TranslateTestSupport.isSame(body.object("toolConfig")?["toolChoice"], expected))
    }

    @Test("tool_choice none withholds the tools")
    func toolChoiceNone() throws {
        let body = try Self.converse(Self.request(#""hi""#, #""tools":[{"type":"function","name":"shell"}],"tool_choice":"none""#))
        #expect(body["toolConfig"] == nil)
    }

    @Test("text.format json_schema becomes the forced response-format tool")
    func textFormat() throws {
        let request = try Self.map(Self.request(#""hi""#, #""text":{"verbosity":"low","format":{"type":"json_schema","name":"answer","strict":true,"schema":{"type":"object","properties":{"a":{"type":"integer"}}}}}"#))
        let body = try TranslateTestSupport.object(request.body)
        #expect(request.responseFormatToolName == "respond_with_json")
        #expect(try TranslateTestSupport.isSame(body.object("toolConfig")?["toolChoice"], #"{"tool":{"name":"respond_with_json"}}"#))
        let spec = try #require((body.object("toolConfig")?["tools"] as? [[String: Any]])?.first?["toolSpec"] as? [String: Any])
        #expect(try TranslateTestSupport.isSame((spec["inputSchema"] as? [String: Any])?["json"], #"{"type":"object","properties":{"a":{"type":"integer"}}}"#))
        #expect(try Self.map(Self.request(#""hi""#, #""text":{"format":{"type":"json_object"}}"#)).responseFormatToolName == "respond_with_json")
        #expect(try Self.map(Self.request(#""hi""#, #""text":{"format":{"type":"text"}}"#)).responseFormatToolName == nil)
    }

    @Test("ignorable fields are accepted", arguments: ResponsesRequestMapper.ignoredFields.sorted())
    func ignorable(field: String) throws {
        let value = field == "store" || field == "parallel_tool_calls" ? "false" : field == "stream_options" || field.hasSuffix("metadata") ? "{}" : "\"x\""
        _ = try Self.map(Self.request(#""hi""#, "\"\(field)\":\(value)"))
    }

    @Test("previous_response_id is exposed when a store is configured")
    func previousResponseWithStore() throws {
        let request = try Self.map(Self.request(#""hi""#, #""previous_response_id":"resp_1""#), configuration: .init(isStoreEnabled: true))
        #expect(request.previousResponseID == "resp_1")
    }

    // MARK: Refusals

    @Test("refusals name the parameter", arguments: [
        (#""hi""#, #""previous_response_id":"resp_1""#, "previous_response_id", "unsupported_value"),
        (#""hi""#, #""tools":[{"type":"web_search"}]"#, "tools[0].type", "unsupported_value"),
        (#""hi""#, #""tools":[{"type":"file_search","vector_store_ids":[]}]"#, "tools[0].type", "unsupported_value"),
        (#""hi""#, #""tools":[{"type":"computer_use_preview"}]"#, "tools[0].type", "unsupported_value"),
        (#""hi""#, #""tools":[{"type":"function","name":"bad name"}]"#, "tools[0].name", "invalid_value"),
        (#""hi""#, #""tools":[{"type":"namespace","name":"ns","tools":[{"type":"custom","name":"apply_patch"}]}]"#, "tools[0].tools[0].type", "unsupported_value"),
        (#""hi""#, #""tools":[{"type":"namespace","name":"ns.x","tools":[]}]"#, "tools[0].name", "invalid_value"),
        (#""hi""#, #""tools":[{"type":"namespace","name":"ns"}]"#, "tools[0].tools", "missing_required_parameter"),
        (#""hi""#, #""tools":[{"type":"function","name":"ns__f"},{"type":"namespace","name":"ns","tools":[{"type":"function","name":"f"}]}]"#, "tools[1].tools", "invalid_value"),
        (#""hi""#, #""tools":[{"type":"namespace","name":"\#(String(repeating: "n", count: 40))","tools":[{"type":"function","name":"\#(String(repeating: "f", count: 30))"}]}]"#, "tools[0].tools[0].name", "invalid_value"),
        (#"[{"type":"function_call","call_id":"c","name":"f","namespace":7,"arguments":"{}"}]"#, "", "input[0].namespace", "invalid_type"),
        (#""hi""#, #""tool_choice":{"type":"function","name":"nope"}"#, "tool_choice.name", "invalid_value"),
        (#""hi""#, #""tool_choice":"required""#, "tool_choice", "invalid_value"),
        (#""hi""#, #""tool_choice":{"type":"web_search_preview"}"#, "tool_choice.type", "unsupported_value"),
        (#""hi""#, #""frequency_boost":2"#, "frequency_boost", "unknown_parameter"),
        (#""hi""#, #""background":true"#, "background", "unsupported_value"),
        (#""hi""#, #""conversation":"conv_1""#, "conversation", "unsupported_value"),
        (#""hi""#, #""top_logprobs":3"#, "top_logprobs", "unsupported_value"),
        (#""hi""#, #""include":["message.output_text.logprobs"]"#, "include[0]", "unsupported_value"),
        (#""hi""#, #""include":["nonsense"]"#, "include[0]", "invalid_value"),
        (#""hi""#, #""reasoning":{"effort":"maximum"}"#, "reasoning.effort", "invalid_value"),
        (#""hi""#, #""text":{"format":{"type":"json_schema","schema":{"type":"array"}}}"#, "text.format.schema", "invalid_value"),
        (#""hi""#, #""max_output_tokens":0"#, "max_output_tokens", "invalid_value"),
        (#""hi""#, #""temperature":"hot""#, "temperature", "invalid_type"),
        ("42", "", "input", "invalid_type"),
        (#"[{"type":"item_reference","id":"msg_1"}]"#, "", "input[0].type", "unsupported_value"),
        (#"[{"type":"local_shell_call","call_id":"x"}]"#, "", "input[0].type", "unsupported_value"),
        (#"[{"type":"message","role":"tool","content":"x"}]"#, "", "input[0].role", "invalid_value"),
        (#"[{"type":"message","role":"user","content":[{"type":"input_file","file_id":"f"}]}]"#, "", "input[0].content[0].type", "unsupported_value"),
        (#"[{"type":"message","role":"user","content":[{"type":"input_image","image_url":"https://example.com/a.png"}]}]"#, "", "input[0].content[0].image_url", "unsupported_value"),
        (#"[{"type":"function_call","call_id":"c","name":"f","arguments":"{nope"}]"#, "", "input[0].arguments", "invalid_value"),
        (#"[{"type":"function_call","name":"f","arguments":"{}"}]"#, "", "input[0].call_id", "missing_required_parameter"),
        (#"[{"type":"function_call_output","call_id":"c"}]"#, "", "input[0].output", "missing_required_parameter"),
        (#"["hi",{"type":"reasoning","encrypted_content":"forged"}]"#, "", "input[0]", "invalid_type"),
        (#"[{"type":"message","role":"user","content":"x"},{"type":"reasoning","encrypted_content":"forged"}]"#, "", "input[1].encrypted_content", "invalid_value"),
    ])
    func refusals(input: String, extra: String, param: String, code: String) throws {
        let error = try Self.error(Self.request(input, extra))
        #expect(error.param == param)
        #expect(error.code.description == code)
        #expect(error.httpStatus == 400)
    }

    @Test("a missing model or input, and a non-object body, are refused")
    func missingBasics() throws {
        #expect(try Self.error(#"{"input":"hi"}"#).param == "model")
        #expect(try Self.error("{\"model\":\"\(Self.claude)\"}").param == "input")
        #expect(try Self.error("[1]").code == .invalidJSON)
    }

    @Test("an encrypted reasoning item is refused when no opener is configured")
    func noOpener() throws {
        let sealed = TestSealer().seal(.signed(text: "t", signature: "s"))
        let error = try Self.error(Self.request(#"[{"type":"reasoning","encrypted_content":"\#(sealed)"}]"#), configuration: .init())
        #expect(error.param == "input[0].encrypted_content")
    }

    @Test("sealed reasoning plaintext round-trips and rejects damage")
    func sealedPlaintext() {
        for value in [SealedReasoning.signed(text: "héllo", signature: "c2ln"), .signed(text: "", signature: ""), .redacted(data: "AAEC")] {
            #expect(SealedReasoning(plaintext: value.plaintext) == value)
        }
        #expect(SealedReasoning(plaintext: [1, 0, 0, 0, 9, 65]) == nil)
        #expect(SealedReasoning(plaintext: [7, 65]) == nil)
        #expect(SealedReasoning(plaintext: []) == nil)
    }
}
