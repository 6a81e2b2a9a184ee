import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import Logging
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// `responses.store`: a kept response's conversation is continued by `previous_response_id`, for its
/// own identity only; without the store the field is refused, naming it.
@Suite(.serialized)
struct ResponseStoreTests {
    static func body(_ input: String, previous: String? = nil, stream: Bool, store: Bool? = nil) -> String {
        var fields = [#""model":"claude-sonnet""#, #""input":"\#(input)""#, #""stream":\#(stream)"#]
        if let previous { fields.append(#""previous_response_id":"\#(previous)""#) }
        if let store { fields.append(#""store":\#(store)"#) }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// The `id` of a whole response, or of the response a stream's `response.completed` carries.
    static func responseID(_ body: ByteBuffer, streamed: Bool) throws -> String {
        if streamed {
            let events = try sseObjects(body).compactMap { $0 as? [String: Any] }
            let completed = try #require(events.first { $0["type"] as? String == "response.completed" })
            return try #require((completed["response"] as? [String: Any])?["id"] as? String)
        }
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
        return try #require(object["id"] as? String)
    }

    /// The user and assistant texts of a Converse body, in order.
    static func turns(_ converse: ByteBuffer) throws -> [String] {
        let object = try #require(try JSONSerialization.jsonObject(with: Data(converse.readableBytesView)) as? [String: Any])
        let messages = try #require(object["messages"] as? [[String: Any]])
        return messages.map { message in
            let texts = (message["content"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
            return "\(message["role"] as? String ?? "?"): \(texts.joined(separator: " "))"
        }
    }

    @Test("streamed and whole: the second request continues the first, the third the second; Bedrock gets the whole conversation", arguments: [true, false])
    func chain(streamed: Bool) async throws {
        try await LiveStack.run(configure: { $0.responsesStore = true }) { stack in
            let (first, _, firstBody) = try await stack.post("/v1/responses", json: Self.body("one [[sim chunks=2]]", stream: streamed))
            #expect(first == .ok)
            let firstID = try Self.responseID(firstBody, streamed: streamed)
            // Sent at once: a streamed response is kept before its continuation is read.
            let (second, _, secondBody) = try await stack.post(
                "/v1/responses", json: Self.body("two [[sim chunks=2]]", previous: firstID, stream: streamed)
            )
            #expect(second == .ok, "\(String(buffer: secondBody))")
            let secondID = try Self.responseID(secondBody, streamed: streamed)
            let (third, _, thirdBody) = try await stack.post("/v1/responses", json: Self.body("three", previous: secondID, stream: streamed))
            #expect(third == .ok, "\(String(buffer: thirdBody))")

            let sent = try await stack.recorder.waitForRequests(count: 3)
            let turns = try Self.turns(sent[2].body)
            #expect(turns.count == 5)
            #expect(turns.first == "user: one [[sim chunks=2]]")
            #expect(turns[1].hasPrefix("assistant: ") && turns[1].count > "assistant: ".count)
            #expect(turns[2] == "user: two [[sim chunks=2]]")
            #expect(turns.last == "user: three")
        }
    }

    @Test("another identity's response, an unknown id and store:false are not found; a 404 in OpenAI's shape naming the field")
    func notFound() async throws {
        try await LiveStack.run(configure: { $0.responsesStore = true }) { stack in
            let (_, _, kept) = try await stack.post("/v1/responses", json: Self.body("mine [[sim chunks=1]]", stream: false))
            let keptID = try Self.responseID(kept, streamed: false)
            let (_, _, unkept) = try await stack.post("/v1/responses", json: Self.body("not kept [[sim chunks=1]]", stream: false, store: false))
            let unkeptID = try Self.responseID(unkept, streamed: false)
            let other = try await stack.makeToken(identity: "someone-else", groups: ["admins"])
            let attempts: [(String, [(String, String)])] = [
                (keptID, [("Authorization", "Bearer \(other)")]), ("resp_nosuchresponse", []), (unkeptID, []),
            ]
            for (id, headers) in attempts {
                let (status, _, body) = try await stack.post("/v1/responses", json: Self.body("next", previous: id, stream: false), headers: headers)
                #expect(status == .notFound)
                let error = try #require((try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])?["error"] as? [String: Any])
                #expect(error["param"] as? String == "previous_response_id")
                #expect((error["message"] as? String)?.contains(id) == true)
            }
        }
    }

    @Test("without the store previous_response_id is a 400 naming it")
    func stateless() async throws {
        try await LiveStack.run { stack in
            let (status, _, body) = try await stack.post("/v1/responses", json: Self.body("next", previous: "resp_x", stream: false))
            #expect(status == .badRequest)
            let error = try #require((try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])?["error"] as? [String: Any])
            #expect(error["param"] as? String == "previous_response_id")
        }
    }

    @Test("the store keeps a response for its identity until it expires")
    func storeExpiry() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await SQLiteStore.open(path: directory.path("responses.db"), logger: .init(label: "test"))
        let now = Date()
        let items = ByteBuffer(string: #"[{"type":"message","role":"user","content":"hi"}]"#)
        try await store.saveResponse(StoredResponse(id: "resp_a", identity: "jane", createdAt: now, expiresAt: now.addingTimeInterval(60), items: items))
        #expect(try await store.storedResponse(id: "resp_a", identity: "jane", at: now)?.items == items)
        #expect(try await store.storedResponse(id: "resp_a", identity: "joe", at: now) == nil)
        #expect(try await store.storedResponse(id: "resp_a", identity: "jane", at: now.addingTimeInterval(61)) == nil)
        // A later save forgets what has expired by then.
        try await store.saveResponse(
            StoredResponse(id: "resp_b", identity: "jane", createdAt: now.addingTimeInterval(120), expiresAt: now.addingTimeInterval(180), items: items)
        )
        #expect(try await store.storedResponse(id: "resp_a", identity: "jane", at: now) == nil)
        try await store.close()
    }
}
