import AsyncHTTPClient
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// Every API shape rides one exchange pipeline and one stream pump, so a stream that breaks is
/// recorded the same way whatever the route: finish reason in the ledger row and the audit line, and
/// the upstream-error metric under our own code (never Bedrock's exception name as a label).
@Suite(.serialized)
struct ExchangeOutcomeTests {
    static let model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    static let metricsToken = "metrics-test-token-outcomes-0123"

    static func rows(_ stack: LiveStack, count: Int) async throws -> [UsageRecord] {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let rows = try await stack.store.usage(since: .distantPast)
            if rows.count >= count || ContinuousClock.now > deadline { return rows }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func metrics(_ stack: LiveStack) async throws -> String {
        let (status, _, body) = try await stack.get("/metrics", headers: [("Authorization", "Bearer \(Self.metricsToken)")])
        #expect(status == .ok)
        return String(buffer: body)
    }

    @Test(
        "an exception frame mid-stream is recorded on /bedrock as on the chat route: finish reason, audit line, metric",
        arguments: ["invoke-with-response-stream", "converse-stream", "chat"]
    )
    func exceptionFrameRecorded(route: String) async throws {
        try await LiveStack.run(configure: { $0.metricsToken = Self.metricsToken }) { stack in
            let directive = "[[sim chunks=6 exception_after=3 exception=throttlingException]]"
            let (status, _, body): (HTTPResponseStatus, HTTPHeaders, ByteBuffer)
            switch route {
            case "chat":
                (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("hi \(directive)"))
            case "converse-stream":
                let converse = #"{"messages":[{"role":"user","content":[{"text":"hi \#(directive)"}]}],"inferenceConfig":{"maxTokens":100}}"#
                (status, _, body) = try await stack.post("/bedrock/model/\(percentEncodePathSegment(Self.model))/converse-stream", json: converse)
            default:
                let invoke = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi \#(directive)"}]}"#
                (status, _, body) = try await stack.post("/bedrock/model/\(percentEncodePathSegment(Self.model))/\(route)", json: invoke)
            }
            #expect(status == .ok)
            if route == "chat" {
                #expect(String(buffer: body).contains("throttlingException"))
            } else {
                // The exception frame itself reaches the client, verified and unchanged.
                let frames = try decodeEventStream(body)
                #expect(frames.last?.headers.exceptionType.map { String(buffer: $0) } == "throttlingException")
            }
            let row = try #require(try await Self.rows(stack, count: 1).first)
            #expect(row.status == 200)
            #expect(row.finishReason == "upstream_throttled")
            #expect(stack.audit.all.contains { $0.contains(#""event":"response""#) && $0.contains(#""finish_reason":"upstream_throttled""#) })
            let text = try await Self.metrics(stack)
            #expect(MetricsTests.value(text, #"sluice_upstream_errors_total{kind="upstream_throttled"}"#) == 1)
            #expect(!text.contains("throttlingException"))
        }
    }

    @Test("an upstream error before the first byte: the client's shape, our code in the ledger and the metric label")
    func upstreamErrorLabels() async throws {
        try await LiveStack.run(configure: { $0.metricsToken = Self.metricsToken }) { stack in
            let invoke = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi [[sim status=429]]"}]}"#
            let (status, headers, _) = try await stack.post("/bedrock/model/\(percentEncodePathSegment(Self.model))/invoke", json: invoke)
            #expect(status == .tooManyRequests)
            #expect(headers.first(name: "x-amzn-errortype")?.hasPrefix("ThrottlingException") == true)
            let (chatStatus, _, chatBody) = try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim status=429]]"))
            #expect(chatStatus == .tooManyRequests)
            #expect(String(buffer: chatBody).contains(#""code":"rate_limit_exceeded""#))
            let rows = try await Self.rows(stack, count: 2)
            #expect(rows.count == 2)
            #expect(rows.allSatisfy { $0.finishReason == "upstream_throttled" && $0.status == 429 })
            let text = try await Self.metrics(stack)
            #expect(MetricsTests.value(text, #"sluice_upstream_errors_total{kind="upstream_throttled"}"#) == 2)
            #expect(!text.contains("ThrottlingException"))
        }
    }
}
