import Logging
import NIOCore
import NIOHTTPTypes

/// Relays one upstream stream into the client's connection inside the event loop both share: the
/// upstream's body reads arrive as callbacks (``UpstreamCall``), each is run through ``StreamRun``
/// and written and flushed into the client's channel at once. No task wakes per read (the task that
/// made the request waits once, for the outcome), and when the upstream connection is one of the
/// same loop's, as it usually is, nothing crosses threads.
///
/// It is a handler at the end of the client channel's pipeline for the stream's lifetime: writes enter
/// where Hummingbird's own do, after the response head it wrote, and the channel tells it when it is
/// writable again (the backpressure: the upstream is not read while the client is slow) and when it
/// closed (the client went away: the upstream request is cancelled).
final class ChannelRelay<Processor: StreamProcessor>: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    /// What a relayed stream leaves: how it ended, and the processor (the shape reads it afterwards).
    /// The processor is handed over whole from the loop to the waiting task, which is its only user
    /// from then on.
    struct Ended: @unchecked Sendable {
        var outcome: StreamOutcome
        var processor: Processor
    }

    /// Upstream bytes after the stream's ending are read and dropped for this long, so that its
    /// connection can be reused; an upstream that goes on sending longer is cut.
    static var drainTime: TimeAmount { .seconds(2) }

    private var run: StreamRun<Processor>
    private let call: UpstreamCall
    private let done: EventLoopPromise<Ended>
    private var context: ChannelHandlerContext?
    private var writable: EventLoopPromise<Void>?
    private var finished = false

    private init(run: StreamRun<Processor>, call: UpstreamCall, done: EventLoopPromise<Ended>) {
        self.run = run
        self.call = call
        self.done = done
    }

    /// Relays `call`'s body into `channel` (whose loop is the call's) until the stream ends, and
    /// returns how it ended. Writes nothing after that: the caller records the outcome, then ends the
    /// response.
    static func relay(
        _ call: UpstreamCall, into channel: any Channel, processor makeProcessor: @escaping @Sendable () -> Processor,
        deadline: ContinuousClock.Instant, observer: StreamObserver, logger: Logger
    ) async -> Ended {
        let loop = channel.eventLoop
        let done = loop.makePromise(of: Ended.self)
        loop.execute {
            let run = StreamRun(makeProcessor(), deadline: deadline, observer: observer, logger: logger)
            let relay = ChannelRelay(run: run, call: call, done: done)
            do {
                try channel.pipeline.syncOperations.addHandler(relay)
            } catch {
                relay.finish(disconnected: true)
            }
            // Even when it already finished: the call then drops what it holds.
            call.relay(into: UpstreamBodySink(receive: { relay.receive($0) }, ended: { relay.ended($0) }))
        }
        return await withTaskCancellationHandler {
            // `done` is always succeeded (the relay ends by one of its callbacks).
            (try? await done.futureResult.get()) ?? Ended(outcome: StreamOutcome(meter: StreamMeter(), disconnected: true), processor: makeProcessor())
        } onCancel: {
            // The server is ending the connection's task: the upstream request ends with it.
            call.cancel()
        }
    }

    // MARK: The upstream body

    func receive(_ part: ByteBuffer) -> EventLoopFuture<Void>? {
        guard let context = self.context, !self.finished else { return nil }
        if self.run.consume(part) {
            self.write(context)
        }
        if self.run.isOver {
            self.finish(disconnected: false)
            return nil
        }
        guard context.channel.isWritable else {
            let promise = context.eventLoop.makePromise(of: Void.self)
            self.writable = promise
            return promise.futureResult
        }
        return nil
    }

    func ended(_ error: (any Error)?) {
        guard let context = self.context, !self.finished else { return }
        self.run.end(error)
        if self.run.out.readableBytes > 0 {
            self.write(context)
        }
        self.finish(disconnected: false)
    }

    /// One write and one flush per upstream read.
    private func write(_ context: ChannelHandlerContext) {
        context.writeAndFlush(self.wrapOutboundOut(.body(self.run.out)), promise: nil)
        self.run.written()
    }

    private func finish(disconnected: Bool) {
        guard !self.finished else { return }
        self.finished = true
        if let writable = self.writable {
            self.writable = nil
            writable.succeed()
        }
        if disconnected {
            self.call.cancel()
        } else {
            // When the stream's ending came before the upstream body's, the rest is dropped as it
            // arrives (the connection is kept), but not for long.
            self.call.drain(within: Self.drainTime)
        }
        if let context = self.context {
            self.context = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        self.done.succeed(Ended(outcome: self.run.outcome(disconnected: disconnected), processor: self.run.processor))
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if !context.channel.isActive {
            self.finish(disconnected: true)
        }
    }

    /// The connection closed: the client went away. (Hummingbird's connection state handler does
    /// not pass `channelInactive` on, so the closing channel's removal of its handlers is the signal.)
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.finish(disconnected: true)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.finish(disconnected: true)
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let writable = self.writable {
            self.writable = nil
            writable.succeed()
        }
        context.fireChannelWritabilityChanged()
    }
}
