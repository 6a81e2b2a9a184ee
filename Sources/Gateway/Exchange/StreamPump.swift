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

/// The one stream loop of DESIGN.md, for every API shape, one upstream read at a time: decode,
/// verify, translate or pass through into `out`, which the driver writes (one write per read). The
/// server drives it from the upstream connection's callbacks (``ChannelRelay``, on the client
/// connection's event loop); ``StreamPump`` drives it from an `AsyncSequence` (the in-process
/// benchmark). However the stream ends, what the client last gets is in `out` when `isOver`.
package struct StreamRun<Processor: StreamProcessor> {
    package private(set) var processor: Processor
    /// What the client gets next; the driver writes it, then calls ``written()``.
    package var out = ByteBuffer()
    private var firstByte: ContinuousClock.Instant?
    private var failed = false
    private let deadline: ContinuousClock.Instant
    private let observer: StreamObserver
    private let logger: Logger

    package init(_ processor: Processor, deadline: ContinuousClock.Instant, observer: StreamObserver, logger: Logger) {
        self.processor = processor
        self.deadline = deadline
        self.observer = observer
        self.logger = logger
    }

    /// Whether the stream has ended (its ending is in `out`): later reads are not consumed.
    package var isOver: Bool { self.failed || self.processor.isEnded }

    /// Takes one upstream read; `true` when `out` has bytes for the client.
    package mutating func consume(_ read: ByteBuffer) -> Bool {
        let arrived = ContinuousClock.now
        do {
            try self.processor.consume(read, into: &self.out)
        } catch {
            self.end(error)
            return self.out.readableBytes > 0
        }
        if arrived > self.deadline, !self.processor.isEnded {
            self.processor.fail(GatewayError(.requestTimeout, "the request exceeded the gateway's time limit"), into: &self.out)
        }
        guard self.out.readableBytes > 0 else { return false }
        let handed = ContinuousClock.now
        if self.firstByte == nil { self.firstByte = handed }
        self.observer.chunkProcessed(handed - arrived)
        return true
    }

    /// ``consume(_:)`` and then ``isOver``, in one mutating access: read through a class's stored
    /// property (the channel relay's), `isOver` copied the whole run, retaining every reference in
    /// the processor, on every read.
    package mutating func take(_ read: ByteBuffer) -> (output: Bool, over: Bool) {
        let output = self.consume(read)
        return (output, self.isOver)
    }

    /// The upstream body ended (`nil`) or failed: the stream's ending goes into `out`.
    package mutating func end(_ error: (any Error)?) {
        if let error {
            self.failed = true
            if let error = error as? EventStreamError {
                self.logger.info("corrupt upstream stream", metadata: ["decoder.error": "\(error.code)"])
                self.observer.metrics.decoderError("\(error.code)")
                self.processor.fail(GatewayError(.upstreamCorruptStream, "upstream sent a corrupt event stream (\(error.code))"), into: &self.out)
            } else if self.observer.lifecycle.isDrainExpired {
                self.processor.fail(
                    GatewayError(.serverShuttingDown, "the gateway is shutting down; this stream was cut at the end of its drain time"),
                    into: &self.out
                )
            } else {
                let failure = UpstreamFailure.describe(error, duringBody: true)
                self.logger.info("upstream stream failed", metadata: ["upstream.error": "\(failure.code)"])
                self.processor.fail(failure, into: &self.out)
            }
        } else if !self.processor.isEnded {
            do {
                try self.processor.finish(into: &self.out)
            } catch {
                self.end(error)
                return
            }
        }
        if self.out.readableBytes > 0, self.firstByte == nil { self.firstByte = .now }
    }

    /// `out` was handed to the connection. A buffer the processor writes into is kept for the next
    /// read (once the connection has let go of it, clearing it reuses its memory), so a steady
    /// stream allocates nothing per chunk; a large one is dropped so that an idle stream holds little
    /// memory, and slices of upstream reads are never kept.
    package mutating func written() {
        if !self.processor.writesIntoOutput || self.out.capacity > 16 * 1024 {
            self.out = ByteBuffer()
        } else {
            self.out.clear()
        }
        self.keepHeadroom()
    }

    /// Bytes kept free before the output that a processor writes into, for the driver to frame it in
    /// place (``ChunkFraming``); none by default. (Slices of upstream reads have none: the driver
    /// copies those.)
    package var headroom = 0 {
        didSet { self.keepHeadroom() }
    }

    private mutating func keepHeadroom() {
        guard self.headroom > 0, self.processor.writesIntoOutput, self.out.readableBytes == 0 else { return }
        self.out.clear(minimumCapacity: self.headroom + 256)
        self.out.moveWriterIndex(to: self.headroom)
        self.out.moveReaderIndex(to: self.headroom)
    }

    package func outcome(disconnected: Bool) -> StreamOutcome {
        StreamOutcome(meter: self.processor.meter, disconnected: disconnected, firstByte: self.firstByte)
    }
}

/// ``StreamRun`` driven by an `AsyncSequence` of upstream reads and a response body writer: the
/// in-process benchmark's loop (``StreamRelay``). Each `await writer.write` is the backpressure.
package enum StreamPump {
    /// Runs `run` over `upstream` until the stream ends, however it ends, and returns how. Writes
    /// nothing after the outcome: the caller records it and then ends the response.
    ///
    /// Inlined into its concrete callers: as a generic async function it was not specialized, and
    /// every read and write went through StreamRun's and the processor's generic metadata (~400
    /// instructions a delta on the relay gate). The writes are written out here for the same reason.
    @inline(__always)
    package static func run<Processor: StreamProcessor>(
        _ run: inout StreamRun<Processor>,
        upstream body: some AsyncSequence<ByteBuffer, any Error>,
        writer: inout any ResponseBodyWriter
    ) async -> StreamOutcome {
        do {
            for try await read in body {
                if run.consume(read) {
                    do {
                        try await writer.write(run.out)
                    } catch {
                        return run.outcome(disconnected: true)
                    }
                    run.written()
                }
                if run.isOver { break }
            }
            if !run.isOver { run.end(nil) }
        } catch is CancellationError {
            return run.outcome(disconnected: true)
        } catch {
            run.end(error)
        }
        if run.out.readableBytes > 0 {
            do {
                try await writer.write(run.out)
            } catch {
                return run.outcome(disconnected: true)
            }
        }
        return run.outcome(disconnected: false)
    }
}
