import AsyncHTTPClient
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

@Suite
struct MetricsTests {
    static let metricsToken = "metrics-test-token-0123456789"

    /// The value of the series `name{labels…}` in Prometheus text (labels given in the order the
    /// registry writes them), or nil when absent.
    static func value(_ text: String, _ series: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }

    @Test("GET /metrics after real traffic: requests by route/model/status, tokens, refusals, upstream and decoder errors, latency histograms")
    func scrapeAfterTraffic() async throws {
        try await LiveStack.run(configure: {
            $0.metricsToken = Self.metricsToken
            $0.policies = [
                AccessPolicy(source: .group("admins")),
                AccessPolicy(source: .identity("limited"), limits: .init(requestsPerMinute: 1)),
            ]
        }) { stack in
            let model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
            for _ in 0..<3 {
                #expect(try await stack.post("/v1/chat/completions", json: chatRequest("hi [[sim chunks=4]]", includeUsage: true)).0 == .ok)
            }
            // An upstream error status, a stream that breaks with a corrupt frame, a limit refusal.
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim status=500]]")).0 == .badGateway)
            _ = try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim chunks=5 corrupt_after=2]]"))
            let limited = try await stack.makeToken(identity: "limited", groups: [])
            let auth = [("Authorization", "Bearer \(limited)")]
            _ = try await stack.post("/v1/chat/completions", json: chatRequest("one [[sim chunks=1]]"), headers: auth)
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("two"), headers: auth).0 == .tooManyRequests)
            let invoke = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"messages":[{"role":"user","content":"hi [[sim chunks=3]]"}]}"#
            #expect(try await stack.post("/bedrock/model/\(percentEncodePathSegment(model))/invoke-with-response-stream", json: invoke).0 == .ok)

            // Without the metrics token: refused; the admin's API token is not a metrics token.
            #expect(try await stack.get("/metrics").0 == .unauthorized)
            let (status, headers, body) = try await stack.get("/metrics", headers: [("Authorization", "Bearer \(Self.metricsToken)")])
            #expect(status == .ok)
            #expect(headers.first(name: "content-type")?.hasPrefix("text/plain") == true)
            let text = String(buffer: body)
            #expect(Self.value(text, #"sluice_requests_total{route="/v1/chat/completions",model="\#(model)",status="200"}"#) == 5)
            #expect(Self.value(text, #"sluice_requests_total{route="/v1/chat/completions",model="\#(model)",status="502"}"#) == 1)
            #expect(Self.value(text, #"sluice_requests_total{route="/v1/chat/completions",model="\#(model)",status="429"}"#) == 1)
            #expect(Self.value(text, #"sluice_requests_total{route="/bedrock/model",model="\#(model)",status="200"}"#) == 1)
            // 3 × 4 + 3 (invoke) output tokens reported, plus the estimate for the stream cut by its
            // corrupt frame (two deltas received).
            let output = try #require(Self.value(text, #"sluice_tokens_total{kind="output",model="\#(model)",identity="test-admin"}"#))
            #expect(output > Double(3 * 4 + 3) && output < 40)
            #expect(Self.value(text, #"sluice_tokens_total{kind="output",model="\#(model)",identity="limited"}"#) == 1)
            #expect(Self.value(text, #"sluice_limit_refusals_total{limit="requests_per_minute"}"#) == 1)
            #expect(Self.value(text, #"sluice_upstream_errors_total{kind="upstream_error"}"#) == 1)
            #expect(Self.value(text, #"sluice_upstream_errors_total{kind="upstream_corrupt_stream"}"#) == 1)
            #expect(text.split(separator: "\n").contains { $0.hasPrefix("sluice_decoder_errors_total{kind=") && $0.hasSuffix(" 1") })
            #expect(Self.value(text, #"sluice_time_to_first_byte_seconds_count{route="/v1/chat/completions"}"#) ?? 0 >= 5)
            #expect(Self.value(text, #"sluice_chunk_processing_seconds_count{route="/v1/chat/completions"}"#) ?? 0 >= 5)
            #expect(Self.value(text, #"sluice_chunk_processing_seconds_count{route="/bedrock/model"}"#) ?? 0 >= 1)
            #expect(Self.value(text, "sluice_active_streams") == 0)
            #expect(!text.contains(stack.token))
        }
    }

    @Test("without metrics.token, /metrics does not exist")
    func noTokenNoRoute() async throws {
        try await LiveStack.run { stack in
            let (status, _, _) = try await stack.get("/metrics", headers: [("Authorization", "Bearer \(Self.metricsToken)")])
            #expect(status == .notFound)
        }
    }

    @Test("every response carries x-request-id: the client's when usable, else a fresh one; the audit lines use it")
    func requestIDs() async throws {
        try await LiveStack.run { stack in
            let (_, headers, _) = try await stack.post("/v1/chat/completions", json: chatRequest("hi [[sim chunks=1]]"), headers: [("x-request-id", "trace-42.a")])
            #expect(headers.first(name: "x-request-id") == "trace-42.a")
            #expect(stack.audit.all.contains { $0.contains(#""request.id":"trace-42.a""#) && $0.contains(#""event":"response""#) })
            let (_, fresh, _) = try await stack.post("/v1/chat/completions", json: chatRequest("hi [[sim chunks=1]]"), headers: [("x-request-id", "bad id; with spaces")])
            let id = try #require(fresh.first(name: "x-request-id"))
            #expect(id != "bad id; with spaces" && !id.isEmpty)
            let (status, refused, _) = try await stack.post("/v1/chat/completions", json: "{}", headers: [("Authorization", "Bearer sk-sluice-nope")])
            #expect(status == .unauthorized)
            #expect(refused.first(name: "x-request-id") != nil)
        }
    }

    @Test("concurrent streams beyond the per-identity maximum get a 429, beyond the gateway's maximum a 503")
    func concurrentStreamLimits() async throws {
        try await LiveStack.run(configure: {
            $0.server.maxConcurrentStreams = 3
            $0.server.maxConcurrentStreamsPerIdentity = 2
        }) { stack in
            // The open streams last 30 s: Swift Testing's parallel CPU-heavy suites can hold the
            // cooperative threads for ~20 s early in a run, and the refusals need these still open.
            var open: [HTTPClientResponse] = []
            for _ in 0..<2 {
                var request = HTTPClientRequest(url: stack.gateway + "/v1/chat/completions")
                request.method = .POST
                stack.authorize(&request.headers, unless: [])
                request.body = .bytes(ByteBuffer(string: chatRequest("slow [[sim chunks=20 gap_ms=1500]]")))
                open.append(try await stack.client.execute(request, timeout: .seconds(30)))
            }
            let third = try await stack.post("/v1/chat/completions", json: chatRequest("third [[sim chunks=1]]"))
            #expect(third.0 == .tooManyRequests)
            #expect(errorMessage(third.2)?.contains("concurrent-streams") == true)
            // Another identity still fits one more (3 in all), then the gateway is full.
            let other = try await stack.makeToken(identity: "other", groups: ["admins"])
            var request = HTTPClientRequest(url: stack.gateway + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer \(other)")
            request.body = .bytes(ByteBuffer(string: chatRequest("slow [[sim chunks=20 gap_ms=1500]]")))
            open.append(try await stack.client.execute(request, timeout: .seconds(30)))
            let full = try await stack.post("/v1/chat/completions", json: chatRequest("x"), headers: [("Authorization", "Bearer \(other)")])
            #expect(full.0 == .serviceUnavailable)
            // Non-streaming requests take no stream slot.
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("plain [[sim chunks=1]]", stream: false)).0 == .ok)
            for response in open { _ = try await response.body.collect(upTo: 1 << 20) }
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("after [[sim chunks=1]]")).0 == .ok)
        }
    }
}
