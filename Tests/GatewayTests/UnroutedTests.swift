import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// What no route takes, and `HEAD`, which every `GET` route takes.
struct UnroutedTests {
    @Test("a request no route takes gets a 404 in its API's shape naming the method and path (never the query); HEAD is answered as GET without a body")
    func unrouted() async throws {
        try await LiveStack.run { stack in
            let (status, headers, body) = try await stack.delete("/v1/chat/completions?key=secret")
            #expect(status == .notFound)
            #expect(headers.first(name: "x-request-id") != nil)
            let openAI = String(buffer: body)
            #expect(openAI.contains(#""message":"no route for DELETE /v1/chat/completions""#), "\(openAI)")
            #expect(openAI.contains(#""code":"not_found""#))
            #expect(!openAI.contains("secret"))

            let (anthropicStatus, _, anthropicBody) = try await stack.post("/v1/messages/nope", json: "{}")
            #expect(anthropicStatus == .notFound)
            #expect(String(buffer: anthropicBody).hasPrefix(#"{"type":"error","error":{"type":"not_found_error","message":"no route for POST /v1/messages/nope"#))

            var head = HTTPClientRequest(url: stack.gateway + "/v1/models")
            head.method = .HEAD
            stack.authorize(&head.headers, unless: [])
            let answer = try await stack.client.execute(head, timeout: .seconds(30))
            #expect(answer.status == .ok)
            #expect(answer.headers.first(name: "content-type") == "application/json")
            #expect(try await answer.body.collect(upTo: 1 << 20).readableBytes == 0)
        }
    }

    @Test("a base URL one step off (no /v1 for OpenAI, /v1 twice for Anthropic, no /bedrock for boto3) is told how to set it, in its client's shape")
    func baseURLHints() async throws {
        try await LiveStack.run { stack in
            let (status, _, body) = try await stack.post("/chat/completions", json: chatRequest("hi"))
            #expect(status == .notFound)
            #expect(String(buffer: body).contains("no route for POST /chat/completions: the OpenAI API is under /v1"), "\(String(buffer: body))")

            let (_, _, twice) = try await stack.post("/v1/v1/messages", json: "{}", headers: [("anthropic-version", "2023-06-01")])
            #expect(String(buffer: twice).hasPrefix(#"{"type":"error","error":{"type":"not_found_error","message":"no route for POST /v1/v1/messages: the base URL has /v1 once too often"#), "\(String(buffer: twice))")

            let (bedrockStatus, headers, bedrock) = try await stack.post("/model/anthropic.claude-3-haiku-20240307-v1:0/converse", json: "{}")
            #expect(bedrockStatus == .notFound)
            #expect(headers.first(name: "x-amzn-ErrorType") != nil)
            #expect(String(buffer: bedrock).contains("Bedrock's API is under /bedrock"), "\(String(buffer: bedrock))")
        }
    }
}
