import AsyncHTTPClient
import BedrockSimulator
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// Every route, over a real socket, decoded with StreamCore's decoder.
struct SimulatorRoutesTests {
    static let sonnet = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    static let sonnetEncoded = "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0"
    static let paddingAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

    /// Checks what every Bedrock event frame must have: the three headers in Bedrock's order, and a
    /// `"p"` that is a non-empty prefix of the padding alphabet.
    static func expectBedrockEventFrame(_ message: EventStreamMessage, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(message.headerNames == [":event-type", ":content-type", ":message-type"], sourceLocation: sourceLocation)
        #expect(message.headerString(":content-type") == "application/json", sourceLocation: sourceLocation)
        #expect(message.headerString(":message-type") == "event", sourceLocation: sourceLocation)
        let padding = message.json?["p"]?.string ?? ""
        #expect(!padding.isEmpty && Self.paddingAlphabet.hasPrefix(padding), sourceLocation: sourceLocation)
    }

    @Test("converse answers a whole Converse message with predictable usage")
    func converse() async throws {
        try await Simulator.run { simulator in
            let body = Bodies.converse("Hello there")
            let (response, bytes) = try await simulator.send("/model/\(Self.sonnetEncoded)/converse", body: body)
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-type") == "application/json")
            #expect(response.headers.first(name: "x-amzn-RequestId")?.count == 36)
            let json = try JSONValue(parsing: String(buffer: bytes))
            #expect(json["output"]?["message"]?["role"]?.string == "assistant")
            let text = try #require(json["output"]?["message"]?["content"]?[0]?["text"]?.string)
            #expect(text.count == 8 * 12)
            #expect(json["stopReason"]?.string == "end_turn")
            #expect(json["usage"]?["inputTokens"]?.int == body.utf8.count / 4)
            #expect(json["usage"]?["outputTokens"]?.int == 8)
            #expect(json["usage"]?["totalTokens"]?.int == body.utf8.count / 4 + 8)
            #expect(json["metrics"]?["latencyMs"]?.int != nil)
            #expect(String(buffer: bytes).hasPrefix(#"{"output":{"message":{"role":"assistant","content":["#))
        }
    }

    @Test("converse-stream sends Bedrock's frames, field order and padding, and the same text as converse")
    func converseStream() async throws {
        try await Simulator.run { simulator in
            let body = Bodies.converse("Stream to me")
            let (response, bytes) = try await simulator.send("/model/\(Self.sonnetEncoded)/converse-stream", body: body)
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-type") == "application/vnd.amazon.eventstream")
            let stream = DecodedStream(bytes)
            #expect(stream.error == nil)
            #expect(
                stream.eventTypes
                    == ["messageStart"] + Array(repeating: "contentBlockDelta", count: 8)
                    + ["contentBlockStop", "messageStop", "metadata"]
            )
            for message in stream.messages { Self.expectBedrockEventFrame(message) }
            let payloads = stream.payloads
            #expect(payloads[0].hasPrefix(#"{"p":""#) && payloads[0].hasSuffix(#","role":"assistant"}"#))
            for payload in payloads[1...8] {
                #expect(payload.hasPrefix(#"{"contentBlockIndex":0,"delta":{"text":""#))
                #expect(payload.contains(#""},"p":""#))
            }
            #expect(payloads[9].hasPrefix(#"{"contentBlockIndex":0,"p":""#))
            #expect(payloads[10].hasPrefix(#"{"p":""#) && payloads[10].hasSuffix(#","stopReason":"end_turn"}"#))
            #expect(payloads[11].hasPrefix(#"{"metrics":{"latencyMs":"#) && payloads[11].contains(#"},"p":""#))
            let usage = stream.messages[11].json?["usage"]
            #expect(usage?["inputTokens"]?.int == body.utf8.count / 4)
            #expect(usage?["outputTokens"]?.int == 8)
            #expect(usage?["totalTokens"]?.int == body.utf8.count / 4 + 8)

            let streamed = stream.messages[1...8].compactMap { $0.json?["delta"]?["text"]?.string }.joined()
            let (_, whole) = try await simulator.send("/model/\(Self.sonnetEncoded)/converse", body: body)
            let text = try JSONValue(parsing: String(buffer: whole))["output"]?["message"]?["content"]?[0]?["text"]?.string
            #expect(streamed == text)
            // The corpus exercises escaping: quotes, backslashes, newlines and non-ASCII all appear
            // somewhere in a long enough answer.
            let (_, long) = try await simulator.send(
                "/model/\(Self.sonnetEncoded)/converse",
                body: body,
                headers: [("x-sluice-sim-scenario", "chunks=30")]
            )
            let longText = try #require(try JSONValue(parsing: String(buffer: long))["output"]?["message"]?["content"]?[0]?["text"]?.string)
            for needle in ["\"", "\\", "\n", "✓", "🚀"] { #expect(longText.contains(needle)) }
        }
    }

    @Test("invoke answers an Anthropic message with Bedrock's token headers")
    func invoke() async throws {
        try await Simulator.run { simulator in
            let body = Bodies.anthropic("Hi")
            let (response, bytes) = try await simulator.send("/model/\(Self.sonnet)/invoke", body: body)
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "X-Amzn-Bedrock-Input-Token-Count") == String(body.utf8.count / 4))
            #expect(response.headers.first(name: "X-Amzn-Bedrock-Output-Token-Count") == "8")
            #expect(response.headers.first(name: "X-Amzn-Bedrock-Invocation-Latency").flatMap { Int($0) } != nil)
            let json = try JSONValue(parsing: String(buffer: bytes))
            #expect(json["id"]?.string?.hasPrefix("msg_bdrk_01") == true)
            #expect(json["type"]?.string == "message")
            #expect(json["role"]?.string == "assistant")
            #expect(json["model"]?.string == "claude-sonnet-4-5-20250929")
            #expect(json["content"]?[0]?["type"]?.string == "text")
            #expect(json["content"]?[0]?["text"]?.string?.count == 96)
            #expect(json["stop_reason"]?.string == "end_turn")
            #expect(json["stop_sequence"]?.isNull == true)
            #expect(json["usage"]?["input_tokens"]?.int == body.utf8.count / 4)
            #expect(json["usage"]?["output_tokens"]?.int == 8)
            #expect(json["usage"]?["cache_read_input_tokens"]?.int == 0)
        }
    }

    @Test("invoke-with-response-stream sends chunk frames of base64 Anthropic events")
    func invokeStream() async throws {
        try await Simulator.run { simulator in
            let body = Bodies.anthropic("Hi")
            let (response, bytes) = try await simulator.send("/model/\(Self.sonnet)/invoke-with-response-stream", body: body)
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-type") == "application/vnd.amazon.eventstream")
            #expect(response.headers.first(name: "X-Amzn-Bedrock-Content-Type") == "application/json")
            #expect(response.headers.first(name: "x-amzn-RequestId") != nil)
            let stream = DecodedStream(bytes)
            #expect(stream.error == nil)
            #expect(stream.eventTypes.allSatisfy { $0 == "chunk" })
            for message in stream.messages {
                Self.expectBedrockEventFrame(message)
                #expect(String(buffer: message.payload).hasPrefix(#"{"bytes":""#))
            }
            let events = stream.messages.compactMap(\.anthropicEvent)
            #expect(events.count == stream.messages.count)
            #expect(
                events.compactMap { $0["type"]?.string }
                    == ["message_start", "content_block_start"] + Array(repeating: "content_block_delta", count: 8)
                    + ["content_block_stop", "message_delta", "message_stop"]
            )
            let start = events[0]["message"]
            #expect(start?["model"]?.string == "claude-sonnet-4-5-20250929")
            #expect(start?["usage"]?["input_tokens"]?.int == body.utf8.count / 4)
            #expect(start?["content"]?.array?.isEmpty == true)
            #expect(events[1]["content_block"]?["type"]?.string == "text")
            #expect(events[2]["delta"]?["type"]?.string == "text_delta")
            let delta = events[11]
            #expect(delta["delta"]?["stop_reason"]?.string == "end_turn")
            #expect(delta["delta"]?["stop_sequence"]?.isNull == true)
            #expect(delta["usage"]?["output_tokens"]?.int == 8)
            let metrics = events[12]["amazon-bedrock-invocationMetrics"]
            #expect(metrics?["inputTokenCount"]?.int == body.utf8.count / 4)
            #expect(metrics?["outputTokenCount"]?.int == 8)
            #expect(metrics?["invocationLatency"]?.int != nil)
            #expect(metrics?["firstByteLatency"]?.int != nil)

            // StreamCore's meter (what the gateway uses) agrees.
            var translator = InvokeStreamTranslator()
            for message in stream.messages { _ = translator.observe(message) }
            #expect(translator.isComplete)
            #expect(translator.usage.outputTokens == 8)
            #expect(translator.usage.inputTokens == body.utf8.count / 4)
        }
    }

    @Test("count-tokens estimates bytes / 4 for invokeModel and converse inputs")
    func countTokens() async throws {
        try await Simulator.run { simulator in
            let anthropic = Bodies.anthropic("count me")
            var base64 = ByteBuffer()
            base64.writeBase64ForTests(ByteBuffer(string: anthropic))
            let invokeBody = #"{"input":{"invokeModel":{"body":""# + String(buffer: base64) + #""}}}"#
            let (response, bytes) = try await simulator.send("/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/count-tokens", body: invokeBody)
            #expect(response.status == .ok)
            #expect(try JSONValue(parsing: String(buffer: bytes))["inputTokens"]?.int == anthropic.utf8.count / 4)

            let converse = #"{"messages":[{"role":"user","content":[{"text":"count me too"}]}]}"#
            let (_, converseBytes) = try await simulator.send(
                "/model/\(Self.sonnetEncoded)/count-tokens", body: #"{"input":{"converse": "# + converse + "}}"
            )
            #expect(try JSONValue(parsing: String(buffer: converseBytes))["inputTokens"]?.int == converse.utf8.count / 4)

            let (bad, _) = try await simulator.send("/model/\(Self.sonnetEncoded)/count-tokens", body: #"{"input":{}}"#)
            #expect(bad.status == .badRequest)
        }
    }

    @Test("inference profiles: list, get by id, get by percent-encoded ARN, 404")
    func inferenceProfiles() async throws {
        try await Simulator.run { simulator in
            let (list, listBytes) = try await simulator.send("/inference-profiles?type=SYSTEM_DEFINED", method: .GET)
            #expect(list.status == .ok)
            let summaries = try #require(try JSONValue(parsing: String(buffer: listBytes))["inferenceProfileSummaries"]?.array)
            let ids = summaries.compactMap { $0["inferenceProfileId"]?.string }
            #expect(ids.contains("us.anthropic.claude-sonnet-4-5-20250929-v1:0"))
            #expect(ids.contains("eu.anthropic.claude-sonnet-4-5-20250929-v1:0"))
            #expect(ids.contains { $0.contains("haiku-4-5") } && ids.contains { $0.contains("opus") })
            for summary in summaries {
                #expect(summary["status"]?.string == "ACTIVE")
                #expect(summary["type"]?.string == "SYSTEM_DEFINED")
                #expect(summary["inferenceProfileArn"]?.string?.hasPrefix("arn:aws:bedrock:") == true)
                #expect(summary["models"]?[0]?["modelArn"]?.string?.contains(":foundation-model/anthropic.") == true)
            }

            let (one, oneBytes) = try await simulator.send("/inference-profiles/eu.anthropic.claude-sonnet-4-5-20250929-v1%3A0", method: .GET)
            #expect(one.status == .ok)
            let profile = try JSONValue(parsing: String(buffer: oneBytes))
            #expect(profile["inferenceProfileId"]?.string == "eu.anthropic.claude-sonnet-4-5-20250929-v1:0")

            // Claude Code's GetInferenceProfile for an application profile ARN (CLAUDE_CODE.md §2.2),
            // through a base URL with a trailing slash.
            let arn = "arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Aapplication-inference-profile%2Fabc123xyz"
            let (app, appBytes) = try await simulator.send("//inference-profiles/\(arn)", method: .GET)
            #expect(app.status == .ok)
            let appProfile = try JSONValue(parsing: String(buffer: appBytes))
            #expect(appProfile["type"]?.string == "APPLICATION")
            #expect(
                appProfile["models"]?[0]?["modelArn"]?.string
                    == "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"
            )

            let (missing, missingBytes) = try await simulator.send("/inference-profiles/us.meta.llama-9", method: .GET)
            #expect(missing.status == .notFound)
            #expect(missing.headers.first(name: "x-amzn-ErrorType")?.hasPrefix("ResourceNotFoundException:") == true)
            #expect(try JSONValue(parsing: String(buffer: missingBytes))["message"]?.string != nil)
        }
    }

    @Test(
        "model ids are percent-decoded from the one path segment",
        arguments: [
            ("us.anthropic.claude-sonnet-4-5-20250929-v1%3A0", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            (
                "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile%2Fabc123xyz",
                "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc123xyz"
            ),
            (
                "arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Aapplication-inference-profile%2Fabc123xyz",
                "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/abc123xyz"
            ),
        ]
    )
    func modelIDDecoding(encoded: String, decoded: String) async throws {
        try await Simulator.run { simulator in
            let (response, _) = try await simulator.send("/model/\(encoded)/invoke-with-response-stream", body: Bodies.anthropic("hi"))
            #expect(response.status == .ok)
            let entry = try #require(try await simulator.recorder.waitForEndings(count: 1).first)
            #expect(entry.modelID == decoded)
            #expect(entry.path == "/model/\(encoded)/invoke-with-response-stream")
            #expect(entry.operation == .invokeModelWithResponseStream)
        }
    }

    @Test("unknown models, non-Anthropic invokes, bad bodies and unknown routes get Bedrock errors")
    func routingErrors() async throws {
        try await Simulator.run { simulator in
            let cases: [(path: String, method: HTTPMethod, body: String?, status: HTTPResponseStatus, type: String)] = [
                ("/model/us.anthropic.does-not-exist-v1%3A0/converse", .POST, Bodies.converse("x"), .notFound, "ResourceNotFoundException"),
                ("/model/does-not-exist/invoke", .POST, Bodies.anthropic("x"), .notFound, "ResourceNotFoundException"),
                ("/model/amazon.nova-pro-v1%3A0/invoke", .POST, Bodies.anthropic("x"), .badRequest, "ValidationException"),
                ("/model/meta.llama3-70b-instruct-v1%3A0/invoke-with-response-stream", .POST, Bodies.anthropic("x"), .badRequest, "ValidationException"),
                ("/model/\(Self.sonnetEncoded)/converse", .POST, "not json", .badRequest, "ValidationException"),
                ("/model/\(Self.sonnetEncoded)/converse", .POST, "{}", .badRequest, "ValidationException"),
                ("/model/\(Self.sonnetEncoded)/explode", .POST, "{}", .notFound, "UnknownOperationException"),
                ("/v1/chat/completions", .POST, "{}", .notFound, "UnknownOperationException"),
            ]
            for item in cases {
                let (response, bytes) = try await simulator.send(item.path, method: item.method, body: item.body)
                #expect(response.status == item.status, "\(item.path)")
                #expect(
                    response.headers.first(name: "x-amzn-ErrorType")
                        == "\(item.type):http://internal.amazon.com/coral/com.amazon.bedrock/",
                    "\(item.path)"
                )
                #expect(try JSONValue(parsing: String(buffer: bytes))["message"]?.string?.isEmpty == false)
            }
            // Amazon and Meta models are fine on Converse.
            let (nova, _) = try await simulator.send("/model/amazon.nova-pro-v1%3A0/converse", body: Bodies.converse("x"))
            #expect(nova.status == .ok)
            let entries = try await simulator.recorder.waitForEndings(count: cases.count + 1)
            #expect(entries[0].ending == .error(status: 404))
            #expect(entries[2].ending == .error(status: 400))
        }
    }

    @Test("requiredBearerToken refuses missing and wrong tokens with 403")
    func bearerToken() async throws {
        try await Simulator.run(requiredBearerToken: "sekrit-token") { simulator in
            let path = "/model/\(Self.sonnetEncoded)/converse"
            let body = Bodies.converse("x")
            let (missing, _) = try await simulator.send(path, body: body)
            #expect(missing.status == .forbidden)
            #expect(missing.headers.first(name: "x-amzn-ErrorType")?.hasPrefix("AccessDeniedException:") == true)

            let (wrong, _) = try await simulator.send(path, body: body, headers: [("Authorization", "Bearer sekrit-tokem")])
            #expect(wrong.status == .forbidden)
            #expect(wrong.headers.first(name: "x-amzn-ErrorType")?.hasPrefix("UnrecognizedClientException:") == true)

            let (basic, _) = try await simulator.send(path, body: body, headers: [("Authorization", "Basic sekrit-token")])
            #expect(basic.status == .forbidden)

            let (right, _) = try await simulator.send(path, body: body, headers: [("Authorization", "Bearer sekrit-token")])
            #expect(right.status == .ok)

            let (profiles, _) = try await simulator.send("/inference-profiles", method: .GET)
            #expect(profiles.status == .forbidden)
        }
    }

    @Test("the recorder keeps headers as received and byte-identical bodies")
    func recorder() async throws {
        try await Simulator.run { simulator in
            // Non-ASCII and escapes, so a re-encoding would show.
            let body = Bodies.anthropic("Grüße \"x\" \\ ✓ 🚀\n")
            let (response, _) = try await simulator.send(
                "/model/\(Self.sonnet)/invoke",
                body: body,
                headers: [("X-Claude-Code-Session-Id", "abc-123"), ("anthropic-beta", "claude-code-20250219")]
            )
            #expect(response.status == .ok)
            let entry = try #require(try await simulator.recorder.waitForEndings(count: 1).first)
            #expect(entry.method == "POST")
            #expect(entry.operation == .invokeModel)
            #expect(entry.header("x-claude-code-session-id") == "abc-123")
            #expect(entry.headers.contains { $0.name == "X-Claude-Code-Session-Id" })
            #expect(entry.header("anthropic-beta") == "claude-code-20250219")
            #expect(entry.body == ByteBuffer(string: body))
            #expect(entry.ending == .completed)
        }
    }
}

extension ByteBuffer {
    /// Standard base64, written independently of the simulator's encoder.
    mutating func writeBase64ForTests(_ input: ByteBuffer) {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        let bytes = Array(input.readableBytesView)
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var value: UInt32 = 0
            for (offset, byte) in chunk.enumerated() { value |= UInt32(byte) << (16 - 8 * UInt32(offset)) }
            for position in 0..<4 {
                if position <= chunk.count {
                    self.writeInteger(alphabet[Int(value >> (18 - 6 * UInt32(position)) & 63)])
                } else {
                    self.writeInteger(UInt8(ascii: "="))
                }
            }
            index += 3
        }
    }
}
