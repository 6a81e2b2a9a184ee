import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// A Claude Code–shaped InvokeModel body (CLAUDE_CODE.md §3): ~90 KB, `thinking`, `cache_control`,
/// tools, `anthropic_beta`, a `role: "system"` message inside `messages`, no `model`/`stream`, and
/// fields the gateway has never heard of.
func claudeCodeBody(directive: String = "") -> String {
    let prompt = String(repeating: "You are Claude Code. Follow the rules: use \\\"tools\\\" carefully, paths like C:\\\\x, é ✓ 🚀.\\n", count: 900)
    let tools = (0..<12).map { index in
        #"{"name":"Tool\#(index)","description":"Does thing \#(index)","input_schema":{"type":"object","properties":{"path":{"type":"string"}}}\#(index == 11 ? #","defer_loading":true"# : "")}"#
    }.joined(separator: ",")
    return #"""
        {"messages":[{"role":"user","content":[{"type":"text","text":"<system-reminder>env</system-reminder>"},{"type":"text","text":"Say hello \#(directive)","cache_control":{"type":"ephemeral"}}]},{"role":"system","content":"environment moved here"}],"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.330.572;"},{"type":"text","text":"You are a Claude agent.","cache_control":{"type":"ephemeral"}},{"type":"text","text":"\#(prompt)","cache_control":{"type":"ephemeral"}}],"tools":[\#(tools)],"metadata":{"user_id":"{\"device_id\":\"abc\",\"session_id\":\"s-1\"}"},"max_tokens":32000,"thinking":{"type":"enabled","budget_tokens":31999},"output_config":{"effort":"medium"},"anthropic_beta":["interleaved-thinking-2025-05-14","tool-search-tool-2025-10-19"],"anthropic_version":"bedrock-2023-05-31"}
        """#
}

@Suite(.serialized)
struct BedrockRoutesTests {
    static let model = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"

    @Test("invoke-with-response-stream: a Claude Code body reaches the simulator byte-identical and streams back intact")
    func claudeCodeReplay() async throws {
        // Beta repair off: this test is about the bytes (the repair has its own tests, BetaRepairTests).
        try await LiveStack.run(configure: { $0.betasPassthrough = true }) { stack in
            let body = claudeCodeBody(directive: "[[sim reasoning=1 tools=1]]")
            #expect(body.utf8.count > 85_000)
            let (status, headers, stream) = try await stack.post(
                "/bedrock//model/\(Self.model)/invoke-with-response-stream", json: body,
                headers: [("anthropic-beta", "claude-code-20250219"), ("X-Claude-Code-Session-Id", "s-1")]
            )
            #expect(status == .ok)
            #expect(headers.first(name: "content-type") == "application/vnd.amazon.eventstream")
            let entry = try #require(try await stack.recorder.waitForRequests(count: 1).first)
            #expect(entry.body == ByteBuffer(string: body))
            #expect(entry.modelID == Self.model)
            #expect(entry.operation == .invokeModelWithResponseStream)
            let messages = try decodeEventStream(stream)
            // The relay forwards the original bytes: re-encoding what was decoded gives them back.
            var reencoded = ByteBuffer()
            for message in messages {
                try EventStreamEncoder.write(headers: message.headers, payload: message.payload, into: &reencoded)
            }
            #expect(reencoded == stream)
            var meter = InvokeStreamTranslator()
            for message in messages { #expect(meter.observe(message) == .event) }
            #expect(meter.isComplete)
            #expect(meter.stopReason == "tool_use")
        }
    }

    @Test("passthrough on all four runtime routes returns what the simulator returns", arguments: BedrockOperation.allCases)
    func passthrough(operation: BedrockOperation) async throws {
        try await LiveStack.run { stack in
            let body: String
            switch operation {
            case .converse, .converseStream:
                body = #"{"messages":[{"role":"user","content":[{"text":"hi [[sim chunks=5]]"}]}],"inferenceConfig":{"maxTokens":100}}"#
            case .invoke, .invokeWithResponseStream:
                body = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi [[sim chunks=5]]"}]}"#
            case .countTokens:
                body = #"{"input":{"invokeModel":{"body":"eyJtZXNzYWdlcyI6W119"}}}"#
            }
            let path = "/model/\(percentEncodePathSegment(Self.model))/\(operation.rawValue)"
            let viaGateway = try await stack.post("/bedrock" + path, json: body)
            let direct = try await stack.post(path, json: body, base: stack.simulator)
            #expect(viaGateway.0 == .ok)
            #expect(direct.0 == .ok)
            if operation.isStreaming {
                let relayed = try decodeEventStream(viaGateway.2)
                let original = try decodeEventStream(direct.2)
                #expect(relayed.count == original.count)
                // Same frames; only the timing fields of the last frames may differ between two runs.
                for (a, b) in zip(relayed, original).dropLast(2) {
                    #expect(a == b)
                }
            } else if operation == .countTokens {
                #expect(viaGateway.2 == direct.2)
            } else {
                let a = try JSONSerialization.jsonObject(with: Data(viaGateway.2.readableBytesView)) as? [String: Any]
                let b = try JSONSerialization.jsonObject(with: Data(direct.2.readableBytesView)) as? [String: Any]
                #expect(a?.keys.sorted() == b?.keys.sorted())
            }
            let entries = try await stack.recorder.waitForRequests(count: 2)
            #expect(entries[0].body == entries[1].body)
        }
    }

    @Test("a corrupt upstream frame is never forwarded: verified frames, then a modelStreamErrorException frame")
    func corruptFrameRelay() async throws {
        try await LiveStack.run { stack in
            let body = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi [[sim chunks=8 corrupt_after=4]]"}]}"#
            let (status, _, stream) = try await stack.post("/bedrock/model/\(Self.model)/invoke-with-response-stream", json: body)
            #expect(status == .ok)
            let messages = try decodeEventStream(stream)
            #expect(messages.count == 5)
            let last = try #require(messages.last)
            #expect(last.headers.messageType == .exception)
            #expect(last.headers.exceptionType == ByteBuffer(string: "modelStreamErrorException"))
            #expect(messages.dropLast().allSatisfy { $0.headers.isEvent("chunk") })
        }
    }

    @Test("an upstream HTTP error keeps Bedrock's shape")
    func upstreamErrorShape() async throws {
        try await LiveStack.run { stack in
            let body = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1,"messages":[{"role":"user","content":"[[sim status=429 retry_after=3]]"}]}"#
            let (status, headers, payload) = try await stack.post("/bedrock/model/\(Self.model)/invoke", json: body)
            #expect(status == .tooManyRequests)
            #expect(headers.first(name: "x-amzn-errortype")?.hasPrefix("ThrottlingException:") == true)
            #expect(headers.first(name: "retry-after") == "3")
            let object = try JSONSerialization.jsonObject(with: Data(payload.readableBytesView)) as? [String: Any]
            #expect((object?["message"] as? String)?.isEmpty == false)
        }
    }

    @Test("inference profiles are answered from the configured models")
    func inferenceProfiles() async throws {
        try await LiveStack.run { stack in
            let (status, _, body) = try await stack.get("/bedrock/inference-profiles?type=SYSTEM_DEFINED")
            #expect(status == .ok)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
            let summaries = object["inferenceProfileSummaries"] as? [[String: Any]] ?? []
            let ids = summaries.compactMap { $0["inferenceProfileId"] as? String }
            // Timestamps are RFC 3339 strings: the AWS SDK inside Claude Code rejects numbers there.
            #expect(summaries.allSatisfy { $0["createdAt"] is String && $0["updatedAt"] is String })
            #expect(ids.contains("us.anthropic.claude-sonnet-4-5-20250929-v1:0"))
            let one = try await stack.get("/bedrock/inference-profiles/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0")
            #expect(one.0 == .ok)
            #expect(String(buffer: one.2).contains("foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"))
            #expect(try await stack.get("/bedrock/inference-profiles/nope").0 == .notFound)
        }
    }
}
