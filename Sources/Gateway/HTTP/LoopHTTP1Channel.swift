import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Synchronization

/// Plain HTTP/1.1 served from the connection's event loop: each request's routing and handlers
/// run in a task of their own that ends with the request, and nothing else of the connection is a
/// task. Hummingbird's `HTTP1Channel` keeps a task per connection for the connection's whole life
/// (reading the requests through `NIOAsyncChannel`, writing through its outbound writer); that
/// task's slabs, its async channel's buffers and the hand-over of every request part through it
/// were a third of Sluice's memory per open stream and part of every request's time to first byte.
///
/// The pipeline is Hummingbird's (NIO's HTTP/1 codec, the HTTPTypes codec, Hummingbird's
/// ``HTTPConnectionStateHandler`` for the idle timeout and the graceful shutdown's quiescing), with
/// ``LoopConnection`` where the async channel was; responses are the router's, unchanged. The
/// connection's own task (the server's, per connection) only waits for the channel to close.
struct LoopHTTP1Channel<Responder: HTTPResponder>: ServerChildChannel where Responder.Context == GatewayRequestContext {
    struct Value: ServerChildChannelValue {
        let channel: any Channel
    }

    let responder: Responder
    let configuration: HTTP1Channel.Configuration
    let serverName: String

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = self.configuration.httpDecoder.maxHeaderFieldSize
            limits.maxHeaderListSize = self.configuration.httpDecoder.maxHeaderListSize
            limits.maxHeaderFieldCount = self.configuration.httpDecoder.maxHeaderFieldCount
            let pipeline = channel.pipeline.syncOperations
            // A request the parser refuses gets a 400 (431 for its headers) saying why, and the
            // connection is closed.
            try pipeline.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false, withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits
            )
            try pipeline.addHandler(ParseErrorAnswer())
            try pipeline.addHandler(HTTP10Framing())
            try pipeline.addHandler(HTTP1ToHTTPServerCodec(secure: false))
            try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: self.configuration.idleTimeout.map { .nanoseconds($0.nanoseconds) }, logger: logger))
            try pipeline.addHandler(LoopConnection(responder: self.responder, serverName: self.serverName, logger: logger))
            return Value(channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        // The server's task group waits for every connection's task: this one ends when the
        // connection closes (idle, quiesced, or closed by the client), or closes it when cancelled.
        await withTaskCancellationHandler {
            try? await value.channel.closeFuture.get()
        } onCancel: {
            value.channel.close(promise: nil)
        }
    }
}

/// One HTTP/1.1 connection's requests, one at a time: a request's head starts a task that runs the
/// router with the body streamed to it (with backpressure: the connection is not read while the
/// handler has not taken what came), and writes the router's response into the connection. Parts
/// of a next request that arrive before the response ended (pipelining) wait for it.
final class LoopConnection<Responder: HTTPResponder>: ChannelDuplexHandler, RemovableChannelHandler
where Responder.Context == GatewayRequestContext {
    typealias InboundIn = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    typealias BodyProducer = NIOThrowingAsyncSequenceProducer<
        ByteBuffer, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, BodyDemand
    >

    /// What a response's end leaves to do with the rest of its request.
    private enum Request {
        /// No request is open.
        case none
        /// The body is being read into the handler's body sequence.
        case reading(BodyProducer.Source)
        /// The request was read whole (its handler may still be answering).
        case read
        /// The response ended before the request did: the rest is read and dropped, then the
        /// connection closes (a client that sends its whole body before it reads, such as
        /// Python's urllib, then reads the answer instead of a reset). `left` bytes at most.
        case discarding(left: Int)
    }

    /// Request bytes read and dropped after an answer that came before the body ended.
    static var discardAllowance: Int { 16 * 1024 * 1024 }

    private let responder: Responder
    private let serverName: String
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var request = Request.none
    /// A response is being written (from the head's arrival to the response's end).
    private var responding = false
    /// The connection closes once the response has ended (the client or the response asked).
    private var closeAfterResponse = false
    /// The handler has not taken the body parts given so far: the connection is not read.
    private var bodyPaused = false
    /// A read was asked for while paused.
    private var readPending = false
    /// The open request's number: a late ask for its `100 Continue` must not reach the next one.
    private var requestNumber = 0
    /// The open request asked for `100 Continue` (`Expect`) and it was sent.
    private var continued = false
    /// Parts of the next request that came while a response was being written.
    private var waiting: CircularBuffer<HTTPRequestPart> = []
    private var waitingBytes = 0

    init(responder: Responder, serverName: String, logger: Logger) {
        self.responder = responder
        self.serverName = serverName
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.receive(self.unwrapInboundIn(data), context: context)
    }

    private func receive(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        // A next request pipelined behind a response still being written waits for it, its body
        // and end behind its head.
        let waits: Bool
        if case .head = part { waits = self.responding || !self.waiting.isEmpty } else { waits = !self.waiting.isEmpty }
        guard !waits else {
            self.waiting.append(part)
            if case .body(let bytes) = part { self.waitingBytes += bytes.readableBytes }
            return
        }
        switch part {
        case .head(let head): self.start(head, context: context)
        case .body, .end: self.deliver(part, context: context)
        }
    }

    /// A body part or the end of the open request.
    private func deliver(_ part: HTTPRequestPart, context: ChannelHandlerContext) {
        switch (part, self.request) {
        case (.body(let bytes), .reading(let source)):
            if source.yield(bytes) == .stopProducing { self.bodyPaused = true }
        case (.end, .reading(let source)):
            source.finish()
            self.request = .read
        case (.body(let bytes), .discarding(let left)):
            if bytes.readableBytes > left {
                context.close(promise: nil)
            } else {
                self.request = .discarding(left: left - bytes.readableBytes)
            }
        case (.end, .discarding):
            self.request = .none
            context.close(promise: nil)
        case (.head, _), (_, .none), (_, .read):
            // (The decoder ends each request before the next head.)
            break
        }
    }

    private func start(_ head: HTTPRequest, context: ChannelHandlerContext) {
        self.responding = true
        self.closeAfterResponse = head.headerFields.asksToClose
        self.requestNumber &+= 1
        self.continued = false
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let producer = BodyProducer.makeSequence(
            backPressureStrategy: .init(lowWatermark: 2, highWatermark: 16), finishOnDeinit: false,
            delegate: BodyDemand(handler: bound)
        )
        self.request = .reading(producer.source)
        let body: RequestBody
        if head.headerFields.expectsContinue {
            // The client waits for a `100 Continue` before it sends the body (curl for bodies
            // over 1 MiB, ~1 s if none comes): it is sent when the handler first reads the body,
            // so a request refused before that (a token, a declared length over the limit) is
            // answered without the body being sent at all.
            let number = self.requestNumber
            body = RequestBody(asyncSequence: ContinueOnRead(base: producer.sequence) {
                bound.eventLoop.execute { bound.value.sendContinue(for: number) }
            })
        } else {
            body = RequestBody(asyncSequence: producer.sequence)
        }
        let request = Hummingbird.Request(head: head, body: body)
        let channel = context.channel
        let responder = self.responder
        let serverName = self.serverName
        let logger = self.logger
        let onLoop = LoopResponseStart(channel: channel, handler: bound, serverName: serverName)
        let arrived = ContinuousClock.now
        Task {
            var requestContext = GatewayRequestContext(source: ApplicationRequestContextSource(channel: channel, logger: logger))
            requestContext.responseStart = onLoop
            requestContext.arrived = arrived
            var response: Response
            do {
                response = try await responder.respond(to: request, context: requestContext)
            } catch {
                logger.debug("unrecognised error", metadata: ["error.type": "\(String(reflecting: type(of: error)))"])
                response = Response(status: .internalServerError, body: .init())
            }
            // Its head is out already, and its end will come from the stream's.
            if onLoop.isStarted { return }
            response.headers[.date] = HTTPDate.now
            response.headers[.server] = serverName
            let writer = LoopBodyWriter(channel: channel, handler: bound)
            do {
                try await writer.write(response)
            } catch {
                // The client went away, or the body failed after its head: the connection's state
                // is unknown, so it ends.
                channel.close(promise: nil)
            }
        }
    }

    /// The request's handler started reading a body its client holds back until it hears `100
    /// Continue`: unless its answer has begun (or the body has come whole anyway).
    fileprivate func sendContinue(for number: Int) {
        guard let context = self.context, number == self.requestNumber, self.responding, !self.continued,
              case .reading = self.request
        else { return }
        self.continued = true
        context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
    }

    /// The response's end was written: the connection goes on to the next request, or closes.
    fileprivate func responseEnded(closing: Bool) {
        guard let context = self.context, self.responding else { return }
        self.responding = false
        if closing { self.closeAfterResponse = true }
        switch self.request {
        case .reading(let source):
            // The answer came before the body ended (a refusal): the handler no longer reads it,
            // and what it left untaken no longer holds the connection's reading.
            source.finish()
            self.request = .discarding(left: Self.discardAllowance)
            self.closeAfterResponse = true
            self.bodyPaused = false
            self.resumeReading(context)
            return
        case .read:
            self.request = .none
        case .none, .discarding:
            break
        }
        if self.closeAfterResponse {
            context.close(promise: nil)
            return
        }
        // The pipelined next request: its head starts it, its body and end follow into it.
        while let part = self.waiting.first {
            if case .head = part, self.responding { break }
            self.waiting.removeFirst()
            switch part {
            case .head(let head):
                self.start(head, context: context)
            case .body(let bytes):
                self.waitingBytes -= bytes.readableBytes
                self.deliver(part, context: context)
            case .end:
                self.deliver(part, context: context)
            }
        }
        self.resumeReading(context)
    }

    fileprivate func produceMore() {
        guard let context = self.context else { return }
        self.bodyPaused = false
        self.resumeReading(context)
    }

    private func resumeReading(_ context: ChannelHandlerContext) {
        if self.readPending, !self.isPaused {
            self.readPending = false
            context.read()
        }
    }

    /// Not read while the handler has not taken the body, nor while more than a request's worth of
    /// a pipelined next request waits.
    private var isPaused: Bool {
        self.bodyPaused || self.waitingBytes > 1024 * 1024 || self.waiting.count > 64
    }

    func read(context: ChannelHandlerContext) {
        if self.isPaused {
            self.readPending = true
        } else {
            context.read()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .reading(let source) = self.request {
            source.finish(ChannelError.eof)
        }
        self.request = .none
        context.fireChannelInactive()
    }

    /// A request the parser refused (NIO's error handler has answered it with a 400) or a failed
    /// read: the connection's state is unknown, and it ends.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if case .reading(let source) = self.request {
            source.finish(error)
            self.request = .none
        }
        context.close(promise: nil)
    }
}

/// A request body that asks for its client's `100 Continue` when it is first read.
struct ContinueOnRead<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    let base: Base
    let ask: @Sendable () -> Void

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        var ask: (@Sendable () -> Void)?

        mutating func next() async throws -> ByteBuffer? {
            if let ask {
                self.ask = nil
                ask()
            }
            return try await self.base.next()
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.base.makeAsyncIterator(), ask: self.ask)
    }
}

/// HTTP/1.0 requests, which the HTTPTypes codec behind this handler no longer tells from HTTP/1.1.
/// An HTTP/1.0 client cannot read a chunked body and, unless it asked to keep the connection,
/// expects it to close after the answer (ApacheBench waits for that close): its requests are
/// marked `Connection: close` (the connection then closes after each answer, which also ends a
/// stream's body, sent unframed), its answers are HTTP/1.0 without chunked framing, and its
/// `Expect` is ignored (RFC 9110 §10.1.1).
final class HTTP10Framing: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// For each request read and not answered yet, oldest first, whether it is HTTP/1.0.
    private var versions: CircularBuffer<Bool> = []
    /// Whether the answer being written is an HTTP/1.0 one (a relay beneath the encoder writes its
    /// body unframed then).
    private(set) var answersHTTP10 = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = self.unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        let legacy = head.version.major == 1 && head.version.minor == 0
        self.versions.append(legacy)
        guard legacy else {
            context.fireChannelRead(data)
            return
        }
        head.headers.replaceOrAdd(name: "connection", value: "close")
        head.headers.remove(name: "expect")
        context.fireChannelRead(self.wrapInboundOut(.head(head)))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // A final answer's head answers the oldest request (a `1xx` comes before it).
        guard case .head(var head) = self.unwrapOutboundIn(data), head.status.code >= 200 || head.status.code == 101,
              let legacy = self.versions.popFirst()
        else {
            context.write(data, promise: promise)
            return
        }
        self.answersHTTP10 = legacy
        guard legacy else {
            context.write(data, promise: promise)
            return
        }
        head.version = .http1_0
        head.headers.replaceOrAdd(name: "connection", value: "close")
        context.write(self.wrapOutboundOut(.head(head)), promise: promise)
    }
}

/// The request body's demand: the handler's task took parts, or let the body go (the rest is then
/// dropped as it arrives), so the connection is read again.
struct BodyDemand: NIOAsyncSequenceProducerDelegate {
    let resume: @Sendable () -> Void

    init<Responder>(handler: NIOLoopBound<LoopConnection<Responder>>) {
        self.resume = { handler.eventLoop.execute { handler.value.produceMore() } }
    }

    func produceMore() {
        self.resume()
    }

    func didTerminate() {
        self.resume()
    }
}

/// Writes a response into the connection from the request's task. A body of known length (one
/// buffer, or none: every answer but a stream) goes in one hop to the event loop with its head and
/// end; a streamed one part by part, each waited for (the backpressure: a slow client holds the
/// writer, not the gateway's memory). The relay of a stream (``ChannelRelay``) writes beneath it.
struct LoopBodyWriter<Responder: HTTPResponder>: Sendable where Responder.Context == GatewayRequestContext {
    let channel: any Channel
    let handler: NIOLoopBound<LoopConnection<Responder>>

    func write(_ response: Response) async throws {
        let head = HTTPResponse(status: response.status, headerFields: response.headers)
        let closing = response.headers.asksToClose
        let handler = self.handler
        let channel = self.channel
        guard response.body.contentLength != nil else {
            channel.writeAndFlush(HTTPResponsePart.head(head), promise: nil)
            try await response.body.write(LoopStreamWriter(channel: channel, handler: handler, closing: closing))
            return
        }
        let collected = CollectedBody()
        try await response.body.write(collected)
        let parts = collected.parts
        let trailers = collected.trailers
        try await channel.eventLoop.flatSubmit {
            channel.write(HTTPResponsePart.head(head), promise: nil)
            for part in parts where part.readableBytes > 0 { channel.write(HTTPResponsePart.body(part), promise: nil) }
            let ended = channel.writeAndFlush(HTTPResponsePart.end(trailers))
            handler.value.responseEnded(closing: closing)
            return ended
        }.get()
    }
}

/// A body of known length, taken whole before it is written.
private final class CollectedBody: ResponseBodyWriter {
    var parts: [ByteBuffer] = []
    var trailers: HTTPFields?

    func write(_ buffer: ByteBuffer) async throws {
        self.parts.append(buffer)
    }

    func write(contentsOf buffers: some Sequence<ByteBuffer>) async throws {
        self.parts.append(contentsOf: buffers)
    }

    func finish(_ trailingHeaders: HTTPFields?) async throws {
        self.trailers = trailingHeaders
    }
}

/// A loop-served connection's response started from its event loop rather than by the request's
/// task returning it: ``Exchange``'s streams, whose head follows Bedrock's, which arrives on that
/// loop (the two hand-overs between the loop and the task it saves were ~0.9 ms of a stream's first
/// byte at 100 streams, p50). What the task returns afterwards is not written.
protocol ResponseStart: Sendable {
    /// Writes the head (not flushed: it goes out with the body's first write), on the channel's
    /// loop; the returned ending ends the response, later, from anywhere.
    func startOnLoop(_ response: HTTPResponse) -> any DetachedEnding
    /// Whether it was (read by the request's task once its upstream's head is known, which is after
    /// the start).
    var isStarted: Bool { get }
}

final class LoopResponseStart<Responder: HTTPResponder>: ResponseStart where Responder.Context == GatewayRequestContext {
    private let channel: any Channel
    private let handler: NIOLoopBound<LoopConnection<Responder>>
    private let serverName: String
    private let started = Atomic<Bool>(false)

    init(channel: any Channel, handler: NIOLoopBound<LoopConnection<Responder>>, serverName: String) {
        self.channel = channel
        self.handler = handler
        self.serverName = serverName
    }

    var isStarted: Bool { self.started.load(ordering: .acquiring) }

    func startOnLoop(_ response: HTTPResponse) -> any DetachedEnding {
        self.channel.eventLoop.preconditionInEventLoop()
        self.started.store(true, ordering: .releasing)
        var response = response
        response.headerFields[.date] = HTTPDate.now
        response.headerFields[.server] = self.serverName
        self.channel.write(HTTPResponsePart.head(response), promise: nil)
        return LoopStreamWriter(channel: self.channel, handler: self.handler, closing: response.headerFields.asksToClose)
    }
}

/// A response body writer whose end may be written after the body's closure returned, from any
/// task: a relayed stream then needs no task while it runs (``Exchange``).
protocol DetachedEnding: Sendable {
    /// Ends the response (`disconnected`: the client went away, and the connection is closed).
    func end(disconnected: Bool) async
}

/// A streamed response's body, written part by part; its end hands the connection back.
private struct LoopStreamWriter<Responder: HTTPResponder>: ResponseBodyWriter, DetachedEnding where Responder.Context == GatewayRequestContext {
    let channel: any Channel
    let handler: NIOLoopBound<LoopConnection<Responder>>
    let closing: Bool

    func write(_ buffer: ByteBuffer) async throws {
        try await self.channel.writeAndFlush(HTTPResponsePart.body(buffer)).get()
    }

    func write(contentsOf buffers: some Sequence<ByteBuffer>) async throws {
        // (An empty part would end a chunked body: the last part is the flushed one.)
        var last: ByteBuffer?
        for buffer in buffers where buffer.readableBytes > 0 {
            if let last { self.channel.write(HTTPResponsePart.body(last), promise: nil) }
            last = buffer
        }
        if let last { try await self.channel.writeAndFlush(HTTPResponsePart.body(last)).get() }
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {
        try await self.writeEnd(trailingHeaders).get()
    }

    func end(disconnected: Bool) async {
        guard !disconnected else {
            self.channel.close(promise: nil)
            return
        }
        _ = try? await self.writeEnd(nil).get()
    }

    private func writeEnd(_ trailingHeaders: HTTPFields?) -> EventLoopFuture<Void> {
        let handler = self.handler
        let channel = self.channel
        let closing = self.closing
        return self.channel.eventLoop.flatSubmit {
            let ended = channel.writeAndFlush(HTTPResponsePart.end(trailingHeaders))
            handler.value.responseEnded(closing: closing)
            return ended
        }
    }
}

extension HTTPFields {
    /// Whether `Connection` says `close`: the connection ends after this message.
    var asksToClose: Bool {
        self[.connection].map { $0.lowercased().contains("close") } ?? false
    }
}

/// The `Date` header's value (RFC 9110 §5.6.7), formatted once a second.
enum HTTPDate {
    private static let cache = Mutex<(second: Int, value: String)>((0, ""))

    static var now: String {
        let time = Int(Date().timeIntervalSince1970)
        return cache.withLock { cache in
            if cache.second != time {
                cache = (time, Self.format(time))
            }
            return cache.value
        }
    }

    private static func format(_ time: Int) -> String {
        let parts = UTCFields.of(time)
        let two = UTCFields.two
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
