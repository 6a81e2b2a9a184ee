import BedrockSimulator
import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import StreamCore
import Testing

/// `StreamRelay` (the routes' stream loops without sockets, which the in-process benchmark drives) over
/// `SimulatedStream` (the simulator's frames without a server): what the benchmark measures must be
/// the real translation of the real bytes, however the bytes are split into reads.
struct StreamRelayTests {
    static let converseBody = ByteBuffer(string: #"{"messages":[{"role":"user","content":[{"text":"Write the parser."}]}]}"#)
    static let logger: Logger = {
        var logger = Logger(label: "relay-test")
        logger.logLevel = .critical
        return logger
    }()

    @Test("OpenAI relay of simulated frames: the text of every delta, usage, [DONE]; the same bytes for any split into reads")
    func chatCompletions() async throws {
        let frames = try SimulatedStream.frames(.converseStream, body: Self.converseBody, scenario: Scenario(parsing: "chunks=50 chunk_size=7"))
        let expected = try Self.textDeltas(in: frames)
        #expect(expected.count == 50)

        var outputs: [[UInt8]] = []
        for reads in [frames, Self.resplit(frames, every: 1), Self.resplit(frames, every: 97), [Self.joined(frames)]] {
            let log = WriteLog()
            var writer: any ResponseBodyWriter = LoggingWriter(log: log)
            let ending = try await StreamRelay.chatCompletions(
                upstream: Reads(reads: reads), options: .init(id: "chatcmpl-test", created: 1, model: "m", includeUsage: true),
                metrics: GatewayMetrics(), writer: &writer, logger: Self.logger
            )
            #expect(ending.finishReason == "stop")
            #expect(ending.usage?.outputTokens == 50)
            #expect(log.finished)
            outputs.append(log.bytes)
        }
        #expect(outputs.dropFirst().allSatisfy { $0 == outputs[0] })

        var parser = SSEParser()
        parser.feed(ByteBuffer(bytes: outputs[0]))
        var content = ""
        var sawUsage = false
        var last = ""
        while let event = try parser.next() {
            last = event.data
            guard event.data != "[DONE]" else { continue }
            let chunk = try #require(try JSONSerialization.jsonObject(with: Data(event.data.utf8)) as? [String: Any])
            if let usage = chunk["usage"] as? [String: Any] {
                sawUsage = usage["completion_tokens"] as? Int == 50
            }
            let choices = chunk["choices"] as? [[String: Any]] ?? []
            content += choices.compactMap { ($0["delta"] as? [String: Any])?["content"] as? String }.joined()
        }
        #expect(content == expected.joined())
        #expect(sawUsage)
        #expect(last == "[DONE]")
    }

    @Test("/bedrock relay of simulated frames forwards every byte unchanged and meters the usage")
    func bedrockPassthrough() async throws {
        let frames = try SimulatedStream.frames(.converseStream, body: Self.converseBody, scenario: Scenario(parsing: "chunks=30 tools=1"))
        let log = WriteLog()
        var writer: any ResponseBodyWriter = LoggingWriter(log: log)
        let ending = try await StreamRelay.bedrock(
            upstream: Reads(reads: Self.resplit(frames, every: 13)), operation: .converseStream, metrics: GatewayMetrics(), writer: &writer,
            logger: Self.logger
        )
        #expect(log.bytes == Self.joined(frames).readableBytesView.map { $0 })
        #expect(ending.finishReason == "tool_use")
        // 30 text deltas and the tool input's 4 pieces.
        #expect(ending.usage?.outputTokens == 34)
    }

    @Test("invoke-with-response-stream frames of an Anthropic model relay unchanged, with the usage of message_delta")
    func invokePassthrough() async throws {
        let body = ByteBuffer(string: #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#)
        let frames = try SimulatedStream.frames(
            .invokeWithResponseStream(modelID: "us.anthropic.claude-sonnet-4-5-20250929-v1:0"), body: body, scenario: Scenario(parsing: "chunks=12")
        )
        let log = WriteLog()
        var writer: any ResponseBodyWriter = LoggingWriter(log: log)
        let ending = try await StreamRelay.bedrock(
            upstream: Reads(reads: frames), operation: .invokeWithResponseStream, metrics: GatewayMetrics(), writer: &writer, logger: Self.logger
        )
        #expect(log.bytes == Self.joined(frames).readableBytesView.map { $0 })
        #expect(ending.finishReason == "end_turn")
        #expect(ending.usage?.outputTokens == 12)
    }

    @Test("a corrupt frame mid-stream ends the OpenAI relay with an error event, after the good chunks")
    func corruptFrame() async throws {
        var frames = try SimulatedStream.frames(.converseStream, body: Self.converseBody, scenario: Scenario(parsing: "chunks=10"))
        let index = 5
        let last = frames[index].writerIndex - 1
        frames[index].setInteger(try #require(frames[index].getInteger(at: last, as: UInt8.self)) ^ 1, at: last)
        let log = WriteLog()
        var writer: any ResponseBodyWriter = LoggingWriter(log: log)
        let ending = try await StreamRelay.chatCompletions(
            upstream: Reads(reads: frames), options: .init(id: "chatcmpl-test", created: 1, model: "m"), metrics: GatewayMetrics(),
            writer: &writer, logger: Self.logger
        )
        #expect(ending.finishReason == "upstream_corrupt_stream")
        let text = String(decoding: log.bytes, as: UTF8.self)
        #expect(text.contains(#""code":"upstream_corrupt_stream""#))
        #expect(!text.contains("[DONE]"))
        // Frame 0 (messageStart) became the role chunk, whose content is ""; frames 1–4 were text deltas.
        #expect(text.components(separatedBy: #""content":""#).count - 1 == 5)
    }

    @Test("the simulator refuses to render a body it would refuse over HTTP")
    func refusedBody() {
        #expect(throws: ScenarioError.self) {
            _ = try SimulatedStream.frames(.converseStream, body: ByteBuffer(string: "{}"), scenario: Scenario())
        }
        #expect(throws: ScenarioError.self) {
            _ = try SimulatedStream.frames(.converseStream, body: ByteBuffer(string: "not json"), scenario: Scenario())
        }
    }

    /// The text of every `contentBlockDelta` text delta, decoded independently with Foundation.
    static func textDeltas(in frames: [ByteBuffer]) throws -> [String] {
        var decoder = EventStreamDecoder()
        var texts: [String] = []
        for frame in frames {
            try decoder.feed(frame)
            while let message = try decoder.next() {
                guard message.headers.isEvent("contentBlockDelta") else { continue }
                let payload = try JSONSerialization.jsonObject(with: Data(message.payload.readableBytesView)) as? [String: Any]
                if let text = (payload?["delta"] as? [String: Any])?["text"] as? String { texts.append(text) }
            }
        }
        return texts
    }

    static func joined(_ frames: [ByteBuffer]) -> ByteBuffer {
        var all = ByteBuffer()
        for frame in frames { all.writeImmutableBuffer(frame) }
        return all
    }

    /// The same bytes cut into reads of `size` bytes.
    static func resplit(_ frames: [ByteBuffer], every size: Int) -> [ByteBuffer] {
        var all = Self.joined(frames)
        var reads: [ByteBuffer] = []
        while all.readableBytes > 0, let read = all.readSlice(length: min(size, all.readableBytes)) {
            reads.append(read)
        }
        return reads
    }
}

private struct Reads: AsyncSequence {
    typealias Element = ByteBuffer
    typealias Failure = any Error
    let reads: [ByteBuffer]

    struct AsyncIterator: AsyncIteratorProtocol {
        var reads: ArraySlice<ByteBuffer>
        mutating func next() async throws -> ByteBuffer? { self.reads.popFirst() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(reads: self.reads[...]) }
}

private final class WriteLog {
    var bytes: [UInt8] = []
    var finished = false
}

private struct LoggingWriter: ResponseBodyWriter {
    let log: WriteLog

    mutating func write(_ buffer: ByteBuffer) async throws {
        self.log.bytes += buffer.readableBytesView
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        self.log.finished = true
    }
}
