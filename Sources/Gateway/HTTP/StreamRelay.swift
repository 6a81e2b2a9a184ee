package import Hummingbird
package import Logging
package import NIOCore
package import StreamCore

/// The stream pump with each route's processor, reachable from inside the package without a server
/// or an upstream connection: the in-process end-to-end benchmark (Benchmarks/GatewayBenchmarks)
/// feeds it the simulator's frames and collects what it writes, so it measures exactly the code a
/// stream runs (decode, CRC, translate or verify, the per-chunk metric, one write per read) and
/// nothing of the sockets.
package enum StreamRelay {
    /// How a relayed stream ended, as the usage ledger would record it.
    package struct Ending: Sendable {
        /// The finish reason, an error code, or `client_disconnected`.
        package var finishReason: String?
        /// What the upstream reported, if its usage event came.
        package var usage: TokenUsage?
    }

    /// `POST /v1/chat/completions`'s stream: ConverseStream frames in, OpenAI SSE out.
    package static func chatCompletions(
        upstream: some AsyncSequence<ByteBuffer, any Error>,
        options: ChatChunkTranslator.Options,
        metrics: GatewayMetrics,
        writer: inout any ResponseBodyWriter,
        logger: Logger
    ) async throws -> Ending {
        var run = Self.start(TranslatingProcessor(ChatChunkTranslator(options: options)), route: OpenAIChatShape.route, metrics: metrics, logger: logger)
        return try await Self.relay(&run, upstream: upstream, writer: &writer)
    }

    /// The `/bedrock` streaming routes: frames verified and metered, forwarded unchanged.
    package static func bedrock(
        upstream: some AsyncSequence<ByteBuffer, any Error>,
        operation: BedrockOperation,
        metrics: GatewayMetrics,
        writer: inout any ResponseBodyWriter,
        logger: Logger
    ) async throws -> Ending {
        var run = Self.start(PassthroughProcessor(operation: operation), route: "/bedrock/model", metrics: metrics, logger: logger)
        return try await Self.relay(&run, upstream: upstream, writer: &writer)
    }

    private static func start<Processor: StreamProcessor>(
        _ processor: Processor, route: String, metrics: GatewayMetrics, logger: Logger
    ) -> StreamRun<Processor> {
        StreamRun(
            processor, deadline: .now + .seconds(3600), observer: StreamObserver(metrics: metrics, lifecycle: GatewayLifecycle(), route: route),
            logger: logger
        )
    }

    @inline(__always)
    private static func relay<Processor: StreamProcessor>(
        _ run: inout StreamRun<Processor>, upstream: some AsyncSequence<ByteBuffer, any Error>, writer: inout any ResponseBodyWriter
    ) async throws -> Ending {
        let outcome = await StreamPump.run(&run, upstream: upstream, writer: &writer)
        if outcome.disconnected { throw CancellationError() }
        try await writer.finish(nil)
        return Ending(finishReason: outcome.finishReason, usage: outcome.meter.usage)
    }
}
