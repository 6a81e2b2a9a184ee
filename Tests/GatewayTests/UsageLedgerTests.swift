import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

@Suite(.serialized)
struct UsageLedgerTests {
    static let model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

    func waitForRows(_ stack: LiveStack, count: Int) async throws -> [UsageRecord] {
        let deadline = ContinuousClock.now + .seconds(5)
        while true {
            let rows = try await stack.store.usage(since: .distantPast)
            if rows.count >= count || ContinuousClock.now > deadline { return rows }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    @Test("a streamed chat leaves one ledger row and a request and a response audit line, with usage and no secret or content; identity goes upstream as requestMetadata")
    func streamedChat() async throws {
        try await LiveStack.run { stack in
            let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("Secret prompt text [[sim chunks=6]]", includeUsage: true))
            #expect(status == .ok)
            #expect(try StreamedChat(body).done)
            // The row is written before the response ends.
            let rows = try await stack.store.usage(since: .distantPast)
            let row = try #require(rows.first)
            #expect(rows.count == 1)
            #expect(row.identity == "test-admin")
            #expect(row.groups == ["admins"])
            #expect(stack.token.contains(row.tokenPrefix))
            #expect(row.route == "/v1/chat/completions")
            #expect(row.requestedModel == "claude-sonnet")
            #expect(row.resolvedModel == Self.model)
            #expect(row.status == 200)
            #expect(row.finishReason == "stop")
            #expect(row.usage.outputTokens == 6)
            #expect(row.usage.inputTokens > 0)
            #expect(row.firstByteMilliseconds != nil)
            #expect(row.durationMilliseconds >= (row.firstByteMilliseconds ?? 0))

            // One line when the request is admitted, one when its response ends, same request id.
            let requests = stack.audit.all.filter { $0.contains("\"event\":\"request\"") }
            let request = try #require(requests.first)
            #expect(requests.count == 1)
            #expect(request.contains(#""request.id":"\#(row.requestID)""#))
            #expect(request.contains(#""model.resolved":"\#(Self.model)""#))
            #expect(request.contains(#""messages":1"#))
            #expect(!request.contains(stack.token))
            let lines = stack.audit.all.filter { $0.contains("\"event\":\"response\"") }
            let line = try #require(lines.first)
            #expect(lines.count == 1)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["identity"] as? String == "test-admin")
            #expect(object["usage.output_tokens"] as? Int == 6)
            #expect(object["messages"] as? Int == 1)
            #expect(object["request.id"] as? String == row.requestID)
            #expect(!line.contains(stack.token))
            #expect(!line.contains("Secret prompt"))

            let upstream = try #require(try await stack.recorder.waitForRequests(count: 1).first)
            #expect(String(buffer: upstream.body).contains(#""requestMetadata":{"sluice-identity":"test-admin","sluice-group":"admins"}"#))
        }
    }

    @Test("a request's row is dated and timed from its head's arrival: a slow upload (1 s) is in its first byte and duration")
    func timedFromArrival() async throws {
        try await LiveStack.run { stack in
            let body = chatRequest("timed [[sim chunks=2]]")
            let connection = try RawConnection(port: stack.gatewayPort)
            let sent = Date()
            #expect(
                connection.send(
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(stack.token)\r\n"
                        + "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                )
            )
            try await Task.sleep(for: .seconds(1))
            #expect(connection.send(body))
            let (bytes, _) = await connection.receiveBytes(for: .seconds(10)) { String(decoding: $0, as: UTF8.self).contains("[DONE]") }
            #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("HTTP/1.1 200"))
            let row = try #require(try await self.waitForRows(stack, count: 1).first)
            // Counted from the admission, as before, both were a few milliseconds.
            #expect((row.firstByteMilliseconds ?? 0) >= 700, "first byte \(row.firstByteMilliseconds ?? -1) ms")
            // (No upper bound from the client's clock: it reads `[DONE]` before the row is recorded.)
            #expect(row.durationMilliseconds >= 700, "duration \(row.durationMilliseconds) ms")
            // (Under a loaded test run the head has been seen to wait ~0.25 s for the server: the bounds
            // leave room for that, and the start at the admission would still be ~1 s off.)
            #expect(abs(row.timestamp.timeIntervalSince(sent)) < 0.6, "row dated \(row.timestamp.timeIntervalSince(sent)) s after the head was sent")
        }
    }

    @Test("invoke-with-response-stream: usage from the stream, identity in X-Amzn-Bedrock-Request-Metadata (merged with the client's own, ours win)")
    func invokeStream() async throws {
        try await LiveStack.run { stack in
            let body = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi [[sim chunks=5]]"}]}"#
            let (status, _, _) = try await stack.post(
                "/bedrock/model/\(percentEncodePathSegment(Self.model))/invoke-with-response-stream", json: body,
                headers: [("Authorization", "Bearer \(stack.token)"), ("X-Amzn-Bedrock-Request-Metadata", #"{"sluice-identity":"someone-else","project":"apollo","n":1,"bad key!":"v\u00e9"}"#)]
            )
            #expect(status == .ok)
            let row = try #require(try await stack.store.usage(since: .distantPast).first)
            #expect(row.route == "/bedrock/model/invoke-with-response-stream")
            #expect(row.usage.outputTokens == 5)
            #expect(row.finishReason == "end_turn")
            let upstream = try #require(try await stack.recorder.waitForRequests(count: 1).first)
            #expect(
                upstream.header("x-amzn-bedrock-request-metadata")
                    == #"{"bad key_":"v_","project":"apollo","sluice-identity":"test-admin","sluice-group":"admins"}"#
            )
            #expect(upstream.body == ByteBuffer(string: body))
        }
    }

    @Test("upstream errors and client disconnects are in the ledger too")
    func errorsAndDisconnects() async throws {
        try await LiveStack.run { stack in
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim status=429]]")).0 == .tooManyRequests)
            var request = HTTPClientRequest(url: stack.gateway + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            stack.authorize(&request.headers, unless: [])
            request.body = .bytes(ByteBuffer(string: chatRequest("x [[sim chunks=400 gap_ms=20]]")))
            let response = try await stack.client.execute(request, timeout: .seconds(30))
            var received = 0
            for try await part in response.body {
                received += part.readableBytes
                if received > 600 { break }
            }
            let rows = try await self.waitForRows(stack, count: 2)
            #expect(rows.count == 2)
            #expect(rows.contains { $0.status == 429 && $0.finishReason == "upstream_throttled" })
            let cut = try #require(rows.first { $0.finishReason == "client_disconnected" })
            #expect(cut.status == 200)
            #expect(cut.firstByteMilliseconds != nil)
        }
    }

    @Test("non-streamed calls are metered: chat completion and invoke")
    func nonStreamed() async throws {
        try await LiveStack.run { stack in
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim chunks=3]]", stream: false)).0 == .ok)
            let body = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi [[sim chunks=4]]"}]}"#
            #expect(try await stack.post("/bedrock/model/\(percentEncodePathSegment(Self.model))/invoke", json: body).0 == .ok)
            let rows = try await stack.store.usage(since: .distantPast)
            #expect(rows.map(\.usage.outputTokens) == [3, 4])
            #expect(rows.allSatisfy { $0.usage.inputTokens > 0 })
        }
    }
}
