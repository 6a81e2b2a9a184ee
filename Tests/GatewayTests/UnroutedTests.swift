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
}
