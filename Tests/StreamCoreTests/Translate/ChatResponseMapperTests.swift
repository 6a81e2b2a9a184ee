import Foundation
import NIOCore
import StreamCore
import Testing

private typealias T = TranslateTestSupport

extension TranslateTests {
    struct ChatResponseMapperTests {
        static func completion(
            _ converse: String,
            usesResponseFormatTool: Bool = false
        ) throws -> (response: ChatCompletionResponse, body: [String: Any], message: [String: Any]) {
            let response = try ChatResponseMapper.makeChatCompletion(
                converseResponse: ByteBuffer(string: converse),
                id: "chatcmpl-test",
                created: 1_700_000_000,
                model: "sonnet",
                usesResponseFormatTool: usesResponseFormatTool
            )
            let body = try T.object(response.body)
            let message = try #require(body.objects("choices").first?.object("message"))
            return (response, body, message)
        }

        @Test("a text answer becomes a complete chat.completion with usage")
        func textAnswer() throws {
            let (response, body, _) = try Self.completion(
                #"""
                {"output":{"message":{"role":"assistant","content":[{"text":"Hello, "},{"text":"wörld \"!\""}]}},
                 "stopReason":"end_turn","usage":{"inputTokens":12,"outputTokens":5,"totalTokens":17},"metrics":{"latencyMs":300}}
                """#
            )
            #expect(
                try T.isSame(
                    body,
                    #"""
                    {"id":"chatcmpl-test","object":"chat.completion","created":1700000000,"model":"sonnet",
                     "choices":[{"index":0,"message":{"role":"assistant","content":"Hello, wörld \"!\"","refusal":null},"logprobs":null,"finish_reason":"stop"}],
                     "usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":0,"cache_creation_tokens":0}}}
                    """#
                )
            )
            #expect(response.finishReason == .stop)
            #expect(response.usage == TokenUsage(inputTokens: 12, outputTokens: 5))
        }

        @Test("toolUse blocks become tool_calls with the input as a JSON string; content is null")
        func toolCalls() throws {
            let (response, _, message) = try Self.completion(
                #"""
                {"output":{"message":{"role":"assistant","content":[
                   {"toolUse":{"toolUseId":"tooluse_1","name":"read_file","input":{"path":"a \"b\".swift","limit":2.50}}},
                   {"toolUse":{"toolUseId":"tooluse_2","name":"now","input":{}}}]}},
                 "stopReason":"tool_use","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}
                """#
            )
            #expect(message["content"] is NSNull)
            let calls = message.objects("tool_calls")
            #expect(calls.count == 2)
            #expect(calls[0]["id"] as? String == "tooluse_1")
            #expect(calls[0]["type"] as? String == "function")
            #expect(calls[0].object("function")?["name"] as? String == "read_file")
            let arguments = try #require(calls[0].object("function")?["arguments"] as? String)
            #expect(arguments == #"{"path":"a \"b\".swift","limit":2.50}"#)  // compact, order and literal kept
            #expect(calls[1].object("function")?["arguments"] as? String == "{}")
            #expect(response.finishReason == .toolCalls)
        }

        @Test("reasoningContent becomes reasoning_content and signed thinking_blocks")
        func reasoning() throws {
            let (_, _, message) = try Self.completion(
                #"""
                {"output":{"message":{"role":"assistant","content":[
                   {"reasoningContent":{"reasoningText":{"text":"Let me think. ","signature":"sig1"}}},
                   {"reasoningContent":{"redactedContent":"RW5jcnlwdGVk"}},
                   {"reasoningContent":{"reasoningText":{"text":"Done.","signature":"sig2"}}},
                   {"text":"42"}]}},
                 "stopReason":"end_turn","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}
                """#
            )
            #expect(message["content"] as? String == "42")
            #expect(message["reasoning_content"] as? String == "Let me think. Done.")
            #expect(
                try T.isSame(
                    message["thinking_blocks"],
                    #"""
                    [{"type":"thinking","thinking":"Let me think. ","signature":"sig1"},
                     {"type":"redacted_thinking","data":"RW5jcnlwdGVk"},
                     {"type":"thinking","thinking":"Done.","signature":"sig2"}]
                    """#
                )
            )
        }

        @Test(
            "stopReason maps to finish_reason",
            arguments: [
                ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
                ("content_filtered", "content_filter"), ("guardrail_intervened", "content_filter"), ("malformed_tool_use", "stop"),
            ]
        )
        func finishReasons(stopReason: String, expected: String) throws {
            let (_, body, _) = try Self.completion(
                #"{"output":{"message":{"role":"assistant","content":[{"text":"x"}]}},"stopReason":"\#(stopReason)","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}"#
            )
            #expect(body.objects("choices").first?["finish_reason"] as? String == expected)
        }

        @Test("the forced JSON tool's input becomes content with finish_reason stop")
        func responseFormatTool() throws {
            let name = ChatRequestMapper.responseFormatToolName.description
            let (response, body, message) = try Self.completion(
                #"""
                {"output":{"message":{"role":"assistant","content":[
                   {"text":"Here you go:"},
                   {"toolUse":{"toolUseId":"t1","name":"\#(name)","input":{"name":"Ada","born":1815}}}]}},
                 "stopReason":"tool_use","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}
                """#,
                usesResponseFormatTool: true
            )
            #expect(message["content"] as? String == #"{"name":"Ada","born":1815}"#)
            #expect(message["tool_calls"] == nil)
            #expect(body.objects("choices").first?["finish_reason"] as? String == "stop")
            #expect(response.finishReason == .stop)
        }

        @Test("a user tool named like the JSON tool stays a tool call when response_format was not used")
        func jsonToolNameWithoutResponseFormat() throws {
            let name = ChatRequestMapper.responseFormatToolName.description
            let (_, _, message) = try Self.completion(
                #"{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"\#(name)","input":{}}}]}},"stopReason":"tool_use","usage":{}}"#
            )
            #expect(message.objects("tool_calls").count == 1)
        }

        @Test("usage counts cache reads and writes into prompt_tokens and reports them in details")
        func cacheUsage() throws {
            let (response, body, _) = try Self.completion(
                #"""
                {"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},"stopReason":"end_turn",
                 "usage":{"inputTokens":20,"outputTokens":7,"totalTokens":3227,"cacheReadInputTokens":3000,"cacheWriteInputTokens":200}}
                """#
            )
            #expect(
                try T.isSame(
                    body["usage"],
                    #"{"prompt_tokens":3220,"completion_tokens":7,"total_tokens":3227,"prompt_tokens_details":{"cached_tokens":3000,"cache_creation_tokens":200}}"#
                )
            )
            #expect(response.usage.promptTokens == 3220)
            #expect(response.usage.totalTokens == 3227)
        }

        @Test("an empty answer has content \"\"; unknown blocks are skipped")
        func emptyAnswer() throws {
            let (_, _, message) = try Self.completion(
                #"{"output":{"message":{"role":"assistant","content":[{"citationsContent":{}}]}},"stopReason":"max_tokens"}"#
            )
            #expect(message["content"] as? String == "")
        }

        @Test("the request overload takes the model and response_format flag from the ConverseRequest")
        func requestOverload() throws {
            let request = try T.map(
                #"{"model":"my-alias","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#,
                configuration: ChatRequestMapper.Configuration(modelAliases: ["my-alias": T.claude])
            )
            let name = ChatRequestMapper.responseFormatToolName.description
            let response = try ChatResponseMapper.makeChatCompletion(
                converseResponse: ByteBuffer(
                    string: #"{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"t","name":"\#(name)","input":{"a":1}}}]}},"stopReason":"tool_use","usage":{}}"#
                ),
                id: "chatcmpl-1",
                created: 1,
                for: request
            )
            let body = try T.object(response.body)
            #expect(body["model"] as? String == "my-alias")
            #expect(body.objects("choices").first?.object("message")?["content"] as? String == #"{"a":1}"#)
        }

        @Test("malformed Converse bodies are BedrockResponseErrors", arguments: ["not json", #"{"output":{}}"#, #"{"output":{"message":{"content":[{"toolUse":{"input":{}}}]}}}"#])
        func malformedResponse(body: String) {
            #expect(throws: BedrockResponseError.self) {
                try ChatResponseMapper.makeChatCompletion(
                    converseResponse: ByteBuffer(string: body),
                    id: "x",
                    created: 0,
                    model: "m",
                    usesResponseFormatTool: false
                )
            }
        }
    }
}
