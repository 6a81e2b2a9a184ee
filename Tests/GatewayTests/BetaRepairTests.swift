import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// `anthropic_beta` values a model does not take never reach Bedrock, and when Bedrock refuses one
/// the table took for good, the request is repaired and sent once more: the client never sees
/// `400 invalid beta flag`.
@Suite(.serialized)
struct BetaRepairTests {
    static let model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    static let metricsToken = "metrics-test-token-betas-012345"

    static func invokeBody(betas: [String]) -> String {
        let list = betas.map { "\"\($0)\"" }.joined(separator: ",")
        return #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"anthropic_beta":[\#(list)],"messages":[{"role":"user","content":"hi [[sim chunks=2]]"}],"metadata":{"user_id":"u-1"}}"#
    }

    @Test("/bedrock invoke: an unknown beta is removed; every other byte of the body is the client's")
    func unknownBetaRemoved() async throws {
        try await LiveStack.run(configure: { $0.metricsToken = Self.metricsToken }) { stack in
            let body = Self.invokeBody(betas: ["interleaved-thinking-2025-05-14", "no-such-beta-2099-01-01"])
            let (status, _, _) = try await stack.post("/bedrock/model/\(percentEncodePathSegment(Self.model))/invoke", json: body)
            #expect(status == .ok)
            let sent = try #require(try await stack.recorder.waitForRequests(count: 1).first)
            #expect(String(buffer: sent.body) == Self.invokeBody(betas: ["interleaved-thinking-2025-05-14"]))
            let (_, _, metrics) = try await stack.get("/metrics", headers: [("Authorization", "Bearer \(Self.metricsToken)")])
            #expect(MetricsTests.value(String(buffer: metrics), #"sluice_betas_dropped_total{beta="no-such-beta-2099-01-01"}"#) == 1)
        }
    }

    @Test("a model that refuses a beta the table took for good: one retry without it, remembered for the next request")
    func refusedBetaRetriedOnce() async throws {
        try await LiveStack.run(simulator: SimulatorConfiguration(acceptedBetas: ["*": []])) { stack in
            let path = "/bedrock/model/\(percentEncodePathSegment(Self.model))/invoke-with-response-stream"
            let (status, _, _) = try await stack.post(path, json: Self.invokeBody(betas: ["interleaved-thinking-2025-05-14"]))
            #expect(status == .ok)
            let first = try await stack.recorder.waitForRequests(count: 2)
            #expect(first.count == 2)
            #expect(String(buffer: first[0].body).contains("interleaved-thinking-2025-05-14"))
            #expect(!String(buffer: first[1].body).contains("anthropic_beta"))
            // The model's answer is remembered: the next request goes without it at once.
            let (again, _, _) = try await stack.post(path, json: Self.invokeBody(betas: ["interleaved-thinking-2025-05-14"]))
            #expect(again == .ok)
            let all = try await stack.recorder.waitForRequests(count: 3)
            #expect(all.count == 3)
            #expect(!String(buffer: all[2].body).contains("anthropic_beta"))
        }
    }

    @Test("/v1/messages: Claude Code's five betas against a model that takes only interleaved thinking")
    func claudeCodeBetasOnMessages() async throws {
        try await LiveStack.run(simulator: SimulatorConfiguration(acceptedBetas: ["*": ["interleaved-thinking-2025-05-14"]])) { stack in
            let body = #"{"model":"claude-sonnet-4-5-20250929","max_tokens":100,"stream":true,"context_management":{"edits":[]},"messages":[{"role":"user","content":"hi [[sim chunks=2]]"}]}"#
            let betas = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20"
            let (status, headers, stream) = try await stack.post(
                "/v1/messages?beta=true", json: body, headers: [("anthropic-beta", betas), ("anthropic-version", "2023-06-01")]
            )
            #expect(status == .ok)
            #expect(headers.first(name: "content-type") == "text/event-stream")
            #expect(String(buffer: stream).contains("event: message_stop"))
            // The table's known-good values for the model went first (the others never did), Bedrock
            // refused: one retry without what it refused, and without `context_management`, which
            // exists only under a refused beta.
            let recorded = try await stack.recorder.waitForRequests(count: 2)
            #expect(recorded.count == 2)
            let first = String(buffer: recorded[0].body)
            #expect(first.contains(#""anthropic_beta":["interleaved-thinking-2025-05-14","context-management-2025-06-27"]"#))
            #expect(!first.contains("claude-code-20250219") && !first.contains("advanced-tool-use") && !first.contains("thinking-token-count"))
            #expect(!first.contains(#""model""#) && !first.contains(#""stream""#))
            let retried = String(buffer: recorded[1].body)
            #expect(!retried.contains("anthropic_beta") && !retried.contains("context_management"))
        }
    }
}
