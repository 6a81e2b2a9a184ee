import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// Reassembled pieces of a streamed chat completion.
struct StreamedChat {
    var role: String?
    var content = ""
    var reasoning = ""
    var toolCalls: [Int: (id: String, name: String, arguments: String)] = [:]
    var finishReason: String?
    var usage: [String: Any]?
    var error: [String: Any]?
    var done = false

    init(_ body: ByteBuffer) throws {
        for event in try sseObjects(body) {
            if let text = event as? String, text == "[DONE]" {
                self.done = true
                continue
            }
            let object = try #require(event as? [String: Any])
            if let error = object["error"] as? [String: Any] {
                self.error = error
                continue
            }
            #expect((object["id"] as? String)?.hasPrefix("chatcmpl-") == true)
            #expect(object["object"] as? String == "chat.completion.chunk")
            if let usage = object["usage"] as? [String: Any] { self.usage = usage }
            let choices = try #require(object["choices"] as? [[String: Any]])
            guard let choice = choices.first else { continue }
            if let reason = choice["finish_reason"] as? String { self.finishReason = reason }
            let delta = try #require(choice["delta"] as? [String: Any])
            if let role = delta["role"] as? String { self.role = role }
            self.content += delta["content"] as? String ?? ""
            self.reasoning += delta["reasoning_content"] as? String ?? ""
            for call in delta["tool_calls"] as? [[String: Any]] ?? [] {
                let index = try #require(call["index"] as? Int)
                let function = call["function"] as? [String: Any]
                var entry = self.toolCalls[index] ?? ("", "", "")
                if let id = call["id"] as? String { entry.id = id }
                if let name = function?["name"] as? String { entry.name = name }
                entry.arguments += function?["arguments"] as? String ?? ""
                self.toolCalls[index] = entry
            }
        }
    }
}

@Suite(.serialized)
struct ChatCompletionsTests {
    @Test("response ids: 24 characters of the 62-letter alphabet, every letter used, none repeated")
    func responseIDs() {
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        let ids = (0..<2000).map { _ in randomID() }
        #expect(ids.allSatisfy { $0.count == 24 && $0.allSatisfy(alphabet.contains) })
        #expect(Set(ids).count == ids.count)
        // 48,000 characters: each letter expected ~774 times, at every position ~32 times.
        #expect(Set(ids.joined()) == alphabet)
        for position in [0, 4, 5, 19, 20, 23] {
            #expect(Set(ids.map { Array($0)[position] }) == alphabet, "position \(position)")
        }
    }

    @Test("a streamed chat arrives as OpenAI chunks ending in [DONE], usage included when asked")
    func streamedChat() async throws {
        try await LiveStack.run { stack in
            let (status, headers, body) = try await stack.post("/v1/chat/completions", json: chatRequest("Hello [[sim chunks=6]]", includeUsage: true))
            #expect(status == .ok)
            #expect(headers.first(name: "content-type") == "text/event-stream")
            let chat = try StreamedChat(body)
            #expect(chat.role == "assistant")
            #expect(!chat.content.isEmpty)
            #expect(chat.finishReason == "stop")
            #expect(chat.done)
            #expect(chat.error == nil)
            let usage = try #require(chat.usage)
            // The simulator reports one output token per delta (6 text deltas).
            #expect(usage["completion_tokens"] as? Int == 6)
            let prompt = try #require(usage["prompt_tokens"] as? Int)
            #expect(prompt > 0)
            #expect(usage["total_tokens"] as? Int == prompt + 6)
            let seen = try await stack.recorder.waitForRequests(count: 1)
            #expect(seen.first?.operation == .converseStream)
            #expect(seen.first?.modelID == "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        }
    }

    @Test("a non-streamed chat is one chat.completion")
    func nonStreamedChat() async throws {
        try await LiveStack.run { stack in
            let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("Hi [[sim chunks=3]]", stream: false))
            #expect(status == .ok)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
            #expect(object["object"] as? String == "chat.completion")
            #expect(object["model"] as? String == "claude-sonnet")
            let choice = try #require((object["choices"] as? [[String: Any]])?.first)
            #expect(choice["finish_reason"] as? String == "stop")
            let message = try #require(choice["message"] as? [String: Any])
            #expect((message["content"] as? String)?.isEmpty == false)
            #expect((object["usage"] as? [String: Any])?["completion_tokens"] as? Int == 3)
            #expect(try await stack.recorder.waitForRequests(count: 1).first?.operation == .converse)
        }
    }

    @Test("two tool calls stream with dense indexes and arguments that parse")
    func toolCalls() async throws {
        try await LiveStack.run { stack in
            let tools = #","tools":[{"type":"function","function":{"name":"read_file","parameters":{"type":"object"}}},{"type":"function","function":{"name":"grep","parameters":{"type":"object"}}}]"#
            let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("Look [[sim tools=2 chunks=2]]", extra: tools))
            #expect(status == .ok)
            let chat = try StreamedChat(body)
            #expect(chat.finishReason == "tool_calls")
            #expect(chat.toolCalls.keys.sorted() == [0, 1])
            #expect(chat.toolCalls[0]?.name == "read_file")
            #expect(chat.toolCalls[1]?.name == "grep")
            for call in chat.toolCalls.values {
                #expect(!call.id.isEmpty)
                let arguments = try JSONSerialization.jsonObject(with: Data(call.arguments.utf8)) as? [String: Any]
                #expect(arguments?["location"] as? String == #"Zürich, "CH""#)
            }
        }
    }

    @Test("reasoning arrives as reasoning_content, never in content")
    func reasoning() async throws {
        try await LiveStack.run { stack in
            let (_, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("Think [[sim reasoning=1 chunks=2]]"))
            let chat = try StreamedChat(body)
            #expect(!chat.reasoning.isEmpty)
            #expect(!chat.content.contains(chat.reasoning))
            #expect(chat.done)
        }
    }

    @Test("upstream error statuses become OpenAI errors with the right status", arguments: [
        (400, 400, "invalid_request_error"), (403, 502, "api_error"), (404, 404, "invalid_request_error"),
        (408, 504, "api_error"), (424, 502, "api_error"), (429, 429, "rate_limit_error"), (500, 502, "api_error"),
        (503, 503, "api_error"),
    ])
    func upstreamErrors(upstreamStatus: Int, expected: Int, type: String) async throws {
        try await LiveStack.run { stack in
            let (status, headers, body) = try await stack.post(
                "/v1/chat/completions", json: chatRequest("x [[sim status=\(upstreamStatus) retry_after=3]]")
            )
            #expect(Int(status.code) == expected)
            let error = try #require((try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])?["error"] as? [String: Any])
            #expect(error["type"] as? String == type)
            #expect((error["message"] as? String)?.isEmpty == false)
            if upstreamStatus == 429 { #expect(headers.first(name: "retry-after") == "3") }
        }
    }

    @Test("an in-stream exception becomes an error event and the stream ends without [DONE]")
    func inStreamException() async throws {
        try await LiveStack.run { stack in
            let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim chunks=10 exception_after=4 exception=throttlingException]]"))
            #expect(status == .ok)
            let chat = try StreamedChat(body)
            #expect(chat.error?["code"] as? String == "throttlingException")
            #expect(!chat.done)
            #expect(!chat.content.isEmpty)
        }
    }

    @Test("a corrupt upstream frame ends the stream with an error event; its bytes never reach the client")
    func corruptFrame() async throws {
        try await LiveStack.run { stack in
            let (_, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim chunks=10 corrupt_after=4]]"))
            let chat = try StreamedChat(body)
            #expect(chat.error?["code"] as? String == "upstream_corrupt_stream")
            #expect(!chat.done)
            // Frames 1–3 are text deltas (frame 0 is messageStart); the corrupt 5th frame's text is not there.
            let direct = try await stack.post("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream", json: #"{"messages":[{"role":"user","content":[{"text":"x [[sim chunks=10]]"}]}]}"#, base: stack.simulator)
            #expect(direct.0 == .ok)
        }
    }

    @Test("a dropped upstream connection ends the stream with an error event")
    func droppedConnection() async throws {
        try await LiveStack.run { stack in
            let (_, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim chunks=10 drop_after=3]]"))
            let chat = try StreamedChat(body)
            #expect(chat.error?["code"] as? String == "upstream_disconnected")
            #expect(!chat.done)
        }
    }

    @Test("a slow first byte hits the first-byte time limit: 504")
    func firstByteTimeout() async throws {
        try await LiveStack.run(configure: { $0.timeouts.firstByte = .milliseconds(300) }) { stack in
            let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim first_byte_ms=3000]]"))
            #expect(status == .gatewayTimeout)
            #expect(String(buffer: body).contains("upstream_first_byte_timeout"))
        }
    }

    @Test("a stalled stream hits the idle time limit and ends with an error event")
    func idleTimeout() async throws {
        try await LiveStack.run(configure: { $0.timeouts.idle = .milliseconds(300) }) { stack in
            let (_, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim chunks=3 gap_ms=2000]]"))
            let chat = try StreamedChat(body)
            #expect(chat.error?["code"] as? String == "upstream_idle_timeout")
        }
    }

    @Test("a client that disconnects mid-stream cancels the upstream request")
    func clientDisconnect() async throws {
        try await LiveStack.run { stack in
            var request = HTTPClientRequest(url: stack.gateway + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            stack.authorize(&request.headers, unless: [])
            request.body = .bytes(ByteBuffer(string: chatRequest("x [[sim chunks=400 gap_ms=20]]")))
            let task = Task {
                let response = try await stack.client.execute(request, timeout: .seconds(30))
                var received = 0
                for try await part in response.body {
                    received += part.readableBytes
                    if received > 600 { break }  // leaving the loop drops the body: the connection closes
                }
                return received
            }
            _ = try await task.value
            // How long after the client left the simulator saw its request end (a 20 ms gap between
            // frames bounds how soon either side can notice; DESIGN.md asks for 100 ms).
            let left = ContinuousClock.now
            while stack.recorder.entries.first?.ending == nil, ContinuousClock.now - left < .seconds(5) {
                try await Task.sleep(for: .milliseconds(2))
            }
            let cancelledAfter = ContinuousClock.now - left
            print("upstream request ended \(cancelledAfter) after the client disconnected")
            let entries = try await stack.recorder.waitForEndings(count: 1, timeout: .seconds(5))
            #expect(entries.first?.ending == .cancelledByClient)
            #expect(cancelledAfter < .seconds(2))
            // 400 frames at 20 ms would take 8 s; the simulator stopped long before.
            #expect((entries.first?.framesWritten ?? 0) < 200)
        }
    }

    @Test("malformed JSON and unsupported parameters are 400s in OpenAI's shape")
    func badRequests() async throws {
        try await LiveStack.run { stack in
            let (status, _, body) = try await stack.post("/v1/chat/completions", json: "{not json")
            #expect(status == .badRequest)
            #expect(String(buffer: body).contains("\"type\":\"invalid_request_error\""))
            let (status2, _, body2) = try await stack.post("/v1/chat/completions", json: chatRequest("x", extra: #","n":3"#))
            #expect(status2 == .badRequest)
            #expect(String(buffer: body2).contains("\"param\":\"n\""))
            #expect(stack.recorder.entries.isEmpty)
            // Refused requests are in the ledger like any other.
            #expect(try await stack.store.usage(since: .distantPast).map(\.status) == [400, 400])
        }
    }

    @Test("GET /v1/models lists aliases and model ids")
    func models() async throws {
        try await LiveStack.run { stack in
            let (status, _, body) = try await stack.get("/v1/models")
            #expect(status == .ok)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
            let ids = (object["data"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            #expect(ids.contains("claude-sonnet"))
            #expect(ids.contains("us.anthropic.claude-sonnet-4-5-20250929-v1:0"))
        }
    }

    @Test("GET /v1/models/{id} answers one listed model in the client's shape, and a 404 for one not listed for the caller")
    func retrieveModel() async throws {
        try await LiveStack.run { stack in
            let (status, _, body) = try await stack.get("/v1/models/claude-sonnet")
            #expect(status == .ok)
            #expect(String(buffer: body) == #"{"id":"claude-sonnet","object":"model","created":0,"owned_by":"sluice"}"#)
            // Bedrock ids come with their `:` escaped, as SDKs send a path segment.
            let (escaped, _, escapedBody) = try await stack.get("/v1/models/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0")
            #expect(escaped == .ok)
            #expect(String(buffer: escapedBody).contains(#""id":"us.anthropic.claude-sonnet-4-5-20250929-v1:0""#))
            let (unknown, _, unknownBody) = try await stack.get("/v1/models/gpt-9")
            #expect(unknown == .notFound)
            #expect(String(buffer: unknownBody).contains(#""code":"model_not_found""#), "\(String(buffer: unknownBody))")

            let anthropic = [("anthropic-version", "2023-06-01")]
            let (byAlias, _, aliasBody) = try await stack.get("/v1/models/claude-haiku-4-5", headers: anthropic)
            #expect(byAlias == .ok)
            #expect(String(buffer: aliasBody).hasPrefix(#"{"type":"model","id":"claude-haiku-4-5-20251001","display_name":"#), "\(String(buffer: aliasBody))")
            let (missing, _, missingBody) = try await stack.get("/v1/models/claude-9", headers: anthropic)
            #expect(missing == .notFound)
            #expect(String(buffer: missingBody).hasPrefix(#"{"type":"error","error":{"type":"not_found_error""#))

            // A caller no policy lets use the model gets the same 404 as for an unknown one.
            let outsider = try await stack.makeToken(identity: "eve", groups: ["nobody"])
            let (denied, _, _) = try await stack.get("/v1/models/claude-sonnet", headers: [("Authorization", "Bearer \(outsider)")])
            #expect(denied == .notFound)
            let (refused, _, _) = try await stack.get("/v1/models/claude-sonnet", headers: [("Authorization", "Bearer sk-sluice-forged")])
            #expect(refused == .unauthorized)
        }
    }

    @Test("the upstream sees the configured key and never the client's token")
    func upstreamKey() async throws {
        try await LiveStack.run(simulator: .init(requiredBearerToken: "upstream-key-123"), authentication: .apiKey("upstream-key-123")) { stack in
            // The client's credential is its Sluice token, in both places a client may send it.
            let (status, _, body) = try await stack.post(
                "/v1/chat/completions", json: chatRequest("hi"), headers: [("Authorization", "Bearer \(stack.token)"), ("x-api-key", stack.token)]
            )
            #expect(status == .ok)
            #expect(!String(buffer: body).contains("upstream-key-123"))
            let entry = try #require(try await stack.recorder.waitForRequests(count: 1).first)
            #expect(entry.header("authorization") == "Bearer upstream-key-123")
            #expect(!entry.headers.contains { $0.value.contains(stack.token) })
            #expect(String(buffer: entry.body).contains(stack.token) == false)
        }
    }
}
