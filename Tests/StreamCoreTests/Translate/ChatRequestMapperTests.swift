import Foundation
import NIOCore
import StreamCore
import Testing

private typealias T = TranslateTestSupport

extension TranslateTests {
    struct ChatRequestMapperTests {
        // MARK: Request-level fields

        @Test("resolves aliases, keeps the requested name, reads stream flags and user")
        func requestLevelFields() throws {
            let configuration = ChatRequestMapper.Configuration(modelAliases: ["sonnet": T.claude])
            let request = try T.map(
                #"{"model":"sonnet","stream":true,"stream_options":{"include_usage":true},"user":"alice@example.com","messages":[{"role":"user","content":"hi"}]}"#,
                configuration: configuration
            )
            #expect(request.modelID == T.claude)
            #expect(request.requestedModel == "sonnet")
            #expect(request.isStreaming)
            #expect(request.includesUsage)
            #expect(request.user == "alice@example.com")
            #expect(!request.usesResponseFormatTool)
            #expect(!request.isThinkingEnabled)
            #expect(request.messageCount == 1)
            #expect(request.maxTokens == nil)
        }

        @Test("a model without an alias is used as the Bedrock id; stream defaults to false")
        func modelPassThrough() throws {
            let request = try T.map(T.request(model: T.llama, messages: #"[{"role":"user","content":"hi"}]"#))
            #expect(request.modelID == T.llama)
            #expect(request.requestedModel == T.llama)
            #expect(!request.isStreaming)
            #expect(!request.includesUsage)
            #expect(request.user == nil)
        }

        @Test("OpenAI-only and unknown fields never reach Bedrock")
        func unforwardedFields() throws {
            let request = try T.map(
                T.request(
                    messages: #"[{"role":"user","content":"hi"}]"#,
                    extra: #""stream":true,"stream_options":{"include_usage":true},"n":1,"logprobs":false,"top_logprobs":0,"parallel_tool_calls":true,"seed":7,"frequency_penalty":0.5,"presence_penalty":0.1,"user":"bob","metadata":{"k":"v"},"store":true,"service_tier":"auto","some_future_field":{"x":1}"#
                )
            )
            let body = try T.object(request.body)
            #expect(Set(body.keys) == ["messages"])
            let text = String(buffer: request.body)
            for word in ["bob", "seed", "penalty", "stream", "parallel", "metadata", "future"] {
                #expect(!text.contains(word), "\(word) leaked into the Converse body")
            }
        }

        // MARK: Messages

        @Test("system and developer messages, wherever they are, become system blocks in order")
        func systemMessages() throws {
            let body = try T.converse(
                T.request(
                    messages: #"""
                        [{"role":"system","content":"You are terse."},
                         {"role":"user","content":"hi"},
                         {"role":"developer","content":[{"type":"text","text":"Use British spelling."},{"type":"text","text":"No emoji."}]},
                         {"role":"assistant","content":"Hello."},
                         {"role":"user","content":"colour?"}]
                        """#
                )
            )
            #expect(try T.isSame(body["system"], #"[{"text":"You are terse."},{"text":"Use British spelling."},{"text":"No emoji."}]"#))
            #expect(
                try T.isSame(
                    body["messages"],
                    #"""
                    [{"role":"user","content":[{"text":"hi"}]},
                     {"role":"assistant","content":[{"text":"Hello."}]},
                     {"role":"user","content":[{"text":"colour?"}]}]
                    """#
                )
            )
        }

        @Test("user content as a string and as text parts")
        func userContent() throws {
            let body = try T.converse(
                T.request(messages: #"[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b \"q\" \\ é 🚀"}]}]"#)
            )
            #expect(try T.isSame(body["messages"], #"[{"role":"user","content":[{"text":"a"},{"text":"b \"q\" \\ é 🚀"}]}]"#))
        }

        @Test(
            "data: URL images become image blocks in each Bedrock format",
            arguments: [
                ("image/png", T.pngBase64, "png"),
                ("image/jpeg", T.jpegBase64, "jpeg"),
                ("image/jpg", T.jpegBase64, "jpeg"),
                ("image/gif", T.gifBase64, "gif"),
                ("image/webp", T.webpBase64, "webp"),
            ]
        )
        func imageParts(mediaType: String, base64: String, format: String) throws {
            let body = try T.converse(
                T.request(
                    messages: #"[{"role":"user","content":[{"type":"text","text":"what is this?"},{"type":"image_url","image_url":{"url":"data:\#(mediaType);base64,\#(base64)","detail":"high"}}]}]"#
                )
            )
            let content = try #require(body.objects("messages").first?.objects("content"))
            #expect(content.count == 2)
            let image = try #require(content.last?.object("image"))
            #expect(image["format"] as? String == format)
            let bytes = try #require(image.object("source")?["bytes"] as? String)
            #expect(Data(base64Encoded: bytes) == Data(base64Encoded: base64))
        }

        @Test("the image bytes decide the format when the media type is wrong; image_url may be a bare string")
        func imageFormatSniffing() throws {
            let body = try T.converse(
                T.request(messages: #"[{"role":"user","content":[{"type":"image_url","image_url":"data:image/png;base64,\#(T.jpegBase64)"}]}]"#)
            )
            let image = try #require(body.objects("messages").first?.objects("content").first?.object("image"))
            #expect(image["format"] as? String == "jpeg")
        }

        @Test("base64 wrapped across lines is accepted and sent without the line breaks")
        func wrappedBase64() throws {
            let wrapped = T.pngBase64.prefix(40) + "\\r\\n" + T.pngBase64.dropFirst(40)
            let body = try T.converse(
                T.request(messages: #"[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,\#(wrapped)"}}]}]"#)
            )
            let image = try #require(body.objects("messages").first?.objects("content").first?.object("image"))
            #expect(image.object("source")?["bytes"] as? String == T.pngBase64)
        }

        @Test("cache_control inside a tool result or on thinking is dropped; on the tool message it applies")
        func cacheControlPlacement() throws {
            let body = try T.converse(
                T.request(
                    messages: #"""
                        [{"role":"user","content":"go"},
                         {"role":"assistant","thinking_blocks":[{"type":"thinking","thinking":"t","signature":"s","cache_control":{"type":"ephemeral"}}],
                          "tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
                         {"role":"tool","tool_call_id":"a","content":[{"type":"text","text":"r","cache_control":{"type":"ephemeral"}}],"cache_control":{"type":"ephemeral"}}]
                        """#
                )
            )
            let messages = body.objects("messages")
            let cachePoint = #"{"cachePoint":{"type":"default"}}"#
            #expect(
                try T.isSame(
                    messages[1]["content"],
                    #"[{"reasoningContent":{"reasoningText":{"text":"t","signature":"s"}}},{"toolUse":{"toolUseId":"a","name":"f","input":{}}}]"#
                )
            )
            #expect(try T.isSame(messages[2]["content"], #"[{"toolResult":{"toolUseId":"a","content":[{"text":"r"}]}},\#(cachePoint)]"#))
        }

        @Test("assistant text and tool calls become text and toolUse blocks with parsed input")
        func assistantToolCalls() throws {
            let request = try T.map(
                T.request(
                    messages: #"""
                        [{"role":"user","content":"read two files"},
                         {"role":"assistant","content":"Reading.","tool_calls":[
                           {"id":"call_1","type":"function","function":{"name":"read_file","arguments":"{\"path\":\"a.swift\",\"limit\":2.50,\"opts\":{\"z\":1,\"a\":[true,null]}}"}},
                           {"id":"call_2","type":"function","function":{"name":"list_files","arguments":""}}]},
                         {"role":"tool","tool_call_id":"call_1","content":"let a = 1"},
                         {"role":"tool","tool_call_id":"call_2","content":"a.swift"}]
                        """#,
                    extra: #""tools":[{"type":"function","function":{"name":"read_file"}},{"type":"function","function":{"name":"list_files"}}]"#
                )
            )
            let body = try T.object(request.body)
            let messages = body.objects("messages")
            #expect(messages.count == 3)
            #expect(
                try T.isSame(
                    messages[1]["content"],
                    #"""
                    [{"text":"Reading."},
                     {"toolUse":{"toolUseId":"call_1","name":"read_file","input":{"path":"a.swift","limit":2.5,"opts":{"z":1,"a":[true,null]}}}},
                     {"toolUse":{"toolUseId":"call_2","name":"list_files","input":{}}}]
                    """#
                )
            )
            // Key order and number spelling survive (prompt caching needs byte-stable requests).
            #expect(String(buffer: request.body).contains(#""input":{"path":"a.swift","limit":2.50,"opts":{"z":1,"a":[true,null]}}"#))
        }

        @Test("tool messages become toolResult blocks in one user turn, results before text")
        func toolResults() throws {
            let body = try T.converse(
                T.request(
                    messages: #"""
                        [{"role":"user","content":"go"},
                         {"role":"assistant","content":null,"tool_calls":[
                           {"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},
                           {"id":"b","type":"function","function":{"name":"f","arguments":"{}"}}]},
                         {"role":"user","content":"note: b may be slow"},
                         {"role":"tool","tool_call_id":"a","content":"one"},
                         {"role":"tool","tool_call_id":"b","content":[{"type":"text","text":"two"},{"type":"image_url","image_url":{"url":"data:image/png;base64,\#(T.pngBase64)"}}]}]
                        """#,
                    extra: #""tools":[{"type":"function","function":{"name":"f"}}]"#
                )
            )
            let messages = body.objects("messages")
            #expect(messages.map { $0["role"] as? String } == ["user", "assistant", "user"])
            #expect(try T.isSame(messages[1]["content"], #"[{"toolUse":{"toolUseId":"a","name":"f","input":{}}},{"toolUse":{"toolUseId":"b","name":"f","input":{}}}]"#))
            #expect(
                try T.isSame(
                    messages[2]["content"],
                    #"""
                    [{"toolResult":{"toolUseId":"a","content":[{"text":"one"}]}},
                     {"toolResult":{"toolUseId":"b","content":[{"text":"two"},{"image":{"format":"png","source":{"bytes":"\#(T.pngBase64)"}}}]}},
                     {"text":"note: b may be slow"}]
                    """#
                )
            )
        }

        @Test("consecutive same-role messages merge so roles alternate")
        func mergesSameRole() throws {
            let body = try T.converse(
                T.request(
                    messages: #"""
                        [{"role":"user","content":"a"},{"role":"user","content":"b"},
                         {"role":"assistant","content":"c"},{"role":"assistant","content":"d"},
                         {"role":"user","content":"e"}]
                        """#
                )
            )
            #expect(
                try T.isSame(
                    body["messages"],
                    #"""
                    [{"role":"user","content":[{"text":"a"},{"text":"b"}]},
                     {"role":"assistant","content":[{"text":"c"},{"text":"d"}]},
                     {"role":"user","content":[{"text":"e"}]}]
                    """#
                )
            )
        }

        @Test("blank text is dropped, empty turns vanish, empty tool results say (empty)")
        func emptyContent() throws {
            let body = try T.converse(
                T.request(
                    messages: #"""
                        [{"role":"system","content":""},
                         {"role":"user","content":"q"},
                         {"role":"assistant","content":""},
                         {"role":"user","content":[{"type":"text","text":"  \n"}]},
                         {"role":"assistant","content":"","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},
                         {"role":"tool","tool_call_id":"t","content":""}]
                        """#,
                    extra: #""tools":[{"type":"function","function":{"name":"f"}}]"#
                )
            )
            #expect(body["system"] == nil)
            #expect(
                try T.isSame(
                    body["messages"],
                    #"""
                    [{"role":"user","content":[{"text":"q"}]},
                     {"role":"assistant","content":[{"toolUse":{"toolUseId":"t","name":"f","input":{}}}]},
                     {"role":"user","content":[{"toolResult":{"toolUseId":"t","content":[{"text":"(empty)"}]}}]}]
                    """#
                )
            )
        }

        @Test("a conversation that does not start with a user turn gets a placeholder one")
        func startsWithUser() throws {
            let assistantFirst = try T.converse(
                T.request(messages: #"[{"role":"assistant","content":"Hi, how can I help?"},{"role":"user","content":"fix it"}]"#)
            )
            #expect(assistantFirst.objects("messages").map { $0["role"] as? String } == ["user", "assistant", "user"])
            #expect(try T.isSame(assistantFirst.objects("messages")[0]["content"], #"[{"text":"."}]"#))

            let systemOnly = try T.converse(T.request(messages: #"[{"role":"system","content":"Say hello."}]"#))
            #expect(try T.isSame(systemOnly["messages"], #"[{"role":"user","content":[{"text":"."}]}]"#))
        }

        @Test("a final assistant prefill loses trailing whitespace")
        func prefillTrimmed() throws {
            let body = try T.converse(
                T.request(messages: #"[{"role":"user","content":"json please"},{"role":"assistant","content":"{\"a\": \n "}]"#)
            )
            #expect(try T.isSame(body.objects("messages").last?["content"], #"[{"text":"{\"a\":"}]"#))
        }

        @Test("tool-call ids outside [a-zA-Z0-9_-]{1,64} are rewritten the same way on both sides")
        func toolUseIDSanitized() throws {
            let longID = String(repeating: "x", count: 70)
            let body = try T.converse(
                T.request(
                    messages: #"""
                        [{"role":"user","content":"go"},
                         {"role":"assistant","tool_calls":[{"id":"functions.read:0","type":"function","function":{"name":"f","arguments":"{}"}},
                                                           {"id":"\#(longID)","type":"function","function":{"name":"f","arguments":"{}"}}]},
                         {"role":"tool","tool_call_id":"functions.read:0","content":"ok"},
                         {"role":"tool","tool_call_id":"\#(longID)","content":"ok"}]
                        """#
                )
            )
            let messages = body.objects("messages")
            let uses = messages[1].objects("content").compactMap { $0.object("toolUse")?["toolUseId"] as? String }
            let results = messages[2].objects("content").compactMap { $0.object("toolResult")?["toolUseId"] as? String }
            #expect(uses == ["functions_read_0", String(repeating: "x", count: 64)])
            #expect(results == uses)
        }

        // MARK: Tools

        @Test("tools become toolSpecs with name, description and inputSchema.json")
        func toolSpecs() throws {
            let body = try T.converse(
                T.request(
                    model: T.llama,
                    messages: #"[{"role":"user","content":"hi"}]"#,
                    extra: #""tools":[{"type":"function","function":{"name":"read_file","description":"Read a file.","parameters":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]},"strict":true}},{"type":"function","function":{"name":"now"}}]"#
                )
            )
            #expect(
                try T.isSame(
                    body["toolConfig"],
                    #"""
                    {"tools":[
                      {"toolSpec":{"name":"read_file","description":"Read a file.","inputSchema":{"json":{"type":"object","properties":{"path":{"type":"string"}},"required":["path"]}}}},
                      {"toolSpec":{"name":"now","inputSchema":{"json":{"type":"object","properties":{}}}}}]}
                    """#
                )
            )
            #expect(body["additionalModelRequestFields"] == nil)  // not an Anthropic model: no beta
        }

        @Test(
            "tool_choice auto, required and named map to auto, any and tool",
            arguments: [
                (#""auto""#, #"{"auto":{}}"#),
                (#""required""#, #"{"any":{}}"#),
                (#"{"type":"function","function":{"name":"g"}}"#, #"{"tool":{"name":"g"}}"#),
            ]
        )
        func toolChoice(choice: String, expected: String) throws {
            let body = try T.converse(
                T.request(
                    messages: #"[{"role":"user","content":"hi"}]"#,
                    extra: #""tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"g"}}],"tool_choice":\#(choice)"#
                )
            )
            #expect(try T.isSame(body.object("toolConfig")?["toolChoice"], expected))
        }

        @Test("without tool_choice no toolChoice is sent (Bedrock defaults to auto)")
        func toolChoiceUnspecified() throws {
            let body = try T.converse(
                T.request(messages: #"[{"role":"user","content":"hi"}]"#, extra: #""tools":[{"type":"function","function":{"name":"f"}}]"#)
            )
            #expect(body.object("toolConfig")?["toolChoice"] == nil)
            #expect(body.object("toolConfig")?.objects("tools").count == 1)
        }

        @Test("tool_choice none withholds the tools when history has no tool blocks")
        func toolChoiceNone() throws {
            let body = try T.converse(
                T.request(
                    messages: #"[{"role":"user","content":"hi"}]"#,
                    extra: #""tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none""#
                )
            )
            #expect(body["toolConfig"] == nil)
            #expect(body["additionalModelRequestFields"] == nil)
        }

        @Test("tool_choice none with tool history sends only specs for the history's tools, and no choice")
        func toolChoiceNoneWithHistory() throws {
            let body = try T.converse(
                T.request(
                    messages: #"""
                        [{"role":"user","content":"go"},
                         {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
                         {"role":"tool","tool_call_id":"a","content":"done"},
                         {"role":"user","content":"now summarise without tools"}]
                        """#,
                    extra: #""tools":[{"type":"function","function":{"name":"f","description":"F."}},{"type":"function","function":{"name":"g"}}],"tool_choice":"none""#
                )
            )
            let toolConfig = try #require(body.object("toolConfig"))
            #expect(toolConfig["toolChoice"] == nil)
            let specs = toolConfig.objects("tools").compactMap { $0.object("toolSpec") }
            #expect(specs.map { $0["name"] as? String } == ["f"])
            #expect((specs.first?["description"] as? String)?.contains("not available") == true)
        }

        @Test("history with tool blocks but no tools gets a synthesized toolConfig")
        func synthesizedToolConfig() throws {
            let body = try T.converse(
                T.request(
                    model: T.nova,
                    messages: #"""
                        [{"role":"user","content":"go"},
                         {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"read_file","arguments":"{}"}},
                                                           {"id":"b","type":"function","function":{"name":"grep","arguments":"{}"}},
                                                           {"id":"c","type":"function","function":{"name":"read_file","arguments":"{}"}}]},
                         {"role":"tool","tool_call_id":"a","content":"1"},{"role":"tool","tool_call_id":"b","content":"2"},{"role":"tool","tool_call_id":"c","content":"3"}]
                        """#
                )
            )
            let specs = body.object("toolConfig")?.objects("tools").compactMap { $0.object("toolSpec") } ?? []
            #expect(specs.map { $0["name"] as? String } == ["read_file", "grep"])
            #expect(try T.isSame(specs.first?.object("inputSchema")?["json"], #"{"type":"object"}"#))
            #expect(body.object("toolConfig")?["toolChoice"] == nil)
        }

        @Test("orphan tool results (no tool calls in history) still get a toolConfig")
        func orphanToolResults() throws {
            let body = try T.converse(
                T.request(model: T.nova, messages: #"[{"role":"tool","tool_call_id":"x","content":"stale result"},{"role":"user","content":"hi"}]"#)
            )
            let specs = body.object("toolConfig")?.objects("tools") ?? []
            #expect(specs.count == 1)
        }

        @Test("Anthropic models with tools ask for fine-grained tool streaming")
        func fineGrainedToolStreaming() throws {
            let withTools = try T.converse(
                T.request(messages: #"[{"role":"user","content":"hi"}]"#, extra: #""tools":[{"type":"function","function":{"name":"f"}}]"#)
            )
            #expect(
                try T.isSame(
                    withTools["additionalModelRequestFields"],
                    #"{"anthropic_beta":["fine-grained-tool-streaming-2025-05-14"]}"#
                )
            )
            let withoutTools = try T.converse(T.request(messages: #"[{"role":"user","content":"hi"}]"#))
            #expect(withoutTools["additionalModelRequestFields"] == nil)
        }

        // MARK: Inference configuration

        @Test("max_tokens, temperature, top_p and a stop string map to inferenceConfig")
        func inferenceConfig() throws {
            let body = try T.converse(
                T.request(
                    model: T.llama,
                    messages: #"[{"role":"user","content":"hi"}]"#,
                    extra: #""max_tokens":300,"temperature":0.7,"top_p":0.9,"stop":"END""#
                )
            )
            #expect(try T.isSame(body["inferenceConfig"], #"{"maxTokens":300,"temperature":0.7,"topP":0.9,"stopSequences":["END"]}"#))
        }

        @Test("max_completion_tokens wins over max_tokens; stop lists drop blank entries")
        func maxCompletionTokensAndStopList() throws {
            let body = try T.converse(
                T.request(
                    model: T.llama,
                    messages: #"[{"role":"user","content":"hi"}]"#,
                    extra: #""max_completion_tokens":500,"max_tokens":100,"stop":["~~~"," ","\n\nHuman:"]"#
                )
            )
            #expect(try T.isSame(body["inferenceConfig"], #"{"maxTokens":500,"stopSequences":["~~~","\n\nHuman:"]}"#))
        }

        @Test("Anthropic: temperature clamps to 1 and top_p is dropped when temperature is set")
        func anthropicSampling() throws {
            let both = try T.converse(
                T.request(messages: #"[{"role":"user","content":"hi"}]"#, extra: #""temperature":1.5,"top_p":0.8"#)
            )
            #expect(try T.isSame(both["inferenceConfig"], #"{"temperature":1}"#))
            let topPOnly = try T.converse(T.request(messages: #"[{"role":"user","content":"hi"}]"#, extra: #""top_p":0.8"#))
            #expect(try T.isSame(topPOnly["inferenceConfig"], #"{"topP":0.8}"#))
        }

        // MARK: Thinking

        @Test(
            "reasoning_effort enables thinking with LiteLLM's budgets and raises maxTokens above the budget",
            arguments: [
                ("low", nil, 1024, 1024 + 4096),
                ("medium", 8000, 2048, 8000),
                ("high", 4096, 4096, 4096 + 4096),
                ("high", 1000, 4096, 4096 + 1000),
            ] as [(String, Int?, Int, Int)]
        )
        func reasoningEffort(effort: String, maxTokens: Int?, budget: Int, expectedMaxTokens: Int) throws {
            let maxField = maxTokens.map { #","max_tokens":\#($0)"# } ?? ""
            let request = try T.map(
                T.request(
                    messages: #"[{"role":"user","content":"hi"}]"#,
                    extra: #""reasoning_effort":"\#(effort)","temperature":0.2,"top_p":0.5\#(maxField)"#
                )
            )
            #expect(request.isThinkingEnabled)
            #expect(request.maxTokens == expectedMaxTokens)
            let body = try T.object(request.body)
            #expect(try T.isSame(body["additionalModelRequestFields"], #"{"thinking":{"type":"enabled","budget_tokens":\#(budget)}}"#))
            // temperature and top_p are dropped: Anthropic refuses them with thinking.
            #expect(try T.isSame(body["inferenceConfig"], #"{"maxTokens":\#(expectedMaxTokens)}"#))
        }

        @Test("the thinking extension sets the budget, at least 1024; disabled and none turn it off")
        func thinkingExtension() throws {
            let small = try T.converse(
                T.request(messages: #"[{"role":"user","content":"hi"}]"#, extra: #""thinking":{"type":"enabled","budget_tokens":500},"max_tokens":3000"#)
            )
            #expect(try T.isSame(small.object("additionalModelRequestFields")?["thinking"], #"{"type":"enabled","budget_tokens":1024}"#))
            #expect(try T.isSame(small["inferenceConfig"], #"{"maxTokens":3000}"#))

            let disabled = try T.map(
                T.request(messages: #"[{"role":"user","content":"hi"}]"#, extra: #""reasoning_effort":"high","thinking":{"type":"disabled"}"#)
            )
            #expect(!disabled.isThinkingEnabled)
            let none = try T.map(T.request(messages: #"[{"role":"user","content":"hi"}]"#, extra: #""reasoning_effort":"none""#))
            #expect(!none.isThinkingEnabled)
        }

        @Test("non-Anthropic models ignore reasoning requests")
        func thinkingIgnoredElsewhere() throws {
            let request = try T.map(
                T.request(model: T.nova, messages: #"[{"role":"user","content":"hi"}]"#, extra: #""reasoning_effort":"high","temperature":0.3"#)
            )
            #expect(!request.isThinkingEnabled)
            let body = try T.object(request.body)
            #expect(body["additionalModelRequestFields"] == nil)
            #expect(try T.isSame(body["inferenceConfig"], #"{"temperature":0.3}"#))
        }

        @Test("with thinking, a forced tool choice becomes auto (Anthropic refuses both together)")
        func thinkingWithForcedTool() throws {
            let body = try T.converse(
                T.request(
                    messages: #"[{"role":"user","content":"hi"}]"#,
                    extra: #""reasoning_effort":"low","tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required""#
                )
            )
            #expect(try T.isSame(body.object("toolConfig")?["toolChoice"], #"{"auto":{}}"#))
            #expect(
                try T.isSame(
                    body["additionalModelRequestFields"],
                    #"{"thinking":{"type":"enabled","budget_tokens":1024},"anthropic_beta":["fine-grained-tool-streaming-2025-05-14"]}"#
                )
            )
        }

        @Test("thinking stays off when the tool calls being answered were sent back without their thinking")
        func thinkingOffForUnsignedToolTurn() throws {
            let history = #"""
                [{"role":"user","content":"go"},
                 {"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
                 {"role":"tool","tool_call_id":"a","content":"ok"}]
                """#
            let extra = #""tools":[{"type":"function","function":{"name":"f"}}],"reasoning_effort":"medium","temperature":0.5"#
            let request = try T.map(T.request(messages: history, extra: extra))
            #expect(!request.isThinkingEnabled)
            let body = try T.object(request.body)
            #expect(body.object("additionalModelRequestFields")?["thinking"] == nil)
            #expect(try T.isSame(body["inferenceConfig"], #"{"temperature":0.5}"#))

            let signed = history.replacingOccurrences(
                of: #"{"role":"assistant","tool_calls""#,
                with: #"{"role":"assistant","thinking_blocks":[{"type":"thinking","thinking":"t","signature":"s"}],"tool_calls""#
            )
            #expect(try T.map(T.request(messages: signed, extra: extra)).isThinkingEnabled)
        }

        @Test("thinking_blocks replay as reasoningContent before the turn's text and tool calls")
        func thinkingBlocksReplayed() throws {
            let body = try T.converse(
                T.request(
                    messages: #"""
                        [{"role":"user","content":"go"},
                         {"role":"assistant","content":"Calling f.",
                          "thinking_blocks":[{"type":"thinking","thinking":"I should call f.","signature":"sig=="},
                                             {"type":"redacted_thinking","data":"EncryptedBlob=="},
                                             {"type":"thinking","thinking":"unsigned, from another provider"}],
                          "tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]},
                         {"role":"tool","tool_call_id":"a","content":"ok"}]
                        """#,
                    extra: #""tools":[{"type":"function","function":{"name":"f"}}],"reasoning_effort":"low""#
                )
            )
            #expect(
                try T.isSame(
                    body.objects("messages")[1]["content"],
                    #"""
                    [{"reasoningContent":{"reasoningText":{"text":"I should call f.","signature":"sig=="}}},
                     {"reasoningContent":{"redactedContent":"EncryptedBlob=="}},
                     {"text":"Calling f."},
                     {"toolUse":{"toolUseId":"a","name":"f","input":{}}}]
                    """#
                )
            )
        }

        // MARK: Prompt caching

        @Test("cache_control on messages, parts and tools becomes a cachePoint after the marked item")
        func cacheControl() throws {
            let body = try T.converse(
                T.request(
                    messages: #"""
                        [{"role":"system","content":[{"type":"text","text":"big system prompt","cache_control":{"type":"ephemeral"}}]},
                         {"role":"user","content":[{"type":"text","text":"context"},{"type":"text","text":"question","cache_control":{"type":"ephemeral"}}]},
                         {"role":"assistant","content":"answer","cache_control":{"type":"ephemeral"}},
                         {"role":"user","content":"next"}]
                        """#,
                    extra: #""tools":[{"type":"function","function":{"name":"f"},"cache_control":{"type":"ephemeral"}},{"type":"function","function":{"name":"g"}}]"#
                )
            )
            let cachePoint = #"{"cachePoint":{"type":"default"}}"#
            #expect(try T.isSame(body["system"], #"[{"text":"big system prompt"},\#(cachePoint)]"#))
            let messages = body.objects("messages")
            #expect(try T.isSame(messages[0]["content"], #"[{"text":"context"},{"text":"question"},\#(cachePoint)]"#))
            #expect(try T.isSame(messages[1]["content"], #"[{"text":"answer"},\#(cachePoint)]"#))
            #expect(
                try T.isSame(
                    body.object("toolConfig")?["tools"],
                    #"""
                    [{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object","properties":{}}}}},\#(cachePoint),
                     {"toolSpec":{"name":"g","inputSchema":{"json":{"type":"object","properties":{}}}}}]
                    """#
                )
            )
        }

        @Test("automatic cache points go after system and tools, only for models that cache")
        func automaticCachePoints() throws {
            let configuration = ChatRequestMapper.Configuration(addsAutomaticCachePoints: true)
            let json = { (model: String) in
                T.request(
                    model: model,
                    messages: #"[{"role":"system","content":"sys"},{"role":"user","content":"hi"}]"#,
                    extra: #""tools":[{"type":"function","function":{"name":"f"}}]"#
                )
            }
            let claude = try T.converse(json(T.claude), configuration: configuration)
            #expect((claude["system"] as? [Any])?.count == 2)
            #expect((claude.object("toolConfig")?["tools"] as? [Any])?.count == 2)
            #expect(claude.object("toolConfig")?.objects("tools").last?["cachePoint"] != nil)

            let nova = try T.converse(json(T.nova), configuration: configuration)
            #expect((nova["system"] as? [Any])?.count == 2)  // Nova caches system prompts, not tools
            #expect((nova.object("toolConfig")?["tools"] as? [Any])?.count == 1)

            let llama = try T.converse(json(T.llama), configuration: configuration)
            #expect((llama["system"] as? [Any])?.count == 1)

            let off = try T.converse(json(T.claude))
            #expect((off["system"] as? [Any])?.count == 1)
        }

        @Test("automatic cache points never take the request past four")
        func automaticCachePointsRespectLimit() throws {
            let marked = #"{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}"#
            let body = try T.converse(
                T.request(
                    messages: #"""
                        [{"role":"system","content":"sys"},
                         {"role":"user","content":[\#(marked)]},{"role":"assistant","content":"a"},
                         {"role":"user","content":[\#(marked)]},{"role":"assistant","content":"b"},
                         {"role":"user","content":[\#(marked)]}]
                        """#,
                    extra: #""tools":[{"type":"function","function":{"name":"f"}}]"#
                ),
                configuration: ChatRequestMapper.Configuration(addsAutomaticCachePoints: true)
            )
            // Three client markers + one automatic (system, preferred over tools) = four.
            #expect((body["system"] as? [Any])?.count == 2)
            #expect((body.object("toolConfig")?["tools"] as? [Any])?.count == 1)
        }

        // MARK: response_format

        @Test("json_schema is emulated with a forced tool whose schema is the requested one")
        func responseFormatJSONSchema() throws {
            let request = try T.map(
                T.request(
                    messages: #"[{"role":"user","content":"extract"}]"#,
                    extra: #""response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}}}"#
                )
            )
            #expect(request.usesResponseFormatTool)
            let toolConfig = try #require(try T.object(request.body).object("toolConfig"))
            let name = ChatRequestMapper.responseFormatToolName.description
            #expect(try T.isSame(toolConfig["toolChoice"], #"{"tool":{"name":"\#(name)"}}"#))
            let spec = try #require(toolConfig.objects("tools").first?.object("toolSpec"))
            #expect(spec["name"] as? String == name)
            #expect(try T.isSame(spec.object("inputSchema")?["json"], #"{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}"#))
            #expect((spec["description"] as? String)?.contains("person") == true)
        }

        @Test("json_object forces the tool with an any-object schema; text format changes nothing")
        func responseFormatJSONObject() throws {
            let body = try T.converse(
                T.request(messages: #"[{"role":"user","content":"hi"}]"#, extra: #""response_format":{"type":"json_object"}"#)
            )
            let spec = body.object("toolConfig")?.objects("tools").first?.object("toolSpec")
            #expect(try T.isSame(spec?.object("inputSchema")?["json"], #"{"type":"object"}"#))

            let text = try T.map(T.request(messages: #"[{"role":"user","content":"hi"}]"#, extra: #""response_format":{"type":"text"}"#))
            #expect(!text.usesResponseFormatTool)
            #expect(try T.object(text.body)["toolConfig"] == nil)
        }

        @Test("response_format with user tools requires some tool call (any), the JSON tool last")
        func responseFormatWithTools() throws {
            let body = try T.converse(
                T.request(
                    messages: #"[{"role":"user","content":"hi"}]"#,
                    extra: #""response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f"}}]"#
                )
            )
            let toolConfig = try #require(body.object("toolConfig"))
            #expect(try T.isSame(toolConfig["toolChoice"], #"{"any":{}}"#))
            #expect(
                toolConfig.objects("tools").compactMap { $0.object("toolSpec")?["name"] as? String }
                    == ["f", ChatRequestMapper.responseFormatToolName.description]
            )
        }
    }
}
