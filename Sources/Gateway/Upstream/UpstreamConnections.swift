import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// How an upstream connection failed, before or during a response.
enum UpstreamTransportError: Error, CustomStringConvertible {
    /// No connection within the connect time limit.
    case connectTimeout
    /// The connection was refused or could not be made (the address, the route, TLS set-up).
    case connectFailed(String)
    /// The upstream closed the connection before the response was complete.
    case closed
    /// The call was cancelled (the client went away, a time limit, the stream's end).
    case cancelled
    /// The response was not valid HTTP/1.1.
    case malformed(String)
    /// The gateway is shutting down.
    case shutDown

    var description: String {
        switch self {
        case .connectTimeout: "connecting timed out"
        case .connectFailed(let reason): "could not connect: \(reason)"
        case .closed: "the upstream closed the connection"
        case .cancelled: "cancelled"
        case .malformed(let reason): reason
        case .shutDown: "the upstream client is shut down"
        }
    }
}

/// Where an upstream's connections go: host, port, TLS.
struct UpstreamTarget: Sendable {
    var host: String
    var port: Int
    /// Set for `https` endpoints; shared by all of the upstream's connections.
    var tls: NIOSSLContext?
    /// The name sent by SNI and checked against the certificate; `nil` for an IP address, which
    /// the certificate is then checked against.
    var serverName: String?
    /// An `https` endpoint: without a TLS context (it could not be made) nothing is sent.
    var requiresTLS: Bool
    var connectTimeout: TimeAmount
    /// Whether a refused connection is tried again (with backoff) until the connect time limit.
    var retriesConnecting: Bool
    var maximumConnections: Int
    var idleTimeout: TimeAmount
}

/// The connections of one upstream on one event loop, and the calls waiting for one. A call takes
/// the most recently used idle connection (its TCP and TLS state warm), else a new one is made,
/// else (at `maximumConnections`) it waits for one to come free. A connection serves one response
/// at a time (no pipelining), is kept while idle for `idleTimeout`, and is closed after a response
/// that says so or that ended early.
///
/// Everything here is touched only on `loop`: no locks on the request path.
final class UpstreamPool: @unchecked Sendable {
    let loop: any EventLoop
    private let target: UpstreamTarget
    private var idle: [UpstreamConnection] = []
    /// Connections open or being opened.
    private var open = 0
    private var waiting = CircularBuffer<UpstreamCall>()
    private var idleSweep: Scheduled<Void>?
    /// Every connection this pool counts in `open`, by its handler.
    private var channels: [ObjectIdentifier: any Channel] = [:]
    private var isShutDown = false

    init(loop: any EventLoop, target: UpstreamTarget) {
        self.loop = loop
        self.target = target
    }

    /// Runs `call` on a connection of this loop. On the loop.
    func execute(_ call: UpstreamCall) {
        self.loop.preconditionInEventLoop()
        guard !self.isShutDown else {
            call.failed(UpstreamTransportError.shutDown)
            return
        }
        guard !call.isFinished else { return }
        if let connection = self.idle.popLast() {
            connection.run(call)
        } else if self.open < self.target.maximumConnections {
            self.connect(for: call)
        } else {
            self.waiting.append(call)
        }
    }

    /// A connection finished its response and may carry another.
    func released(_ connection: UpstreamConnection) {
        guard !self.isShutDown else {
            connection.close()
            return
        }
        if let call = self.nextWaiting() {
            connection.run(call)
            return
        }
        connection.idleSince = .now()
        self.idle.append(connection)
        if self.idleSweep == nil {
            self.scheduleSweep(at: connection.idleSince + self.target.idleTimeout)
        }
    }

    /// A connection closed (whatever it was doing).
    func closed(_ connection: UpstreamConnection) {
        guard self.channels.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return }
        self.open -= 1
        if let index = self.idle.firstIndex(where: { $0 === connection }) {
            self.idle.remove(at: index)
        }
        if !self.isShutDown, let call = self.nextWaiting() {
            self.connect(for: call)
        }
    }

    /// Closes every connection and fails the calls waiting for one.
    func shutDown() -> EventLoopFuture<Void> {
        self.loop.preconditionInEventLoop()
        self.isShutDown = true
        self.idleSweep?.cancel()
        self.idleSweep = nil
        while let call = self.waiting.popFirst() {
            call.failed(UpstreamTransportError.shutDown)
        }
        let closes = self.channels.values.map { $0.close().recover { _ in } }
        return EventLoopFuture.andAllComplete(closes, on: self.loop)
    }

    private func nextWaiting() -> UpstreamCall? {
        while let call = self.waiting.popFirst() {
            if !call.isFinished { return call }
        }
        return nil
    }

    // MARK: Connecting

    private func connect(for call: UpstreamCall) {
        guard self.target.tls != nil || !self.target.requiresTLS else {
            call.failed(UpstreamTransportError.connectFailed("TLS could not be set up (no trust roots)"))
            return
        }
        self.open += 1
        self.attempt(for: call, deadline: .now() + self.target.connectTimeout, backoff: .milliseconds(50))
    }

    private func attempt(for call: UpstreamCall, deadline: NIODeadline, backoff: TimeAmount) {
        let target = self.target
        let bootstrap = ClientBootstrap(group: self.loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: ReceiveBuffers.allocator)
            .connectTimeout(max(deadline - .now(), .milliseconds(1)))
            .channelInitializer { channel in
                // On `channel`'s loop, which is this pool's. A handler per channel: a name with
                // several addresses is tried on several channels at once (happy eyeballs).
                do {
                    if let tls = target.tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: target.serverName))
                    }
                    try channel.pipeline.syncOperations.addHandler(UpstreamConnection(pool: self))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        bootstrap.connect(host: target.host, port: target.port).whenComplete { result in
            switch result {
            case .success(let channel):
                guard let connection = try? channel.pipeline.syncOperations.handler(type: UpstreamConnection.self), !self.isShutDown else {
                    channel.close(promise: nil)
                    self.open -= 1
                    call.failed(UpstreamTransportError.shutDown)
                    return
                }
                // From here its close is counted (`closed`); channels that lost the race are not.
                self.channels[ObjectIdentifier(connection)] = channel
                if call.isFinished {
                    self.released(connection)
                } else {
                    connection.run(call)
                }
            case .failure(let error):
                let timedOut = Self.isTimeout(error)
                let retryAt = NIODeadline.now() + backoff
                if target.retriesConnecting, !timedOut, retryAt < deadline, !call.isFinished, !self.isShutDown {
                    self.loop.scheduleTask(deadline: retryAt) {
                        self.attempt(for: call, deadline: deadline, backoff: min(backoff * 2, .seconds(1)))
                    }
                    return
                }
                self.open -= 1
                call.failed(timedOut ? UpstreamTransportError.connectTimeout : UpstreamTransportError.connectFailed("\(error)"))
                if !self.isShutDown, let next = self.nextWaiting() {
                    self.connect(for: next)
                }
            }
        }
    }

    private static func isTimeout(_ error: any Error) -> Bool {
        if case ChannelError.connectTimeout = error { return true }
        if let error = error as? NIOConnectionError {
            return error.connectionErrors.contains { if case ChannelError.connectTimeout = $0.error { true } else { false } }
        }
        return false
    }

    // MARK: Idle connections

    private func scheduleSweep(at deadline: NIODeadline) {
        self.idleSweep = self.loop.scheduleTask(deadline: deadline) {
            self.idleSweep = nil
            let now = NIODeadline.now()
            // `idle` is in order of release: the oldest first.
            while let oldest = self.idle.first, now - oldest.idleSince >= self.target.idleTimeout {
                self.idle.removeFirst()
                oldest.close()
            }
            if let oldest = self.idle.first {
                self.scheduleSweep(at: oldest.idleSince + self.target.idleTimeout)
            }
        }
    }
}

/// One upstream connection's handler: writes a call's request and reads its response into the call
/// (``UpstreamCall``), on the connection's loop. The response's body parts are slices of the
/// socket's reads; while the call's consumer is not ready for more (the client is slow), the rest of
/// the read is held, and once ``holdLimit`` bytes are held the socket is not read (`autoRead` off), so
/// the upstream's TCP window closes. (Not at once: every streamed response's first part arrives
/// before the relay is attached, and turning reading off and on again was two `epoll_ctl` calls a
/// request for a wait of a fraction of a millisecond.)
final class UpstreamConnection: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let pool: UpstreamPool
    private var context: ChannelHandlerContext?
    private var parser = HTTP1ResponseParser()
    private var call: UpstreamCall?
    /// Whether any byte of the current call's response arrived.
    private var answered = false
    /// Responses completed on this connection: a reused connection that closes before answering
    /// was most likely closed by the upstream while idle, and the call is tried again once.
    private var served = 0
    /// Whether the consumer is not ready for more; what is left of a read is then held.
    private var paused = false
    /// Whether the socket is not read (`autoRead` off): `holdLimit` bytes are held.
    private var readingStopped = false
    /// Bytes held while paused before the socket stops being read.
    static let holdLimit = 16 * 1024
    /// The connection closed while paused: its end is handled once what is held was delivered.
    private var closedWhilePaused = false
    private var held: ByteBuffer?
    private var error: (any Error)?
    var idleSince = NIODeadline.uptimeNanoseconds(0)

    init(pool: UpstreamPool) {
        self.pool = pool
    }

    /// Sends `call`'s request.
    func run(_ call: UpstreamCall) {
        guard let context = self.context else {
            // Closed in the meantime (the pool learns of it from `channelInactive`).
            self.pool.execute(call)
            return
        }
        self.call = call
        self.answered = false
        self.parser.reset()
        call.attached(to: self)
        context.writeAndFlush(self.wrapOutboundOut(call.request), promise: nil)
    }

    /// Ends `call`'s exchange here: the connection is closed (the rest of its response would have
    /// to be read first to reuse it).
    func abort(_ call: UpstreamCall) {
        guard self.call === call else { return }
        self.call = nil
        self.close()
    }

    func close() {
        self.context?.close(promise: nil)
    }

    // MARK: ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        guard self.call != nil else {
            // Bytes nobody asked for: the connection cannot be trusted with the next request.
            context.close(promise: nil)
            return
        }
        self.answered = true
        if self.paused {
            // Kept behind what is held, until the consumer is ready.
            if var held = self.held {
                self.held = nil
                held.writeBuffer(&buffer)
                self.held = held
            } else {
                self.held = buffer
            }
            self.stopReadingIfHoldingEnough()
            return
        }
        self.process(&buffer)
    }

    /// The socket's read went through `channelRead`: the relay flushes what it wrote of it (when the
    /// read ended the call, the relay flushed at its end).
    func channelReadComplete(context: ChannelHandlerContext) {
        self.call?.readComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.context = nil
        self.pool.closed(self)
        // While paused, what is held comes first: it may be the whole rest of the response (an
        // upstream that closes after each response, while the client reads slowly).
        if self.paused {
            self.closedWhilePaused = true
            return
        }
        self.connectionEnded()
    }

    /// The connection is gone: the call's response ends by the close, goes again (a stale kept-alive
    /// connection), or fails.
    private func connectionEnded() {
        guard let call = self.call else { return }
        self.call = nil
        if self.parser.closed() {
            call.finished()
        } else if !self.answered, self.served > 0, !call.retried {
            call.retried = true
            self.pool.execute(call)
        } else {
            call.failed(self.error ?? UpstreamTransportError.closed)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if self.error == nil { self.error = error }
        context.close(promise: nil)
    }

    // MARK: The response

    private func process(_ buffer: inout ByteBuffer) {
        while let call = self.call {
            let event: HTTP1ResponseParser.Event?
            do {
                event = try self.parser.next(&buffer)
            } catch {
                self.error = UpstreamTransportError.malformed(error.description)
                self.close()
                return
            }
            // More bytes are needed (the parser keeps an unfinished line); bytes after the
            // response's end are seen at `.end`.
            guard let event else { return }
            switch event {
            case .head(let head):
                call.receivedHead(head)
            case .body(let part):
                if let ready = call.receivedBody(part) {
                    self.pause(holding: buffer, until: ready)
                    return
                }
            case .end:
                self.call = nil
                self.served += 1
                call.finished()
                if self.parser.keepAlive, buffer.readableBytes == 0, self.context != nil {
                    self.pool.released(self)
                } else {
                    self.close()
                }
                return
            }
        }
    }

    private func pause(holding rest: ByteBuffer, until ready: EventLoopFuture<Void>) {
        self.paused = true
        if rest.readableBytes > 0 { self.held = rest }
        self.stopReadingIfHoldingEnough()
        ready.whenComplete { _ in
            self.paused = false
            // Also with nothing held: the response's end may follow the last part without a byte.
            var held = self.held ?? ByteBuffer()
            self.held = nil
            self.process(&held)
            self.call?.readComplete()
            guard !self.paused else { return }
            if self.closedWhilePaused {
                self.closedWhilePaused = false
                self.connectionEnded()
                return
            }
            guard self.readingStopped, let context = self.context else { return }
            self.readingStopped = false
            try? context.channel.syncOptions?.setOption(.autoRead, value: true)
        }
    }

    private func stopReadingIfHoldingEnough() {
        guard !self.readingStopped, (self.held?.readableBytes ?? 0) >= Self.holdLimit else { return }
        self.readingStopped = true
        try? self.context?.channel.syncOptions?.setOption(.autoRead, value: false)
    }
}
