import BedrockSimulator
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import Testing

/// Requests the gateway refuses itself, before any upstream call, in the client's own shape.
struct RefusedBeforeCallTests {
    @Test("a model id no Bedrock id can be (100 KB, a space, '..') is refused in the client's shape before any call, and is not written whole to the ledger")
    func impossibleModelIDs() async throws {
        try await LiveStack.run { stack in
            let long = String(repeating: "x", count: 100_000)
            let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("hi", model: long))
            let text = String(buffer: body)
            #expect(status == .badRequest)
            #expect(text.contains(#""param":"model""#) && text.contains("2,048"), "\(text.prefix(300))")
            #expect(text.utf8.count < 400, "the answer echoes the id whole: \(text.utf8.count) bytes")

            let anthropic = #"{"model":"..","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#
            let (messagesStatus, _, messagesBody) = try await stack.post("/v1/messages", json: anthropic, headers: [("anthropic-version", "2023-06-01")])
            #expect(messagesStatus == .badRequest)
            #expect(String(buffer: messagesBody).hasPrefix(#"{"type":"error","error":{"type":"invalid_request_error""#), "\(String(buffer: messagesBody))")

            let (bedrockStatus, bedrockHeaders, bedrockBody) = try await stack.post(
                "/bedrock/model/anthropic.claude%20v2/converse", json: #"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#
            )
            #expect(bedrockStatus == .badRequest)
            #expect(bedrockHeaders.first(name: "x-amzn-ErrorType")?.hasPrefix("ValidationException") == true)
            #expect(String(buffer: bedrockBody).contains("space"), "\(String(buffer: bedrockBody))")

            #expect(stack.recorder.entries.isEmpty, "\(stack.recorder.entries.count) calls reached the simulator")
            let rows = try await stack.store.usage(since: .distantPast)
            #expect(rows.map(\.status) == [400, 400, 400])
            #expect(rows.allSatisfy { $0.requestedModel.utf8.count < 100 })
        }
    }

    @Test("a compressed request body gets a 415 naming the encoding, with Accept-Encoding: identity, in the client's shape; 'identity' is taken")
    func compressedBody() async throws {
        try await LiveStack.run { stack in
            let (status, headers, body) = try await stack.post("/v1/chat/completions", json: chatRequest("hi"), headers: [("content-encoding", "gzip")])
            #expect(status == .unsupportedMediaType)
            #expect(headers.first(name: "accept-encoding") == "identity")
            #expect(String(buffer: body).contains(#""code":"unsupported_content_encoding""#), "\(String(buffer: body))")

            let (bedrockStatus, bedrockHeaders, _) = try await stack.post(
                "/bedrock/model/anthropic.claude-3-haiku-20240307-v1:0/converse", json: "{}", headers: [("content-encoding", "br")]
            )
            #expect(bedrockStatus == .unsupportedMediaType)
            #expect(bedrockHeaders.first(name: "x-amzn-ErrorType")?.hasPrefix("ValidationException") == true)
            #expect(stack.recorder.entries.isEmpty)

            let (identityStatus, _, _) = try await stack.post("/v1/chat/completions", json: chatRequest("hi", stream: false), headers: [("content-encoding", "identity")])
            #expect(identityStatus == .ok)
            #expect(try await stack.store.usage(since: .distantPast).map(\.status).sorted() == [200, 415, 415])
        }
    }
}
