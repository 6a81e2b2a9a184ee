import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import StreamCore
import Testing

@testable import Gateway

/// The relay in the client's pipeline: what it does with the channel's events while it is there.
@Suite
struct ChannelRelayTests {
    /// What the handlers after the relay hear of the channel's writability, as NIO's async channel
    /// handler does: it holds Hummingbird's response writes (the response's end) back while it
    /// believes the channel full.
    final class WritabilityHeard: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = NIOAny
        private(set) var heard: [Bool] = []

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            self.heard.append(context.channel.isWritable)
            context.fireChannelWritabilityChanged()
        }
    }

    static func hasRelay(_ channel: NIOAsyncTestingChannel) async throws -> Bool {
        try await channel.testingEventLoop.submit {
            (try? channel.pipeline.syncOperations.handler(type: ChannelRelay<PassthroughProcessor>.self)) != nil
        }.get()
    }

    static func frame(_ text: String) throws -> ByteBuffer {
        var frame = ByteBuffer()
        try EventStreamEncoder.write(
            headers: [
                EventStreamHeader(name: ":event-type", value: .init(string: "contentBlockDelta")),
                EventStreamHeader(name: ":content-type", value: .init(string: "application/json")),
                EventStreamHeader(name: ":message-type", value: .init(string: "event")),
            ],
            payload: ByteBuffer(string: #"{"contentBlockIndex":0,"delta":{"text":"\#(text)"}}"#),
            into: &frame
        )
        return frame
    }

    /// A slow client: the relay waits for the channel to drain while the upstream's end is held
    /// (it came in the meantime). The writability change that lets the relay go on runs the rest
    /// of the stream, ends it and takes the relay out of the pipeline, all inside the relay's own
    /// handling of that change. The change must still reach the handlers after it: it once did
    /// not, so NIO's async writer went on believing the channel full and held the response's end
    /// back for good (the client had every byte but the last chunk; one full test run in ten).
    @Test("a stream that ends inside the writability change that resumed it: the change still reaches the handlers after the relay")
    func endInsideWritabilityChange() async throws {
        let heard = WritabilityHeard()
        let channel = NIOAsyncTestingChannel()
        let loop = channel.testingEventLoop
        try await loop.submit { try channel.pipeline.syncOperations.addHandlers([HTTPResponseEncoder(), heard]) }.get()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 8080))
        let call = try await loop.submit {
            let call = UpstreamCall(loop: loop, request: ByteBuffer(), idle: .seconds(60))
            call.receivedHead(HTTPResponseHead(version: .http1_1, status: .ok))
            return call
        }.get()
        let observer = StreamObserver(metrics: GatewayMetrics(), lifecycle: GatewayLifecycle(), route: "/test")
        let relayed = Task {
            await ChannelRelay.relay(
                call, into: channel, processor: { PassthroughProcessor(operation: .converseStream) }, deadline: .now + .seconds(60),
                observer: observer, logger: Logger(label: "test")
            )
        }
        // The relay installs itself on the loop (a bounded wait: a relay that never comes fails the
        // test instead of hanging it).
        let installBy = ContinuousClock.now + .seconds(30)
        while try await !Self.hasRelay(channel), ContinuousClock.now < installBy {
            await loop.run()
            try await Task.sleep(for: .milliseconds(1))
        }
        try #require(try await Self.hasRelay(channel), "the relay did not install itself")
        let frame = try Self.frame("hello")
        let waited = try await loop.submit {
            channel.isWritable = false
            channel.pipeline.fireChannelWritabilityChanged()
            // The client is slow: the relay writes the part and asks the upstream to wait.
            guard let ready = call.receivedBody(frame) else { return false }
            // The upstream's end came meanwhile and is held, as the connection holds it.
            ready.whenComplete { _ in call.finished() }
            return true
        }.get()
        #expect(waited, "the relay did not wait for an unwritable channel")
        try await loop.submit {
            channel.isWritable = true
            channel.pipeline.fireChannelWritabilityChanged()
        }.get()
        let ended = await relayed.value
        #expect(!ended.outcome.disconnected)
        #expect(try await !Self.hasRelay(channel), "the relay stayed in the pipeline")
        #expect(heard.heard == [false, true], "the handlers after the relay last heard the channel was \(heard.heard.last.map { $0 ? "writable" : "full" } ?? "nothing")")
        _ = try? await channel.finish()
    }
}
