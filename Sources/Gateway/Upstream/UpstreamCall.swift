import NIOCore
import NIOHTTP1
import Synchronization

/// What takes an upstream response's body as it arrives, on the call's event loop (the stream relay).
///
/// Two closures, not a protocol: the relay is generic over the shape's processor, and a protocol
/// witness of a generic class runs unspecialized (looking up generic metadata on every read); the
/// closures are made where the relay's type is concrete.
struct UpstreamBodySink {
    /// One body read: `nil` when the sink is ready for the next, else a future that completes when it
    /// is (the sink's backpressure: meanwhile nothing is read from the socket).
    var receive: (ByteBuffer) -> EventLoopFuture<Void>?
    /// The body ended: `nil` when complete, else why it was cut.
    var ended: ((any Error)?) -> Void
    /// The connection's read is done (every part of it was received): what the parts made goes out
    /// now, one flush for a read that held several (the end of a stream often comes as three frames).
    var readComplete: () -> Void = {}
}

/// One upstream request on a connection of the client connection's event loop (``UpstreamPool``),
/// where every step of its response runs. The caller awaits the head once (``head()``),
/// then either collects the body (errors, whole answers) or hands it to a sink that relays it on
/// that loop: no task wakes per body read.
///
/// The idle time limit (no body read for `idle` while the consumer is ready for one) is kept here:
/// one timer per call checks the time of the last read and sleeps again, rather than a timer
/// scheduled and cancelled on every read.
///
/// All state is touched only on `loop`; ``cancel()`` may be called from anywhere.
final class UpstreamCall: @unchecked Sendable {
    let loop: any EventLoop
    /// The request as sent: head and body in one buffer (one write). Let go once the response head
    /// arrived (it is kept only to send again on a new connection, which an answered call never
    /// is): a coding agent's request can be hundreds of KiB, and a stream lasts minutes.
    private(set) var request: ByteBuffer
    /// The connection the request went out on, while it is this call's.
    private var connection: UpstreamConnection?
    /// Whether the call ended early (cancelled, failed): a connection made for it is not used for it.
    private var cancelled = false
    /// Whether the request was sent again after a reused connection closed without answering.
    var retried = false

    private let headPromise: EventLoopPromise<HTTPResponseHead>
    private var headDone = false
    private var firstByteTimer: Scheduled<Void>?
    /// Who takes the body; reads that come before it is known wait (one at most: see `held`).
    private var consumer: Consumer = .undecided
    /// The one read that arrived before the consumer was known, and the future it was answered with.
    private var held: (part: ByteBuffer, promise: EventLoopPromise<Void>)?
    /// How the body ended, if it did before the consumer was known.
    private var ending: Result<Void, any Error>?

    private enum Consumer {
        case undecided
        case collecting(limit: Int, body: ByteBuffer, promise: EventLoopPromise<ByteBuffer>)
        case relaying(UpstreamBodySink)
        /// The client's stream ended first: the rest is read and dropped until the body ends or the
        /// timer cancels the request (see ``drain(within:)``).
        case draining(Scheduled<Void>)
        case done

        var isEnded: Bool {
            if case .done = self { return true }
            return false
        }
    }

    private let idle: TimeAmount
    private var lastRead = NIODeadline.uptimeNanoseconds(0)
    /// Whether the consumer holds the last read back (the client is slow): not the upstream's idling.
    private var waitingForConsumer = false
    private var watchdog: Scheduled<Void>?

    /// Run on the loop when a `200` head arrives, before the head's waiter hears of it, and takes the
    /// response there (``Exchange``'s streams on a loop-served connection write the client's head and
    /// start the relay at once, rather than after two hand-overs between the loop and the request's
    /// task). Let go once the head came: it holds the request's state.
    private var onOK: (@Sendable (UpstreamCall, HTTPResponseHead) -> Void)?

    init(loop: any EventLoop, request: ByteBuffer, idle: TimeAmount, onOK: (@Sendable (UpstreamCall, HTTPResponseHead) -> Void)? = nil) {
        self.loop = loop
        self.request = request
        self.idle = idle
        self.onOK = onOK
        self.headPromise = loop.makePromise()
    }

    /// Whether nothing more will come of the call (it was cancelled or failed, or its response ended).
    var isFinished: Bool {
        self.cancelled || (self.headDone && self.consumer.isEnded)
    }

    /// Ends the request (its connection is closed, not reused): the head's waiter or the body's
    /// consumer gets ``UpstreamTransportError/cancelled``, unless the call already ended.
    func cancel() {
        if self.loop.inEventLoop {
            self.cancelOnLoop()
        } else {
            self.loop.execute { self.cancelOnLoop() }
        }
    }

    private func cancelOnLoop() {
        guard !self.cancelled else { return }
        self.cancelled = true
        if let connection = self.connection {
            self.connection = nil
            connection.abort(self)
        }
        self.failed(UpstreamTransportError.cancelled)
    }

    /// Starts the first-byte time limit: the head must come within `timeout`. On the loop, where the
    /// call starts: set from the request's task, the timer and its cancellation were two more jobs
    /// handed to the loop from another thread a request.
    func limitFirstByte(to timeout: Duration) {
        self.loop.preconditionInEventLoop()
        guard !self.headDone else { return }
        self.firstByteTimer = self.loop.scheduleTask(in: TimeAmount(timeout)) {
            self.failHead(GatewayError(.upstreamFirstByteTimeout, "the upstream did not answer within the first-byte time limit"))
            self.cancel()
        }
    }

    /// The response head, or the transport's error (``GatewayError/Code/upstreamFirstByteTimeout``
    /// after the first-byte limit the call was started with).
    func head() async throws -> HTTPResponseHead {
        try await withTaskCancellationHandler {
            try await self.headPromise.futureResult.get()
        } onCancel: {
            self.loop.execute {
                self.failHead(CancellationError())
            }
            self.cancel()
        }
    }

    /// The whole body, up to `limit` bytes (more fails with ``BodyTooLarge`` and ends the request).
    func collect(upTo limit: Int) async throws -> ByteBuffer {
        let promise = self.loop.makePromise(of: ByteBuffer.self)
        self.loop.execute {
            self.consumer = .collecting(limit: limit, body: ByteBuffer(), promise: promise)
            self.replay()
        }
        return try await withTaskCancellationHandler {
            try await promise.futureResult.get()
        } onCancel: {
            self.cancel()
        }
    }

    /// Hands the body to `sink`, on the loop: what arrived before it comes first.
    func relay(into sink: UpstreamBodySink) {
        self.loop.preconditionInEventLoop()
        self.consumer = .relaying(sink)
        let replays = self.held != nil
        self.replay()
        if replays { self.readComplete() }
    }

    /// Nobody will take the body: the request is cancelled and what was held is let go.
    func abandon() {
        self.cancel()
        self.loop.execute {
            self.consumer = .done
            self.stopWatchdog()
            if let (_, promise) = self.held {
                self.held = nil
                promise.succeed()
            }
            self.ending = nil
        }
    }

    /// The body's consumer is done with it: what is left is read and dropped, so that the connection
    /// can be reused, unless it takes longer than `time` (then the request is cancelled). On the loop.
    func drain(within time: TimeAmount) {
        self.loop.preconditionInEventLoop()
        guard case .relaying = self.consumer else { return }
        self.consumer = .draining(self.loop.scheduleTask(in: time) { self.cancel() })
    }

    struct BodyTooLarge: Error {}

    private func failHead(_ error: any Error) {
        guard !self.headDone else { return }
        self.headDone = true
        self.onOK = nil
        self.stopFirstByteTimer()
        self.headPromise.fail(error)
    }

    private func stopFirstByteTimer() {
        self.firstByteTimer?.cancel()
        self.firstByteTimer = nil
    }

    private func replay() {
        if let (part, promise) = self.held {
            self.held = nil
            if let pending = self.deliver(part) {
                pending.cascade(to: promise)
            } else {
                promise.succeed()
            }
        }
        if let ending = self.ending {
            self.ending = nil
            switch ending {
            case .success: self.end(nil)
            case .failure(let error): self.end(error)
            }
        }
    }

    /// Hands `part` to the consumer: `nil` when it is ready for the next read, else when it will be.
    private func deliver(_ part: ByteBuffer) -> EventLoopFuture<Void>? {
        switch self.consumer {
        case .undecided:
            let promise = self.loop.makePromise(of: Void.self)
            self.held = (part, promise)
            return promise.futureResult
        case .collecting(let limit, var body, let promise):
            guard body.readableBytes + part.readableBytes <= limit else {
                self.consumer = .done
                self.stopWatchdog()
                promise.fail(BodyTooLarge())
                self.cancel()
                return nil
            }
            self.consumer = .undecided  // let `body` be uniquely referenced while it grows
            body.writeImmutableBuffer(part)
            self.consumer = .collecting(limit: limit, body: body, promise: promise)
            return nil
        case .relaying(let sink):
            return sink.receive(part)
        case .draining, .done:
            return nil
        }
    }

    // MARK: The idle time limit

    private func startWatchdog() {
        self.lastRead = .now()
        self.watchdog = self.loop.scheduleTask(in: self.idle) { self.checkIdle() }
    }

    private func stopWatchdog() {
        self.watchdog?.cancel()
        self.watchdog = nil
    }

    private func checkIdle() {
        guard self.watchdog != nil else { return }
        let idle = self.idle
        let now = NIODeadline.now()
        if self.waitingForConsumer || now - self.lastRead < idle {
            let next = self.waitingForConsumer ? now + idle : self.lastRead + idle
            self.watchdog = self.loop.scheduleTask(deadline: next) { self.checkIdle() }
            return
        }
        self.watchdog = nil
        self.end(GatewayError(.upstreamIdleTimeout, "the upstream stream stalled longer than the idle time limit"))
        self.cancel()
    }

    private func end(_ error: (any Error)?) {
        // No read comes after an ending.
        self.stopWatchdog()
        switch self.consumer {
        case .undecided:
            // A read may still be held: the ending comes after it.
            self.ending = error.map { .failure($0) } ?? .success(())
        case .collecting(_, let body, let promise):
            self.consumer = .done
            if let error { promise.fail(error) } else { promise.succeed(body) }
        case .relaying(let sink):
            self.consumer = .done
            sink.ended(error)
        case .draining(let timer):
            self.consumer = .done
            timer.cancel()
        case .done:
            break
        }
    }

    // MARK: From the connection (on `loop`)

    func attached(to connection: UpstreamConnection) {
        self.connection = connection
    }

    func receivedHead(_ head: HTTPResponseHead) {
        if !self.headDone {
            self.headDone = true
            self.stopFirstByteTimer()
            self.request = ByteBuffer()
            if let onOK = self.onOK {
                self.onOK = nil
                if head.status == .ok { onOK(self, head) }
            }
            self.headPromise.succeed(head)
            self.startWatchdog()
        }
    }

    /// One part of the body: `nil` when the consumer is ready for the next, else when it will be.
    func receivedBody(_ buffer: ByteBuffer) -> EventLoopFuture<Void>? {
        if self.watchdog != nil { self.lastRead = .now() }
        guard let pending = self.deliver(buffer) else { return nil }
        self.waitingForConsumer = true
        pending.whenComplete { _ in
            self.waitingForConsumer = false
            self.lastRead = .now()
        }
        return pending
    }

    /// The connection's read was delivered: the relay flushes what it wrote of it.
    func readComplete() {
        if case .relaying(let sink) = self.consumer { sink.readComplete() }
    }

    func failed(_ error: any Error) {
        self.connection = nil
        if !self.headDone {
            self.cancelled = true
            self.failHead(error)
            self.consumer = .done
            return
        }
        self.end(error)
    }

    func finished() {
        self.connection = nil
        if !self.headDone {
            // A response that ended without a head cannot happen (the parser gives the head first).
            self.failed(UpstreamTransportError.closed)
            return
        }
        self.end(nil)
    }
}

/// A streamed call waiting for its response body to be relayed: Hummingbird runs the body's closure
/// once it has written the head, or drops it (the client went away first); dropped unclaimed, the
/// upstream request is cancelled, so that its connection is not left waiting.
final class UnclaimedCall: Sendable {
    private let call: UpstreamCall
    private let claimed = Atomic<Bool>(false)

    init(_ call: UpstreamCall) {
        self.call = call
    }

    /// The call, for the one relay of its body.
    func claim() -> UpstreamCall {
        self.claimed.store(true, ordering: .relaxed)
        return self.call
    }

    deinit {
        if !self.claimed.load(ordering: .relaxed) {
            self.call.abandon()
        }
    }
}
