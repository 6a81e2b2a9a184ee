import Foundation
import NIOCore
import Testing

@testable import StreamCore

/// A Claude Code gateway-mode request (CLAUDE_CODE.md §9) in pieces, so expected bodies can be
/// assembled from the very bytes the client sent.
enum ClaudeCodeGatewayBody {
    static let betaHeader =
        "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20"

    static let messages = #""messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>env</system-reminder>"},{"type":"text","text":"List the files \u00e9 [[sim tools=1]]","cache_control":{"type":"ephemeral"}}]}]"#
    static let system = #""system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.332; cc_entrypoint=sdk-cli;"},{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral","ttl":"1h"}}]"#
    static let bash = #"{"name":"Bash","description":"Run a \"command\"","input_schema":{"type":"object","properties":{"command":{"type":"string"},"timeout":{"type":"number","maximum":6e5}},"required":["command"]}}"#
    static let toolSearch = #"{"type":"tool_search_tool_regex_20251119","name":"tool_search_tool_regex"}"#
    static let deferredHead = #"{"name":"DeferredToolPlaceholder","description":"x","input_schema":{"type":"object"}"#
    static let deferred = deferredHead + #","defer_loading":true,"input_examples":[{"a":1}]}"#
    static let metadata = #""metadata":{"user_id":"{\"device_id\":\"abc\",\"account_uuid\":\"\",\"session_id\":\"5c3e\"}"}"#
    static let sampling = #""max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999}"#
    static let contextManagement = #""context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}"#

    static let body = "{\"model\":\"claude-sonnet-4-5-20250929\"," + messages + "," + system + ",\"tools\":[" + bash + "," + toolSearch + ","
        + deferred + "]," + metadata + "," + sampling + "," + contextManagement + ",\"stream\":true}"
}

struct AnthropicRequestMapperTests {
    static let sonnet45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"

    private func map(
        _ json: String, betas: [String] = [], region: String? = "us-east-1",
        configuration: AnthropicRequestMapper.Configuration = .init()
    ) throws -> AnthropicInvokeRequest {
        try AnthropicRequestMapper(configuration: configuration).map(ByteBuffer(string: json), betaHeaders: betas, region: region)
    }

    private func mapError(_ json: String, configuration: AnthropicRequestMapper.Configuration = .init()) throws -> AnthropicRequestError {
        try #require(throws: AnthropicRequestError.self) {
            try AnthropicRequestMapper(configuration: configuration).map(ByteBuffer(string: json), region: "us-east-1")
        }
    }

    // MARK: Claude Code

    @Test("Claude Code's five betas against a model that takes only interleaved thinking: one survives, its fields go")
    func claudeCodeAgainstStrictModel() throws {
        let policy = AnthropicBetaPolicy(rules: [.init(model: "*", change: .replace(["interleaved-thinking-2025-05-14"]))])
        let request = try self.map(
            ClaudeCodeGatewayBody.body, betas: [ClaudeCodeGatewayBody.betaHeader], region: "eu-west-1",
            configuration: .init(betas: policy)
        )
        #expect(request.betas == ["interleaved-thinking-2025-05-14"])
        #expect(
            request.droppedBetas == [
                "claude-code-20250219", "context-management-2025-06-27", "thinking-token-count-2026-05-13", "advanced-tool-use-2025-11-20",
            ]
        )
        let expected = "{" + ClaudeCodeGatewayBody.messages + "," + ClaudeCodeGatewayBody.system + ",\"tools\":[" + ClaudeCodeGatewayBody.bash
            + "," + ClaudeCodeGatewayBody.deferredHead + "}]," + ClaudeCodeGatewayBody.metadata + "," + ClaudeCodeGatewayBody.sampling
            + #","anthropic_beta":["interleaved-thinking-2025-05-14"],"anthropic_version":"bedrock-2023-05-31"}"#
        #expect(String(buffer: request.body) == expected)
        #expect(request.modelID == "eu." + Self.sonnet45)
        #expect(request.requestedModel == "claude-sonnet-4-5-20250929")
        #expect(request.isStreaming)
        #expect(request.messageCount == 1)
        #expect(request.maxTokens == 32000)
        #expect(request.metadataUserID == #"{"device_id":"abc","account_uuid":"","session_id":"5c3e"}"#)
        // The result is JSON Bedrock can read.
        let object = try TranslateTestSupport.object(request.body)
        #expect(object["context_management"] == nil && object["model"] == nil && object["stream"] == nil)
    }

    @Test("the same request with the built-in table: Sonnet 4.5 keeps interleaved thinking and context management")
    func claudeCodeBuiltIn() throws {
        let request = try self.map(ClaudeCodeGatewayBody.body, betas: [ClaudeCodeGatewayBody.betaHeader])
        #expect(request.betas == ["interleaved-thinking-2025-05-14", "context-management-2025-06-27"])
        #expect(request.droppedBetas == ["claude-code-20250219", "thinking-token-count-2026-05-13", "advanced-tool-use-2025-11-20"])
        let body = String(buffer: request.body)
        #expect(body.contains(ClaudeCodeGatewayBody.contextManagement))
        #expect(!body.contains("defer_loading") && !body.contains("tool_search_tool") && !body.contains("input_examples"))
        #expect(body.hasSuffix(#","anthropic_beta":["interleaved-thinking-2025-05-14","context-management-2025-06-27"],"anthropic_version":"bedrock-2023-05-31"}"#))
        #expect(request.modelID == "us." + Self.sonnet45)
    }

    @Test("passthrough mode forwards every beta and every field")
    func passthrough() throws {
        let request = try self.map(
            ClaudeCodeGatewayBody.body, betas: [ClaudeCodeGatewayBody.betaHeader], configuration: .init(betas: AnthropicBetaPolicy(mode: .passthrough))
        )
        #expect(request.droppedBetas.isEmpty)
        #expect(request.betas.count == 5)
        let body = String(buffer: request.body)
        #expect(body.contains(ClaudeCodeGatewayBody.contextManagement))
        #expect(body.contains(ClaudeCodeGatewayBody.deferred) && body.contains(ClaudeCodeGatewayBody.toolSearch))
    }

    // MARK: Byte-for-byte passthrough

    @Test("untouched members keep their bytes: whitespace inside values, number spelling, escapes, unknown fields, order")
    func untouchedMembers() throws {
        let json = """
            { "temperature" : 0.50, "model":"claude-3-5-haiku-20241022",
              "messages": [ {"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0K"}},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"a\\u0000b"}}]} ],
              "max_tokens": 1e3, "top_k":  5, "stop_sequences":["\\n\\nHuman:"], "tool_choice":{"type":"auto","disable_parallel_tool_use":true},
              "future_field": {"nested": [1, 2.0, -3e-2, null, true]}, "anthropic_version": "2023-06-01", "stream": false }
            """
        let request = try self.map(json)
        #expect(
            String(buffer: request.body)
                == #"{"temperature" : 0.50,"messages": [ {"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0K"}},{"type":"document","source":{"type":"text","media_type":"text/plain","data":"a\u0000b"}}]} ],"max_tokens": 1e3,"top_k":  5,"stop_sequences":["\n\nHuman:"],"tool_choice":{"type":"auto","disable_parallel_tool_use":true},"future_field": {"nested": [1, 2.0, -3e-2, null, true]},"anthropic_version":"bedrock-2023-05-31"}"#
        )
        #expect(request.maxTokens == 1000)
        #expect(!request.isStreaming)
        #expect(request.betas.isEmpty)
        #expect(request.modelID == "us.anthropic.claude-3-5-haiku-20241022-v1:0")
    }

    @Test("header values are split on commas and trimmed, merged with the body's anthropic_beta, duplicates removed")
    func betaMerging() throws {
        #expect(
            AnthropicRequestMapper.betaValues(fromHeaders: [" a ,b,,\tc", "d"]) == ["a", "b", "c", "d"]
        )
        let json = #"{"model":"claude-sonnet-4-20250514","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"anthropic_beta":["token-efficient-tools-2025-02-19","interleaved-thinking-2025-05-14"]}"#
        let request = try self.map(json, betas: ["interleaved-thinking-2025-05-14, output-128k-2025-02-19"])
        #expect(request.betas == ["interleaved-thinking-2025-05-14", "token-efficient-tools-2025-02-19"])
        #expect(request.droppedBetas == ["output-128k-2025-02-19"])
        #expect(String(buffer: request.body) == #"{"max_tokens":10,"messages":[{"role":"user","content":"hi"}],"anthropic_beta":["interleaved-thinking-2025-05-14","token-efficient-tools-2025-02-19"],"anthropic_version":"bedrock-2023-05-31"}"#)
    }

    @Test("effort: output_config.effort goes with a dropped effort beta, the rest of output_config stays")
    func effortField() throws {
        let body = #"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"output_config":{"effort":"high","format":{"type":"json_schema"}}}"#
        let request = try self.map(body, betas: ["effort-2025-11-24"])
        #expect(request.droppedBetas == ["effort-2025-11-24"])
        #expect(String(buffer: request.body).contains(#""output_config":{"format":{"type":"json_schema"}}"#))
        let onlyEffort = #"{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"output_config":{"effort":"high"}}"#
        #expect(!String(buffer: try self.map(onlyEffort, betas: ["effort-2025-11-24"]).body).contains("output_config"))
        // Opus 4.5 takes the beta: the field stays.
        let opus = #"{"model":"claude-opus-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"output_config":{"effort":"high"}}"#
        #expect(String(buffer: try self.map(opus, betas: ["effort-2025-11-24"]).body).contains(#""output_config":{"effort":"high"}"#))
    }

    // MARK: Model names

    @Test("names map to Bedrock ids with the region's cross-region prefix", arguments: [
        ("claude-sonnet-4-5-20250929", "us-east-1", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("claude-sonnet-4-5", "eu-central-1", "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("claude-sonnet-4-5", "ap-northeast-1", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("claude-sonnet-4-5", "ca-central-1", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("claude-sonnet-4-20250514", "ap-southeast-2", "apac.anthropic.claude-sonnet-4-20250514-v1:0"),
        ("claude-sonnet-4", "sa-east-1", "global.anthropic.claude-sonnet-4-20250514-v1:0"),
        ("claude-opus-4-1", "us-west-2", "us.anthropic.claude-opus-4-1-20250805-v1:0"),
        ("claude-opus-4-1-20250805", "us-west-2", "us.anthropic.claude-opus-4-1-20250805-v1:0"),
        ("claude-opus-4-20250514", "us-east-2", "us.anthropic.claude-opus-4-20250514-v1:0"),
        ("claude-opus-4-5", "eu-west-1", "eu.anthropic.claude-opus-4-5-20251101-v1:0"),
        ("claude-haiku-4-5", "us-east-1", "us.anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("claude-haiku-4-5-20251001", "ap-south-1", "global.anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("claude-3-7-sonnet-20250219", "eu-west-3", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0"),
        ("claude-3-5-haiku-20241022", "us-west-2", "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
        ("claude-3-5-sonnet-20241022", "us-east-1", "us.anthropic.claude-3-5-sonnet-20241022-v2:0"),
        ("claude-opus-4-6", "us-east-1", "us.anthropic.claude-opus-4-6-v1"),
    ])
    func modelNames(name: String, region: String, expected: String) {
        let resolution = AnthropicModelResolution(name: name, region: region)
        #expect(resolution.modelID == expected)
        #expect(resolution.entry != nil)
        #expect(!resolution.requestsLongContext)
    }

    @Test("[1m] keeps the model id and adds context-1m when the model takes it")
    func longContext() throws {
        let resolution = AnthropicModelResolution(name: "claude-sonnet-4-5[1m]", region: "us-east-1")
        #expect(resolution.modelID == "us." + Self.sonnet45)
        #expect(resolution.requestsLongContext)
        let body = #"{"model":"claude-sonnet-4-5[1m]","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#
        let request = try self.map(body)
        #expect(request.requestedModel == "claude-sonnet-4-5[1m]")
        #expect(request.betas == ["context-1m-2025-08-07"])
        // Haiku 4.5 has no 1M window: nothing is added, nothing refused.
        let haiku = try self.map(#"{"model":"claude-haiku-4-5[1m]","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#)
        #expect(haiku.betas.isEmpty && haiku.droppedBetas.isEmpty)
        #expect(haiku.model.requestsLongContext)
    }

    @Test("configured aliases win; Bedrock ids, ARNs and unknown names pass through")
    func aliasesAndPassthrough() {
        let arn = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc123"
        let aliases = ["claude-sonnet-4-5": arn, "fast": "us.anthropic.claude-haiku-4-5-20251001-v1:0"]
        let aliased = AnthropicModelResolution(name: "claude-sonnet-4-5[1m]", aliases: aliases, region: "us-east-1")
        #expect(aliased.modelID == arn && aliased.isConfiguredAlias && aliased.requestsLongContext && aliased.entry == nil)
        #expect(AnthropicModelResolution(name: "fast", aliases: aliases, region: nil).entry?.id == "claude-haiku-4-5-20251001")
        let bedrockID = AnthropicModelResolution(name: "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", region: "us-east-1")
        #expect(bedrockID.modelID == "eu.anthropic.claude-sonnet-4-5-20250929-v1:0")
        #expect(bedrockID.entry?.id == "claude-sonnet-4-5-20250929")
        #expect(AnthropicModelResolution(name: arn, region: "us-east-1").modelID == arn)
        let unknown = AnthropicModelResolution(name: "claude-next-9", region: "us-east-1")
        #expect(unknown.modelID == "claude-next-9" && unknown.entry == nil)
        #expect(AnthropicModelResolution(name: "claude-sonnet-4-5", region: nil).modelID == "global." + Self.sonnet45)
        // `anthropic.claude-opus-4-20250514` must not be found inside a longer id.
        #expect(AnthropicModelTable.entry(bedrockModelID: "us.anthropic.claude-opus-4-1-20250805-v1:0")?.id == "claude-opus-4-1-20250805")
        #expect(AnthropicModelTable.entry(bedrockModelID: "xanthropic.claude-opus-4-20250514-v1:0") == nil)
    }

    @Test("the model list: unique ids, RFC 3339 creation times, every alias resolves to its entry")
    func modelList() {
        let entries = AnthropicModelTable.entries
        #expect(Set(entries.map(\.id)).count == entries.count)
        let allNames = entries.flatMap(\.names)
        #expect(Set(allNames).count == allNames.count)
        for entry in entries {
            #expect(entry.createdAt.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z/) != nil, "\(entry.id)")
            #expect(entry.bedrockID.hasPrefix("anthropic.claude-"))
            #expect(!entry.geographies.isEmpty)
            for name in entry.names { #expect(AnthropicModelTable.entry(named: name) == entry) }
            #expect(AnthropicModelTable.entry(bedrockModelID: entry.bedrockID) == entry)
        }
    }

    // MARK: Errors

    @Test("every refused request names its field in Anthropic's error shape")
    func errors() throws {
        let messages = #""messages":[{"role":"user","content":"hi"}]"#
        let cases: [(String, AnthropicRequestError.Code, String?, String)] = [
            ("{" + messages + #","max_tokens":5}"#, .missingField, "model", "model: Field required"),
            (#"{"model":null,"max_tokens":5,"# + messages + "}", .missingField, "model", "model: Field required"),
            (#"{"model":7,"max_tokens":5,"# + messages + "}", .invalidField, "model", "model: Input should be a non-empty string"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":5}"#, .missingField, "messages", "messages: Field required"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":{"role":"user"}}"#, .invalidField, "messages", "messages: Input should be a valid list"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}"#, .invalidField, "messages", "messages: List should have at least 1 item"),
            (#"{"model":"claude-sonnet-4-5","# + messages + "}", .missingField, "max_tokens", "max_tokens: Field required"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":0,"# + messages + "}", .invalidField, "max_tokens", "max_tokens: Input should be a positive integer"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":-4,"# + messages + "}", .invalidField, "max_tokens", "max_tokens: Input should be a positive integer"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":2.5,"# + messages + "}", .invalidField, "max_tokens", "max_tokens: Input should be a positive integer"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":"100","# + messages + "}", .invalidField, "max_tokens", "max_tokens: Input should be a positive integer"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":5,"stream":"yes","# + messages + "}", .invalidField, "stream", "stream: Input should be a valid boolean"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":5,"metadata":[],"# + messages + "}", .invalidField, "metadata", "metadata: Input should be a valid dictionary"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":5,"metadata":{"user_id":1},"# + messages + "}", .invalidField, "metadata.user_id", "metadata.user_id: Input should be a valid string"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":5,"anthropic_beta":"x","# + messages + "}", .invalidField, "anthropic_beta", "anthropic_beta: Input should be a valid list"),
            (#"{"model":"claude-sonnet-4-5","max_tokens":5,"anthropic_beta":["a",2],"# + messages + "}", .invalidField, "anthropic_beta.1", "anthropic_beta.1: Input should be a valid string"),
            (#"{"model":"claude-sonnet-4-5",}"#, .invalidJSON, nil, "The request body is not valid JSON: expected a key at byte 29."),
            (#"[1]"#, .invalidJSON, nil, "The request body must be a JSON object."),
            ("", .invalidJSON, nil, "The request body is not valid JSON: unexpected end of input at byte 0."),
        ]
        for (json, code, param, message) in cases {
            let error = try self.mapError(json)
            #expect(error.code == code, "\(json)")
            #expect(error.param == param, "\(json)")
            #expect(error.message == message, "\(json)")
            #expect(error.httpStatus == 400)
        }
    }

    @Test("nesting deeper than the bound and too many messages are refused")
    func limits() throws {
        let deep = #"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"# + String(repeating: "[", count: 80)
            + String(repeating: "]", count: 80) + "}]}"
        let tooDeep = try self.mapError(deep)
        #expect(tooDeep.code == .nestingTooDeep)
        #expect(tooDeep.message.hasPrefix("The request body nests deeper than 64 levels"))
        let shallowBound = try self.mapError(
            #"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":[[["x"]]]}]}"#,
            configuration: .init(maximumNestingDepth: 4)
        )
        #expect(shallowBound.code == .nestingTooDeep)
        let three = #"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}"#
        let tooMany = try self.mapError(three, configuration: .init(maximumMessages: 2))
        #expect(tooMany.code == .tooManyMessages)
        #expect(tooMany.message == "messages: 3 messages is more than this gateway accepts (2)")
        #expect(String(buffer: tooMany.makeResponseBody()) == #"{"type":"error","error":{"type":"invalid_request_error","message":"messages: 3 messages is more than this gateway accepts (2)"}}"#)
    }
}

struct AnthropicBetaPolicyTests {
    static let sonnet45 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

    @Test("the built-in table keeps known-good values only, in the client's order")
    func builtIn() {
        let policy = AnthropicBetaPolicy()
        let filtered = policy.filter(
            ["context-1m-2025-08-07", "claude-code-20250219", "interleaved-thinking-2025-05-14", "context-1m-2025-08-07", "dev-full-thinking-2025-05-14"],
            modelID: Self.sonnet45
        )
        #expect(filtered.kept == ["context-1m-2025-08-07", "interleaved-thinking-2025-05-14"])
        #expect(filtered.dropped == ["claude-code-20250219", "dev-full-thinking-2025-05-14"])
        #expect(policy.acceptedBetas(forModel: "us.anthropic.claude-3-7-sonnet-20250219-v1:0").contains("output-128k-2025-02-19"))
        #expect(!policy.acceptedBetas(forModel: "us.anthropic.claude-haiku-4-5-20251001-v1:0").contains("context-1m-2025-08-07"))
        #expect(policy.acceptedBetas(forModel: "global.anthropic.claude-opus-4-5-20251101-v1:0").contains("tool-search-tool-2025-10-19"))
        // Unknown models and application profiles: nothing is known good.
        #expect(policy.acceptedBetas(forModel: "arn:aws:bedrock:us-east-1:1:application-inference-profile/x").isEmpty)
        // Every built-in key is a table model.
        for id in AnthropicBetaPolicy.builtInAcceptedBetas.keys {
            #expect(AnthropicModelTable.entry(bedrockModelID: id)?.bedrockID == id)
        }
    }

    @Test("configuration rules add and replace, matched by glob on the id or the model's names")
    func rules() {
        let arn = "arn:aws:bedrock:us-east-1:1:application-inference-profile/team-a"
        let policy = AnthropicBetaPolicy(rules: [
            .init(model: "claude-sonnet-4-5", change: .add(["effort-2025-11-24"])),
            .init(model: "*haiku-4-5*", change: .replace(["interleaved-thinking-2025-05-14"])),
            .init(model: "*haiku*", change: .add(["x-1"])),
            .init(model: "arn:aws:bedrock:*:application-inference-profile/team-?", change: .add(["interleaved-thinking-2025-05-14"])),
        ])
        #expect(policy.acceptedBetas(forModel: Self.sonnet45).contains("effort-2025-11-24"))
        #expect(policy.acceptedBetas(forModel: "eu.anthropic.claude-haiku-4-5-20251001-v1:0") == ["interleaved-thinking-2025-05-14", "x-1"])
        #expect(policy.acceptedBetas(forModel: arn) == ["interleaved-thinking-2025-05-14"])
        #expect(policy.acceptedBetas(forModel: "us.anthropic.claude-opus-4-1-20250805-v1:0").contains("computer-use-2025-01-24"))
    }

    @Test("refusals Bedrock reported are remembered per model, reported new once, and filtered")
    func refusals() async {
        let refusals = AnthropicBetaRefusals()
        let policy = AnthropicBetaPolicy(refusals: refusals)
        #expect(refusals.remember(model: Self.sonnet45, refused: ["context-management-2025-06-27"]) == ["context-management-2025-06-27"])
        #expect(refusals.remember(model: Self.sonnet45, refused: ["context-management-2025-06-27"]).isEmpty)
        let filtered = policy.filter(["interleaved-thinking-2025-05-14", "context-management-2025-06-27"], modelID: Self.sonnet45)
        #expect(filtered.kept == ["interleaved-thinking-2025-05-14"])
        #expect(filtered.dropped == ["context-management-2025-06-27"])
        // Other models (and other profiles of the same model) are unaffected.
        #expect(policy.acceptedBetas(forModel: "eu.anthropic.claude-sonnet-4-5-20250929-v1:0").contains("context-management-2025-06-27"))
        // Safe to share: concurrent remembering from many tasks loses nothing.
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<64 {
                group.addTask { refusals.remember(model: "m", refused: ["beta-\(index)"]) }
            }
        }
        #expect(refusals.refused(model: "m").count == 64)
    }

    @Test("the memory of refusals is bounded in models")
    func refusalsBounded() {
        let refusals = AnthropicBetaRefusals()
        for index in 0..<AnthropicBetaRefusals.maximumModelCount {
            refusals.remember(model: "model-\(index)", refused: ["a"])
        }
        #expect(refusals.remember(model: "one-too-many", refused: ["a"]).isEmpty)
        #expect(refusals.refused(model: "one-too-many").isEmpty)
        #expect(refusals.remember(model: "model-0", refused: ["b"]) == ["b"])
    }

    // MARK: /bedrock bodies

    /// Claude Code's Bedrock-mode body (CLAUDE_CODE.md §3.1), abridged.
    static let bedrockBody = #"{"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],"system":[{"type":"text","text":"You are Claude Code."}],"tools":[{"name":"Read","input_schema":{"type":"object"}},{"name":"DeferredToolPlaceholder","input_schema":{"type":"object"},"defer_loading":true}],"metadata":{"user_id":"{\"session_id\":\"s\"}"},"max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999},"anthropic_beta":["interleaved-thinking-2025-05-14","tool-search-tool-2025-10-19"],"anthropic_version":"bedrock-2023-05-31"}"#

    @Test("/bedrock: only anthropic_beta and the dropped beta's fields change")
    func repairBedrockBody() {
        let policy = AnthropicBetaPolicy()
        guard case .repaired(let body, let filtered) = policy.repairInvokeBody(ByteBuffer(string: Self.bedrockBody), modelID: Self.sonnet45) else {
            Issue.record("expected a repair")
            return
        }
        #expect(filtered.dropped == ["tool-search-tool-2025-10-19"])
        let expected = Self.bedrockBody
            .replacingOccurrences(of: #","defer_loading":true"#, with: "")
            .replacingOccurrences(of: #""anthropic_beta":["interleaved-thinking-2025-05-14","tool-search-tool-2025-10-19"]"#, with: #""anthropic_beta":["interleaved-thinking-2025-05-14"]"#)
        #expect(String(buffer: body) == expected)
        // Opus 4.5 takes both: the body is sent as it is.
        #expect(policy.repairInvokeBody(ByteBuffer(string: Self.bedrockBody), modelID: "global.anthropic.claude-opus-4-5-20251101-v1:0") == .unchanged)
        #expect(AnthropicBetaPolicy(mode: .passthrough).repairInvokeBody(ByteBuffer(string: Self.bedrockBody), modelID: Self.sonnet45) == .unchanged)
    }

    @Test("/bedrock: when no value survives the member goes; bodies without betas or not JSON stay as they are")
    func repairEdgeCases() {
        let policy = AnthropicBetaPolicy()
        let body = #"{"anthropic_beta":["claude-code-20250219"], "max_tokens":5,"messages":[]}"#
        guard case .repaired(let repaired, _) = policy.repairInvokeBody(ByteBuffer(string: body), modelID: Self.sonnet45) else {
            Issue.record("expected a repair")
            return
        }
        #expect(String(buffer: repaired) == #"{"max_tokens":5,"messages":[]}"#)
        let middle = #"{"max_tokens":5,"anthropic_beta":["nope","interleaved-thinking-2025-05-14"] ,"messages":[]}"#
        guard case .repaired(let kept, _) = policy.repairInvokeBody(ByteBuffer(string: middle), modelID: Self.sonnet45) else {
            Issue.record("expected a repair")
            return
        }
        #expect(String(buffer: kept) == #"{"max_tokens":5,"anthropic_beta":["interleaved-thinking-2025-05-14"],"messages":[]}"#)
        #expect(policy.repairInvokeBody(ByteBuffer(string: #"{"max_tokens":5}"#), modelID: Self.sonnet45) == .unchanged)
        #expect(policy.repairInvokeBody(ByteBuffer(string: #"{"anthropic_beta":["x"]"#), modelID: Self.sonnet45) == .unchanged)
        #expect(policy.repairInvokeBody(ByteBuffer(string: #"{"anthropic_beta":"x"}"#), modelID: Self.sonnet45) == .unchanged)
    }

    @Test("globs: * and ? over the whole string")
    func globs() {
        #expect(ModelGlob.matches("*", ""))
        #expect(ModelGlob.matches("*sonnet-4-5*", Self.sonnet45))
        #expect(ModelGlob.matches("us.*-v1:0", Self.sonnet45))
        #expect(!ModelGlob.matches("sonnet", Self.sonnet45))
        #expect(ModelGlob.matches("a?c", "abc"))
        #expect(!ModelGlob.matches("a?c", "ac"))
        #expect(ModelGlob.matches("a*b*c", "axxbyyc"))
        #expect(!ModelGlob.matches("a*b*c", "axxbyy"))
    }
}
