package import Hummingbird
package import Logging
package import NIOCore
package import StreamCore
import Synchronization

/// The routes' two stream loops, reachable from inside the package without a server or an upstream
/// connection: the in-process end-to-end benchmark (Benchmarks/GatewayBenchmarks) feeds them the
/// simulator's frames and collects what they write, so it measures exactly the code a stream runs
/// (decode, CRC, translate or verify, the per-chunk metric, one write per read) and nothing of the
/// sockets.
package enum StreamRelay {
    /// How a relayed stream ended, as the usage ledger would record it.
    package struct Ending: Sendable {
        /// The finish reason, an error code, or `client_disconnected`.
        package var finishReason: String?
        /// What the upstream reported, if its usage event came.
        package var usage: TokenUsage?
    }

    /// `POST /v1/chat/completions`'s loop: ConverseStream frames in, OpenAI SSE out.
    package static func chatCompletions(
        upstream: some AsyncSequence<ByteBuffer, any Error>,
        options: ChatChunkTranslator.Options,
        metrics: GatewayMetrics,
        writer: inout any ResponseBodyWriter,
        logger: Logger
    ) async throws -> Ending {
        let outcome = OutcomeBox()
        try await ChatCompletionsRoute.stream(
            upstream: upstream, options: options, deadline: .now + .seconds(3600), writer: &writer, logger: logger,
            observer: StreamObserver(metrics: metrics, lifecycle: GatewayLifecycle(), route: ChatCompletionsRoute.route)
        ) { outcome.set($0) }
        return outcome.ending
    }

    /// The `/bedrock` streaming routes' loop: frames verified and metered, forwarded unchanged.
    package static func bedrock(
        upstream: some AsyncSequence<ByteBuffer, any Error>,
        operation: BedrockOperation,
        metrics: GatewayMetrics,
        writer: inout any ResponseBodyWriter,
        logger: Logger
    ) async throws -> Ending {
        let outcome = OutcomeBox()
        try await BedrockRoutes.relay(
            upstream: upstream, operation: operation, deadline: .now + .seconds(3600), writer: &writer, logger: logger,
            observer: StreamObserver(metrics: metrics, lifecycle: GatewayLifecycle(), route: "/bedrock/model")
        ) { outcome.set($0) }
        return outcome.ending
    }

    /// Carries the outcome out of the loop's `@Sendable` end callback.
    private final class OutcomeBox: Sendable {
        private let value = Mutex<StreamOutcome?>(nil)

        func set(_ outcome: StreamOutcome) {
            self.value.withLock { $0 = outcome }
        }

        var ending: Ending {
            self.value.withLock { outcome in Ending(finishReason: outcome?.finishReason, usage: outcome?.usage) }
        }
    }
}
