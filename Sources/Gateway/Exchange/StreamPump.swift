import AsyncHTTPClient
package import Hummingbird
package import Logging
package import NIOCore
import StreamCore

/// How a stream ended: the one outcome the ledger, the audit line and the metrics read, whatever the
/// API shape.
package struct StreamOutcome: Sendable {
    package var meter: StreamMeter
    /// The client went away (or the request task was cancelled) before the end.
    package var disconnected: Bool
    /// When the first bytes were handed to the client's connection.
    package var firstByte: ContinuousClock.Instant?

    /// The ledger's finish reason: `client_disconnected`, our failure code, or the model's.
    package var finishReason: String? {
        if self.disconnected { return "client_disconnected" }
        if let failure = self.meter.failure { return failure.description }
        return self.meter.finishReason
    }
}

/// The one stream loop of DESIGN.md, for every API shape: read upstream → decode, verify, translate
/// or pass through → one write per read. Each `await writer.write` is the backpressure: while the
/// client is slow, nothing is read upstream.
package enum StreamPump {
    /// Runs `processor` over `upstream` until the stream ends, however it ends, and returns how.
    /// Writes nothing after the outcome: the caller records it (durably) and then ends the response,
    /// so a request the client saw complete is always in the ledger.
    package static func run<Processor: StreamProcessor>(
        _ processor: inout Processor,
        upstream body: some AsyncSequence<ByteBuffer, any Error>,
        deadline: ContinuousClock.Instant,
        writer: inout any ResponseBodyWriter,
        logger: Logger,
        observer: StreamObserver
    ) async -> StreamOutcome {
        var out = ByteBuffer()
        var firstByte: ContinuousClock.Instant?
        var disconnected = false
        do {
            for try await read in body {
                let arrived = ContinuousClock.now
                try processor.consume(read, into: &out)
                if arrived > deadline, !processor.isEnded {
                    processor.fail(GatewayError(.requestTimeout, "the request exceeded the gateway's time limit"), into: &out)
                }
                if out.readableBytes > 0 {
                    let handed = ContinuousClock.now
                    if firstByte == nil { firstByte = handed }
                    observer.chunkProcessed(handed - arrived)
                    try await Self.write(&out, to: &writer, keep: processor.writesIntoOutput)
                }
                if processor.isEnded { break }
            }
            if !processor.isEnded { try processor.finish(into: &out) }
        } catch is ClientDisconnected {
            logger.debug("client disconnected mid-stream")
            disconnected = true
        } catch is CancellationError {
            disconnected = true
        } catch let error as EventStreamError {
            logger.info("corrupt upstream stream", metadata: ["decoder.error": "\(error.code)"])
            observer.metrics.decoderError("\(error.code)")
            processor.fail(GatewayError(.upstreamCorruptStream, "upstream sent a corrupt event stream (\(error.code))"), into: &out)
        } catch {
            if observer.lifecycle.isDrainExpired {
                processor.fail(
                    GatewayError(.serverShuttingDown, "the gateway is shutting down; this stream was cut at the end of its drain time"), into: &out
                )
            } else {
                let failure = UpstreamFailure.describe(error, duringBody: true)
                logger.info("upstream stream failed", metadata: ["upstream.error": "\(failure.code)"])
                processor.fail(failure, into: &out)
            }
        }
        if !disconnected, out.readableBytes > 0 {
            if firstByte == nil { firstByte = .now }
            do {
                try await Self.write(&out, to: &writer, keep: false)
            } catch {
                disconnected = true
            }
        }
        return StreamOutcome(meter: processor.meter, disconnected: disconnected, firstByte: firstByte)
    }

    /// One write (and flush) per upstream read. A buffer the processor writes into is kept for the
    /// next read (once the connection has let go of it, clearing it reuses its memory), so a steady
    /// stream allocates nothing per chunk; a large one is dropped so that an idle stream holds little
    /// memory, and slices of upstream reads are never kept.
    private static func write(_ out: inout ByteBuffer, to writer: inout any ResponseBodyWriter, keep: Bool) async throws {
        do {
            try await writer.write(out)
        } catch {
            throw ClientDisconnected()
        }
        if !keep || out.capacity > 16 * 1024 {
            out = ByteBuffer()
        } else {
            out.clear()
        }
    }
}

/// Thrown when a write to the client fails: the client has gone, nothing more can be sent to it.
struct ClientDisconnected: Error {}
