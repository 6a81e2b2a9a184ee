import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Relays one upstream stream into the client's connection inside the event loop both share: the
/// upstream's body parts arrive as callbacks (``UpstreamCall``), each is run through ``StreamRun``
/// and written into the client's channel at once, and flushed when the upstream's read is done. No
/// task wakes per read (on plain HTTP/1.1 no task waits at all; on TLS connections the task that
/// made the request waits once, for the outcome), and nothing crosses threads: the upstream
/// connection is one of the same loop's (``UpstreamClient`` keeps a client per loop).
///
/// It is a handler in the client channel's pipeline for the stream's lifetime, added after the
/// response head was written; the channel tells it when it is writable again (the backpressure: the
/// upstream is not read while the client is slow) and when it closed (the client went away: the
/// upstream request is cancelled). On an HTTP/1 connection it sits just before NIO's response encoder
/// and writes the body already in chunked framing (unframed to an HTTP/1.0 client), one buffer per read: the encoder and the four
/// HTTP handlers above it cost more per chunk than all of StreamCore's work (a tenth of the gateway's
/// CPU per chunk in a profile), and they have nothing to do for body bytes (the response's framing
/// is the encoder's own chunked one, see ``ChunkFraming``; its head and end still go through them).
/// On an HTTP/2 stream's channel it is the last handler and writes body parts, as Hummingbird does.
final class ChannelRelay<Processor: StreamProcessor>: ChannelInboundHandler, RemovableChannelHandler {
    /// Whatever passes (raw bytes before the HTTP/1 decoder, request parts on an HTTP/2 stream): it
    /// is passed on untouched.
    typealias InboundIn = NIOAny

    /// What a relayed stream leaves: how it ended, and the processor (the shape reads it afterwards).
    /// The processor is handed over whole from the loop to the waiting task, which is its only user
    /// from then on. A class: every async frame on the waiting side holds the result for the stream's
    /// whole life, and the connection's task keeps its frames' high-water mark until the connection
    /// closes; a processor inline in each of them cost ~4 KB of slabs per open stream (heaptrack).
    final class Ended: @unchecked Sendable {
        let outcome: StreamOutcome
        let processor: Processor

        init(outcome: StreamOutcome, processor: Processor) {
            self.outcome = outcome
            self.processor = processor
        }
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
    /// Whether something was written and not yet flushed.
    private var unflushed = false
    /// How the body is written.
    private enum Framing {
        /// As HTTP/1.1 chunks, beneath the encoder.
        case chunked
        /// As they are, beneath the encoder (HTTP/1.0).
        case unframed
        /// As body parts (HTTP/2).
        case parts
    }

    private let framing: Framing
    /// Where a chunk is framed when the stream's output has no room before it (slices of upstream
    /// reads, on `/bedrock`): kept and reused, as the stream's own output is.
    private var frame = ByteBuffer()

    private init(run: StreamRun<Processor>, call: UpstreamCall, done: EventLoopPromise<Ended>, framing: Framing) {
        self.run = run
        self.call = call
        self.done = done
        self.framing = framing
    }

    /// Relays `call`'s body into `channel` (whose loop is the call's) until the stream ends, and
    /// returns how it ended. Writes nothing after that: the caller records the outcome, then ends the
    /// response.
    static func relay(
        _ call: UpstreamCall, into channel: any Channel, processor makeProcessor: @escaping @Sendable () -> Processor,
        deadline: ContinuousClock.Instant, observer: StreamObserver, logger: Logger
    ) async -> Ended {
        let done = channel.eventLoop.makePromise(of: Ended.self)
        channel.eventLoop.execute {
            Self.begin(call, into: channel, processor: makeProcessor(), deadline: deadline, observer: observer, logger: logger, done: done)
        }
        return await withTaskCancellationHandler {
            // `done` is always succeeded (the relay ends by one of its callbacks).
            (try? await done.futureResult.get()) ?? Ended(outcome: StreamOutcome(meter: StreamMeter(), disconnected: true), processor: makeProcessor())
        } onCancel: {
            // The server is ending the connection's task: the upstream request ends with it.
            call.cancel()
        }
    }

    /// Starts relaying `call`'s body into `channel`, on the loop both share; `done` is succeeded, on
    /// the loop, when the stream has ended, however it ended. No task needs to wait meanwhile (on a
    /// loop-served HTTP/1 connection none does: ``Exchange``'s `Streaming`). `headUnflushed`: the
    /// response's head was written and not flushed; it goes out with the first chunk.
    static func begin(
        _ call: UpstreamCall, into channel: any Channel, processor: Processor, deadline: ContinuousClock.Instant, observer: StreamObserver,
        logger: Logger, done: EventLoopPromise<Ended>, headUnflushed: Bool = false
    ) {
        channel.eventLoop.preconditionInEventLoop()
        var run = StreamRun(processor, deadline: deadline, observer: observer, logger: logger)
        let pipeline = channel.pipeline.syncOperations
        // HTTP/1: Hummingbird's responses go through NIOHTTPTypes, which makes every one HTTP/1.1,
        // and a stream's head has no Content-Length: the encoder frames its body as chunked. An
        // answer to an HTTP/1.0 client (``HTTP10Framing``) has no framing: its end is the
        // connection's close.
        let encoder = try? pipeline.context(handlerType: HTTPResponseEncoder.self)
        let framing: Framing
        if encoder == nil {
            framing = .parts
        } else if (try? pipeline.handler(type: HTTP10Framing.self))?.answersHTTP10 == true {
            framing = .unframed
        } else {
            framing = .chunked
            run.headroom = ChunkFraming.headroom
        }
        let relay = ChannelRelay(run: run, call: call, done: done, framing: framing)
        relay.unflushed = headUnflushed
        do {
            if let encoder {
                try pipeline.addHandler(relay, position: .before(encoder.handler))
            } else {
                try pipeline.addHandler(relay)
            }
        } catch {
            relay.finish(disconnected: true)
        }
        // Even when it already finished: the call then drops what it holds.
        call.relay(into: UpstreamBodySink(receive: { relay.receive($0) }, ended: { relay.ended($0) }, readComplete: { relay.flush() }))
    }

    // MARK: The upstream body

    func receive(_ part: ByteBuffer) -> EventLoopFuture<Void>? {
        guard let context = self.context, !self.finished else { return nil }
        let (output, over) = self.run.take(part)
        if output {
            self.write(context)
        }
        if over {
            self.finish(disconnected: false)
            return nil
        }
        if !context.channel.isWritable {
            // What was written must go out for the channel to become writable again; the flush may
            // make it writable at once (its change is signalled during the flush, with nobody waiting).
            self.flush()
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

    /// One write per part of the upstream body (an HTTP chunk upstream), flushed once the upstream's
    /// read is done (``flush()``): a read that brings several parts goes out in one system call.
    private func write(_ context: ChannelHandlerContext) {
        switch self.framing {
        case .chunked:
            context.write(NIOAny(ChunkFraming.frame(&self.run.out, scratch: &self.frame)), promise: nil)
        case .unframed:
            context.write(NIOAny(self.run.out), promise: nil)
        case .parts:
            context.write(NIOAny(HTTPResponsePart.body(self.run.out)), promise: nil)
        }
        self.unflushed = true
        self.run.written()
    }

    /// Sends what was written since the last flush: at the end of each upstream read, before waiting
    /// for the channel to become writable, and at the stream's end.
    func flush() {
        guard self.unflushed, let context = self.context else { return }
        self.unflushed = false
        context.flush()
    }

    private func finish(disconnected: Bool) {
        guard !self.finished else { return }
        self.finished = true
        // After `finished`: a writability change signalled during the flush must not let the
        // upstream's held parts back in through `receive`.
        self.flush()
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

    // Both pass the event on first: what the relay does with it can end the stream and take the
    // relay out of the pipeline, and an event fired from a removed handler's context reaches no one.
    // (A writability change lost that way left NIO's async writer believing the channel full: the
    // response's end, written through it, waited for ever. `ChannelRelayTests`.)

    func channelInactive(context: ChannelHandlerContext) {
        context.fireChannelInactive()
        self.finish(disconnected: true)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.fireChannelWritabilityChanged()
        if context.channel.isWritable, let writable = self.writable {
            self.writable = nil
            writable.succeed()
        }
    }
}

/// HTTP/1.1 chunked framing (RFC 9112 §7.1): the size in hexadecimal, CRLF, the bytes, CRLF. The
/// encoder's own writes the three as three buffers (the size line allocated per chunk); here they
/// are one: written in place when the bytes have room before them (``StreamRun/headroom``: the
/// output the translating shapes write into), else copied into a kept buffer (slices of upstream
/// reads, which the passthrough forwards).
enum ChunkFraming {
    /// Room for the longest size line: eight hexadecimal digits (a chunk under 4 GiB) and CRLF.
    static let headroom = 10

    /// `bytes` framed as one chunk; `bytes` must not be empty (an empty chunk ends the body). The
    /// result is `bytes` itself or `scratch`'s contents.
    static func frame(_ bytes: inout ByteBuffer, scratch: inout ByteBuffer) -> ByteBuffer {
        let size = bytes.readableBytes
        assert(size > 0, "an empty chunk would end the body")
        let digits = (Int.bitWidth - size.leadingZeroBitCount + 3) / 4
        if bytes.readerIndex >= digits + 2 {
            let start = bytes.readerIndex - digits - 2
            writeSizeLine(size, digits: digits, into: &bytes, at: start)
            bytes.moveReaderIndex(to: start)
            bytes.writeStaticString("\r\n")
            return bytes
        }
        scratch.clear()
        scratch.reserveCapacity(minimumWritableBytes: digits + 4 + size)
        scratch.moveWriterIndex(forwardBy: digits + 2)
        writeSizeLine(size, digits: digits, into: &scratch, at: 0)
        scratch.writeImmutableBuffer(bytes)
        scratch.writeStaticString("\r\n")
        return scratch
    }

    private static func writeSizeLine(_ size: Int, digits: Int, into buffer: inout ByteBuffer, at index: Int) {
        let hex: StaticString = "0123456789abcdef"
        hex.withUTF8Buffer { hex in
            var value = size
            for position in stride(from: index + digits - 1, through: index, by: -1) {
                buffer.setInteger(hex[value & 0xF], at: position)
                value >>= 4
            }
        }
        buffer.setInteger(UInt16(0x0D0A), at: index + digits)
    }
}
