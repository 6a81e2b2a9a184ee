import Foundation
import NIOCore
import Testing

@testable import StreamCore

struct ResponsesResponseMapperTests {
    typealias G = ResponsesGolden

    static func make(_ converse: String, formatTool: Bool = false, sealer: (any ResponsesReasoningSealer)? = nil) throws -> ResponsesResponse {
        try ResponsesResponseMapper.makeResponse(
            converseResponse: ByteBuffer(string: converse),
            id: "resp_test",
            createdAt: 1_700_000_000,
            model: "claude-sonnet",
            usesResponseFormatTool: formatTool,
            sealer: sealer
        )
    }

    @Test("reasoning, text and a tool call become the same items the stream's response.completed carries")
    func itemsLikeTheStream() throws {
        let response = try Self.make(
            #"""
            {"output":{"message":{"role":"assistant","content":[
              {"reasoningContent":{"reasoningText":{"text":"Let me think about \"it\".","signature":"EqQBCkYIARgCIkA="}}},
              {"text":"I will look."},
              {"toolUse":{"toolUseId":"tu_1","name":"grep","input":{}}}]}},
             "stopReason":"tool_use","usage":{"inputTokens":10,"outputTokens":20,"totalTokens":30},"metrics":{"latencyMs":1}}
            """#,
            sealer: TestSealer()
        )
        let sealed = TestSealer().seal(.signed(text: #"Let me think about "it"."#, signature: "EqQBCkYIARgCIkA="))
        let expected = G.response(
            G.completed,
            output: [
                G.reasoning("rs_test_0", summary: #"Let me think about \"it\"."#, encrypted: sealed),
                G.message("msg_test_1", "completed", "I will look."),
                G.functionCall("fc_test_2", "completed", arguments: "{}", callID: "tu_1", name: "grep"),
            ],
            usage: G.usage(input: 10, output: 20)
        )
        #expect(String(buffer: response.body) == expected)
        #expect(response.finishReason == .toolCalls)
        #expect(response.usage == TokenUsage(inputTokens: 10, outputTokens: 20))
    }

    @Test("a call of a namespace's tool is named back with its namespace, as when streaming")
    func namespacedCall() throws {
        let request = try ResponsesRequestMapper(configuration: .init(opener: TestSealer())).map(ByteBuffer(string: #"""
            {"model":"claude-sonnet","input":"go","tools":[{"type":"namespace","name":"crm","description":"CRM.","tools":[{"type":"function","name":"lookup"}]}]}
            """#))
        let response = try ResponsesResponseMapper.makeResponse(
            converseResponse: ByteBuffer(string: #"""
                {"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"tu_1","name":"crm__lookup","input":{"id":7}}}]}},
                 "stopReason":"tool_use","usage":{"inputTokens":10,"outputTokens":20,"totalTokens":30}}
                """#),
            id: "resp_test", createdAt: 1_700_000_000, for: request, sealer: nil
        )
        let expected = G.response(
            G.completed,
            output: [G.functionCall("fc_test_0", "completed", arguments: #"{\"id\":7}"#, callID: "tu_1", name: #"lookup","namespace":"crm"#)],
            usage: G.usage(input: 10, output: 20)
        )
        #expect(String(buffer: response.body) == expected)
    }

    @Test("max_tokens makes the response incomplete (its items ended with their blocks); cache reads count as input")
    func maxTokens() throws {
        let response = try Self.make(
            #"{"output":{"message":{"role":"assistant","content":[{"text":"cut \n"}]}},"stopReason":"max_tokens","usage":{"inputTokens":5,"outputTokens":7,"cacheReadInputTokens":100}}"#
        )
        let members = #""incomplete","error":null,"incomplete_details":{"reason":"max_output_tokens"}"#
        #expect(String(buffer: response.body) == G.response(members, output: [G.message("msg_test_0", "completed", #"cut \n"#)], usage: G.usage(input: 105, output: 7, cached: 100)))
    }

    @Test("the response-format tool's input is the message text, and the answer finishes with stop")
    func responseFormat() throws {
        let response = try Self.make(
            #"{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t","name":"respond_with_json","input":{"a":1}}}]}},"stopReason":"tool_use","usage":{"inputTokens":1,"outputTokens":1}}"#,
            formatTool: true
        )
        #expect(String(buffer: response.body) == G.response(G.completed, output: [G.message("msg_test_0", "completed", #"{\"a\":1}"#)], usage: G.usage(input: 1, output: 1)))
        #expect(response.finishReason == .stop)
    }

    @Test("without a sealer, or for unsigned reasoning, no encrypted_content; the body parses")
    func unsealed() throws {
        let response = try Self.make(
            #"{"output":{"message":{"role":"assistant","content":[{"reasoningContent":{"reasoningText":{"text":"hmm"}}},{"text":"ok"}]}},"stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1}}"#,
            sealer: TestSealer()
        )
        let object = try TranslateTestSupport.object(response.body)
        let output = try #require(object["output"] as? [[String: Any]])
        #expect(output.count == 2)
        #expect(output[0]["encrypted_content"] == nil)
        #expect(object["status"] as? String == "completed")
    }

    @Test("a body that is not a Converse response is an upstream error")
    func notConverse() {
        #expect(throws: BedrockResponseError.self) { try Self.make(#"{"output":{}}"#) }
        #expect(throws: BedrockResponseError.self) { try Self.make("nope") }
    }
}
