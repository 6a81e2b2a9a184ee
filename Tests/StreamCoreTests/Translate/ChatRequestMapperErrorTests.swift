import Foundation
import NIOCore
import StreamCore
import Testing

private typealias T = TranslateTestSupport

extension TranslateTests {
    /// Every request the mapper refuses, with the parameter and code the client sees.
    struct ChatRequestMapperErrorTests {
        struct Case: CustomTestStringConvertible, Sendable {
            var name: String
            var body: String
            var param: String?
            var code: OpenAIRequestError.Code
            var testDescription: String { name }
        }

        static let user = #"{"role":"user","content":"hi"}"#
        static let png = T.pngBase64

        static let cases: [Case] = [
            // The body itself.
            Case(name: "malformed JSON", body: #"{"model":"m","messages":["#, param: nil, code: .invalidJSON),
            Case(name: "trailing garbage", body: #"{"model":"m","messages":[]} x"#, param: nil, code: .invalidJSON),
            Case(name: "body not an object", body: #"[1,2]"#, param: nil, code: .invalidJSON),
            Case(name: "nesting too deep", body: String(repeating: "[", count: 200) + String(repeating: "]", count: 200), param: nil, code: .invalidJSON),
            // Top-level fields.
            Case(name: "missing model", body: #"{"messages":[\#(user)]}"#, param: "model", code: .missingRequiredParameter),
            Case(name: "model not a string", body: #"{"model":7,"messages":[\#(user)]}"#, param: "model", code: .invalidType),
            Case(name: "missing messages", body: #"{"model":"m"}"#, param: "messages", code: .missingRequiredParameter),
            Case(name: "messages not an array", body: #"{"model":"m","messages":{}}"#, param: "messages", code: .invalidType),
            Case(name: "empty messages", body: #"{"model":"m","messages":[]}"#, param: "messages", code: .invalidValue),
            Case(name: "stream not a boolean", body: T.request(messages: "[\(user)]", extra: #""stream":"yes""#), param: "stream", code: .invalidType),
            Case(name: "include_usage not a boolean", body: T.request(messages: "[\(user)]", extra: #""stream_options":{"include_usage":1}"#), param: "stream_options.include_usage", code: .invalidType),
            Case(name: "user not a string", body: T.request(messages: "[\(user)]", extra: #""user":{"id":1}"#), param: "user", code: .invalidType),
            // Features Bedrock cannot provide.
            Case(name: "n > 1", body: T.request(messages: "[\(user)]", extra: #""n":2"#), param: "n", code: .unsupportedValue),
            Case(name: "logprobs true", body: T.request(messages: "[\(user)]", extra: #""logprobs":true"#), param: "logprobs", code: .unsupportedValue),
            Case(name: "top_logprobs", body: T.request(messages: "[\(user)]", extra: #""logprobs":false,"top_logprobs":3"#), param: "top_logprobs", code: .unsupportedValue),
            // Sampling.
            Case(name: "max_tokens zero", body: T.request(messages: "[\(user)]", extra: #""max_tokens":0"#), param: "max_tokens", code: .invalidValue),
            Case(name: "max_completion_tokens fractional", body: T.request(messages: "[\(user)]", extra: #""max_completion_tokens":10.5"#), param: "max_completion_tokens", code: .invalidType),
            Case(name: "temperature out of range", body: T.request(messages: "[\(user)]", extra: #""temperature":3"#), param: "temperature", code: .invalidValue),
            Case(name: "top_p not a number", body: T.request(messages: "[\(user)]", extra: #""top_p":"high""#), param: "top_p", code: .invalidType),
            Case(name: "stop list with a number", body: T.request(messages: "[\(user)]", extra: #""stop":["a",1]"#), param: "stop[1]", code: .invalidType),
            // Roles and messages.
            Case(name: "message not an object", body: T.request(messages: #"[\#(user),"hi"]"#), param: "messages[1]", code: .invalidType),
            Case(name: "missing role", body: T.request(messages: #"[{"content":"hi"}]"#), param: "messages[0].role", code: .missingRequiredParameter),
            Case(name: "unknown role", body: T.request(messages: #"[\#(user),{"role":"critic","content":"no"}]"#), param: "messages[1].role", code: .invalidValue),
            Case(name: "deprecated function role", body: T.request(messages: #"[{"role":"function","name":"f","content":"x"}]"#), param: "messages[0].role", code: .unsupportedValue),
            Case(name: "user without content", body: T.request(messages: #"[{"role":"user"}]"#), param: "messages[0].content", code: .missingRequiredParameter),
            Case(name: "content a number", body: T.request(messages: #"[{"role":"user","content":5}]"#), param: "messages[0].content", code: .invalidType),
            // Content parts.
            Case(name: "part not an object", body: T.request(messages: #"[{"role":"user","content":["hi"]}]"#), param: "messages[0].content[0]", code: .invalidType),
            Case(name: "part without type", body: T.request(messages: #"[{"role":"user","content":[{"text":"hi"}]}]"#), param: "messages[0].content[0].type", code: .missingRequiredParameter),
            Case(name: "text part without text", body: T.request(messages: #"[{"role":"user","content":[{"type":"text"}]}]"#), param: "messages[0].content[0].text", code: .missingRequiredParameter),
            Case(name: "text part with a number", body: T.request(messages: #"[{"role":"user","content":[{"type":"text","text":1}]}]"#), param: "messages[0].content[0].text", code: .invalidType),
            Case(name: "audio part", body: T.request(messages: #"[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"","format":"wav"}}]}]"#), param: "messages[0].content[0].type", code: .unsupportedValue),
            Case(name: "image in a system message", body: T.request(messages: #"[{"role":"system","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,\#(png)"}}]},\#(user)]"#), param: "messages[0].content[0].type", code: .unsupportedValue),
            // Images.
            Case(name: "remote image URL", body: T.request(messages: #"[\#(user),{"role":"assistant","content":"ok"},{"role":"user","content":"x"},{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]"#), param: "messages[3].content[1].image_url", code: .unsupportedValue),
            Case(name: "image_url without url", body: T.request(messages: #"[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]"#), param: "messages[0].content[0].image_url.url", code: .missingRequiredParameter),
            Case(name: "image_url missing", body: T.request(messages: #"[{"role":"user","content":[{"type":"image_url"}]}]"#), param: "messages[0].content[0].image_url", code: .missingRequiredParameter),
            Case(name: "image not base64-encoded", body: T.request(messages: #"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,rawbytes"}}]}]"#), param: "messages[0].content[0].image_url", code: .invalidValue),
            Case(name: "image media type unsupported", body: T.request(messages: #"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/bmp;base64,\#(png)"}}]}]"#), param: "messages[0].content[0].image_url", code: .invalidValue),
            Case(name: "image invalid base64", body: T.request(messages: #"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,!!!notbase64"}}]}]"#), param: "messages[0].content[0].image_url", code: .invalidValue),
            Case(name: "image empty", body: T.request(messages: #"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,"}}]}]"#), param: "messages[0].content[0].image_url", code: .invalidValue),
            // Assistant tool calls and thinking.
            Case(name: "invalid arguments JSON", body: T.request(messages: #"[\#(user),{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{\"path\": "}}]}]"#), param: "messages[1].tool_calls[0].function.arguments", code: .invalidValue),
            Case(name: "tool call without id", body: T.request(messages: #"[\#(user),{"role":"assistant","tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]"#), param: "messages[1].tool_calls[0].id", code: .missingRequiredParameter),
            Case(name: "tool call without name", body: T.request(messages: #"[\#(user),{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"arguments":"{}"}}]}]"#), param: "messages[1].tool_calls[0].function.name", code: .missingRequiredParameter),
            Case(name: "tool call of another type", body: T.request(messages: #"[\#(user),{"role":"assistant","tool_calls":[{"id":"a","type":"custom","custom":{"name":"f","input":"x"}}]}]"#), param: "messages[1].tool_calls[0].type", code: .unsupportedValue),
            Case(name: "tool_calls not an array", body: T.request(messages: #"[\#(user),{"role":"assistant","tool_calls":{}}]"#), param: "messages[1].tool_calls", code: .invalidType),
            Case(name: "thinking block of unknown type", body: T.request(messages: #"[\#(user),{"role":"assistant","content":"x","thinking_blocks":[{"type":"musing","text":"hm"}]}]"#), param: "messages[1].thinking_blocks[0].type", code: .invalidValue),
            Case(name: "tool message without tool_call_id", body: T.request(messages: #"[\#(user),{"role":"tool","content":"x"}]"#), param: "messages[1].tool_call_id", code: .missingRequiredParameter),
            // Tools.
            Case(name: "tools not an array", body: T.request(messages: "[\(user)]", extra: #""tools":{}"#), param: "tools", code: .invalidType),
            Case(name: "tool without function", body: T.request(messages: "[\(user)]", extra: #""tools":[{"type":"function"}]"#), param: "tools[0].function", code: .missingRequiredParameter),
            Case(name: "tool with an invalid name", body: T.request(messages: "[\(user)]", extra: #""tools":[{"type":"function","function":{"name":"read file"}}]"#), param: "tools[0].function.name", code: .invalidValue),
            Case(name: "duplicate tool names", body: T.request(messages: "[\(user)]", extra: #""tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]"#), param: "tools[1].function.name", code: .invalidValue),
            Case(name: "tool parameters not an object", body: T.request(messages: "[\(user)]", extra: #""tools":[{"type":"function","function":{"name":"f","parameters":"{}"}}]"#), param: "tools[0].function.parameters", code: .invalidType),
            Case(name: "non-function tool", body: T.request(messages: "[\(user)]", extra: #""tools":[{"type":"web_search"}]"#), param: "tools[0].type", code: .unsupportedValue),
            Case(name: "tool_choice unknown", body: T.request(messages: "[\(user)]", extra: #""tool_choice":"sometimes""#), param: "tool_choice", code: .invalidValue),
            Case(name: "tool_choice required without tools", body: T.request(messages: "[\(user)]", extra: #""tool_choice":"required""#), param: "tool_choice", code: .invalidValue),
            Case(name: "tool_choice names a missing tool", body: T.request(messages: "[\(user)]", extra: #""tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}"#), param: "tool_choice.function.name", code: .invalidValue),
            // response_format.
            Case(name: "response_format type unknown", body: T.request(messages: "[\(user)]", extra: #""response_format":{"type":"yaml"}"#), param: "response_format.type", code: .invalidValue),
            Case(name: "json_schema with an array root", body: T.request(messages: "[\(user)]", extra: #""response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"array"}}}"#), param: "response_format.json_schema.schema", code: .invalidValue),
            Case(name: "reserved tool name with response_format", body: T.request(messages: "[\(user)]", extra: #""response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"\#(ChatRequestMapper.responseFormatToolName)"}}]"#), param: "tools", code: .invalidValue),
            // Thinking.
            Case(name: "reasoning_effort unknown", body: T.request(messages: "[\(user)]", extra: #""reasoning_effort":"extreme""#), param: "reasoning_effort", code: .invalidValue),
            Case(name: "thinking type unknown", body: T.request(messages: "[\(user)]", extra: #""thinking":{"type":"sometimes"}"#), param: "thinking.type", code: .invalidValue),
            Case(name: "thinking without budget", body: T.request(messages: "[\(user)]", extra: #""thinking":{"type":"enabled"}"#), param: "thinking.budget_tokens", code: .missingRequiredParameter),
            Case(name: "thinking with a negative budget", body: T.request(messages: "[\(user)]", extra: #""thinking":{"type":"enabled","budget_tokens":-5}"#), param: "thinking.budget_tokens", code: .invalidValue),
            // Reproduced with ChatRequestMapperFuzzer (Fuzz/ChatRequestMapperFuzzer/Regressions/): budget + max_tokens overflowed.
            Case(name: "thinking budget too large for max_tokens", body: T.request(messages: "[\(user)]", extra: #""thinking":{"type":"enabled","budget_tokens":9223372036854775807},"max_tokens":1"#), param: "thinking.budget_tokens", code: .invalidValue),
            Case(name: "thinking budget too large for the default answer room", body: T.request(messages: "[\(user)]", extra: #""thinking":{"type":"enabled","budget_tokens":9223372036854775000}"#), param: "thinking.budget_tokens", code: .invalidValue),
        ]

        @Test("refuses with OpenAI's 400 naming the parameter", arguments: cases)
        func refuses(_ testCase: Case) throws {
            let error = try T.mapError(testCase.body)
            #expect(error.param == testCase.param)
            #expect(error.code == testCase.code)
            #expect(error.httpStatus == 400)
            #expect(!error.message.isEmpty)
        }

        @Test("refuses invalid UTF-8 and unescaped control characters as malformed JSON")
        func refusesBadBytes() throws {
            for bytes: [UInt8] in [
                Array(#"{"model":""#.utf8) + [0xC3, 0x28] + Array(#"","messages":[]}"#.utf8),
                Array(#"{"model":"a"#.utf8) + [0x0A] + Array(#"b","messages":[]}"#.utf8),
            ] {
                let error = try #require(throws: OpenAIRequestError.self) {
                    try ChatRequestMapper().map(ByteBuffer(bytes: bytes))
                }
                #expect(error.code == .invalidJSON)
                #expect(error.param == nil)
            }
        }

        @Test("accepts the harmless forms of refused features: n 1, logprobs false, top_logprobs 0, nulls")
        func acceptsHarmlessForms() throws {
            let request = try T.map(
                T.request(
                    messages: "[\(Self.user)]",
                    extra: #""n":1,"logprobs":false,"top_logprobs":0,"max_tokens":null,"tools":null,"tool_choice":null,"stop":null,"response_format":null"#
                )
            )
            #expect(try T.object(request.body).keys.sorted() == ["messages"])
        }

        @Test("the test helper's structural comparison does notice differences")
        func comparisonDetectsDifferences() throws {
            #expect(try !T.isSame(["a": 1], #"{"a":2}"#))
            #expect(try !T.isSame(["a": 1], #"{"a":1,"b":1}"#))
            #expect(try !T.isSame([1, 2], #"[2,1]"#))
            #expect(try T.isSame(["a": [1, "x"]], #"{"a":[1.0,"x"]}"#))
        }
    }

    struct OpenAIRequestErrorTests {
        @Test("codes are the bounded strings OpenAI uses")
        func codeStrings() {
            #expect(OpenAIRequestError.Code.invalidJSON.description == "invalid_json")
            #expect(OpenAIRequestError.Code.invalidType.description == "invalid_type")
            #expect(OpenAIRequestError.Code.invalidValue.description == "invalid_value")
            #expect(OpenAIRequestError.Code.missingRequiredParameter.description == "missing_required_parameter")
            #expect(OpenAIRequestError.Code.unsupportedValue.description == "unsupported_value")
        }
    }
}
