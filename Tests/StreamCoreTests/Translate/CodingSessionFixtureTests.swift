import Foundation
import NIOCore
import StreamCore
import Testing

private typealias T = TranslateTestSupport

extension TranslateTests {
    struct CodingSessionFixtureTests {
        @Test("the default fixture is a realistic ~200 KB coding-agent request")
        func fixtureSize() throws {
            let body = CodingSessionFixture.makeRequestBody()
            // The size quoted in CodingSessionFixture's documentation; update both together.
            #expect(body.readableBytes == 209_802)
            let request = try T.object(body)
            #expect(request.objects("messages").count == 86)
            #expect(request.objects("tools").count == 6)
        }

        @Test("round trip: 86 OpenAI messages become 81 alternating Converse turns with every byte of content intact")
        func roundTrip() throws {
            let fixture = CodingSessionFixture.makeRequestBody()
            let request = try ChatRequestMapper().map(fixture)
            #expect(request.isStreaming)
            #expect(request.includesUsage)
            #expect(request.user == "dev@example.com")

            let input = try T.object(fixture).objects("messages")
            let body = try T.object(request.body)
            let turns = body.objects("messages")
            #expect(turns.count == 81)
            for (index, turn) in turns.enumerated() {
                #expect(turn["role"] as? String == (index.isMultiple(of: 2) ? "user" : "assistant"), "turn \(index)")
            }

            // Each assistant turn's toolUse is answered by the next user turn's first toolResult.
            var sentResults: [String] = []
            for index in stride(from: 1, to: turns.count, by: 2) {
                let use = try #require(turns[index].objects("content").compactMap { $0.object("toolUse") }.first)
                let result = try #require(turns[index + 1].objects("content").first?.object("toolResult"))
                #expect(use["toolUseId"] as? String == result["toolUseId"] as? String)
                #expect(use.object("input")?["path"] is String)
                sentResults.append(try #require(result.objects("content").first?["text"] as? String))
            }
            let originalResults = input.filter { $0["role"] as? String == "tool" }.compactMap { $0["content"] as? String }
            #expect(sentResults.count == CodingSessionFixture.defaultRounds)
            #expect(sentResults == originalResults)  // quotes, backslashes, tabs, é → 🚀 all survive

            let system = body.objects("system")
            #expect(system.count == 2)
            #expect(system.last?["cachePoint"] != nil)
            #expect(body.object("toolConfig")?.objects("tools").count == 6)
            #expect(try T.isSame(body.object("toolConfig")?["toolChoice"], #"{"auto":{}}"#))
            #expect(try T.isSame(body["inferenceConfig"], #"{"maxTokens":8192,"temperature":0}"#))
            #expect(!String(buffer: request.body).contains("dev@example.com"))
            // The Converse body (209,645 bytes) is a little smaller: the per-message wrappers are gone.
            #expect(request.body.readableBytes > 190_000 && request.body.readableBytes < fixture.readableBytes)
        }
    }
}
