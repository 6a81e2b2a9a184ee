// The wire path's floor on SwiftNIO: the least a relay written on NIO can cost per streamed chunk, for
// Benchmarks/wire.sh to set beside nginx and Sluice. It is what nginx is in that table,
// written on the stack Sluice is written on: an HTTP/1.1 relay with NIO's own HTTP codecs, keep-alive
// upstream connections per event loop, the upstream connection on the client connection's loop, one
// flush per upstream read, and nothing else: no task, no authentication, no decoding, no ledger.
// Whatever Sluice costs above this row is Sluice's (and Hummingbird's); whatever this row costs above
// nginx's is NIO's and Swift's.
//
//   sluice-wire-floor PORT UPSTREAM_PORT [THREADS] [raw]   (built with SLUICE_LOAD=1)
//
// With `raw`, the answer is not parsed into parts: the upstream's bytes (its head and its chunked
// body) are written to the client as read, beneath the response encoder, and only scanned for where
// the answer ends (``RawFraming``: the chunk sizes are read, the chunks' bytes skipped). That is
// NIO's channel machinery alone (the event loop, a read, the pipeline, a write and a flush per
// chunk), below any HTTP work. It takes chunked answers only (the simulator's streams).
//
// Not a product: no timeouts, no limits, no backpressure, no error answers beyond closing.
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

@main
enum WireFloor {
    static func main() throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 3, let port = Int(arguments[1]), let upstreamPort = Int(arguments[2]) else {
            print("usage: sluice-wire-floor PORT UPSTREAM_PORT [THREADS] [raw]")
            return
        }
        let threads = arguments.count > 3 ? Int(arguments[3]) ?? System.coreCount : System.coreCount
        let raw = arguments.count > 4 && arguments[4] == "raw"
        let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let upstream = try SocketAddress(ipAddress: "127.0.0.1", port: upstreamPort)
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // (`raw` writes beneath the pipelining handler, which would hold the next request back for ever.)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: !raw, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Downstream(pool: Pool.of(channel.eventLoop, upstream: upstream, raw: raw)))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .wait()
        print("listening on \(port)")
        try channel.closeFuture.wait()
    }
}

/// Idle keep-alive connections to the upstream, one pool per event loop, used only on its loop.
final class Pool: @unchecked Sendable {
    private static let pools = Mutex<[ObjectIdentifier: Pool]>([:])

    static func of(_ loop: any EventLoop, upstream: SocketAddress, raw: Bool) -> Pool {
        pools.withLock { pools in
            if let pool = pools[ObjectIdentifier(loop)] { return pool }
            let pool = Pool(loop: loop, upstream: upstream, raw: raw)
            pools[ObjectIdentifier(loop)] = pool
            return pool
        }
    }

    private let loop: any EventLoop
    private let upstream: SocketAddress
    let raw: Bool
    private var idle: [UpstreamHandler] = []

    private init(loop: any EventLoop, upstream: SocketAddress, raw: Bool) {
        self.loop = loop
        self.upstream = upstream
        self.raw = raw
    }

    func connection(_ body: @escaping (Result<UpstreamHandler, any Error>) -> Void) {
        while let handler = self.idle.popLast() {
            if handler.isActive { return body(.success(handler)) }
        }
        let handler = UpstreamHandler(pool: self)
        let bound = NIOLoopBound(handler, eventLoop: self.loop)
        let raw = self.raw
        ClientBootstrap(group: self.loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if raw {
                        try channel.pipeline.syncOperations.addHandler(RawUpstream(bound.value))
                    } else {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    }
                    try channel.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            .connect(to: self.upstream)
            .assumeIsolated()
            .whenComplete { result in body(result.map { _ in handler }) }
    }

    func release(_ handler: UpstreamHandler) {
        self.idle.append(handler)
    }
}

/// A client's connection: collects a request, sends it upstream, and the upstream handler writes the
/// answer into this channel.
final class Downstream: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let pool: Pool
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var upstream: UpstreamHandler?

    init(pool: Pool) {
        self.pool = pool
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            self.body.clear()
        case .body(let part):
            self.body.writeImmutableBuffer(part)
        case .end:
            guard let head = self.head else { return }
            let body = self.body
            self.pool.connection { result in
                switch result {
                case .success(let upstream):
                    self.upstream = upstream
                    upstream.send(head, body: body, to: context)
                case .failure:
                    context.close(promise: nil)
                }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.upstream?.clientWentAway()
        self.upstream = nil
        context.fireChannelInactive()
    }

    func answered() {
        self.upstream = nil
    }
}

/// One upstream connection: forwards the answer's head, body parts and end to the client's
/// connection as they arrive, flushed once per read.
final class UpstreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let pool: Pool
    private var context: ChannelHandlerContext?
    fileprivate var client: ChannelHandlerContext?
    fileprivate var unflushed = false
    fileprivate var framing = RawFraming()

    init(pool: Pool) {
        self.pool = pool
    }

    var isActive: Bool { self.context?.channel.isActive ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func send(_ head: HTTPRequestHead, body: ByteBuffer, to client: ChannelHandlerContext) {
        guard let context = self.context else { return client.close(promise: nil) }
        self.client = client
        self.framing = RawFraming()
        var upstreamHead = HTTPRequestHead(version: .http1_1, method: head.method, uri: head.uri)
        for (name, value) in head.headers where !["connection", "keep-alive", "transfer-encoding", "content-length", "host"].contains(name.lowercased()) {
            upstreamHead.headers.add(name: name, value: value)
        }
        upstreamHead.headers.add(name: "host", value: "127.0.0.1")
        upstreamHead.headers.add(name: "content-length", value: String(body.readableBytes))
        context.write(NIOAny(HTTPClientRequestPart.head(upstreamHead)), promise: nil)
        context.write(NIOAny(HTTPClientRequestPart.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(NIOAny(HTTPClientRequestPart.end(nil)), promise: nil)
    }

    func clientWentAway() {
        self.client = nil
        self.context?.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let client = self.client else { return }
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            var answer = HTTPResponseHead(version: .http1_1, status: head.status)
            for (name, value) in head.headers where !["connection", "keep-alive", "transfer-encoding", "content-length"].contains(name.lowercased()) {
                answer.headers.add(name: name, value: value)
            }
            if let length = head.headers.first(name: "content-length") { answer.headers.add(name: "content-length", value: length) }
            client.write(NIOAny(HTTPServerResponsePart.head(answer)), promise: nil)
            self.unflushed = true
        case .body(let part):
            client.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(part))), promise: nil)
            self.unflushed = true
        case .end:
            self.unflushed = false
            self.client = nil
            client.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
            (client.handler as? Downstream)?.answered()
            self.pool.release(self)
        }
    }

    func release() {
        self.pool.release(self)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if self.unflushed, let client = self.client {
            self.unflushed = false
            client.flush()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.client?.close(promise: nil)
        self.client = nil
        self.context = nil
    }
}

/// `raw`: the request is serialized by hand and the answer's bytes go to the client unparsed, through
/// the client pipeline's encoder's context (that is, beneath the encoder).
final class RawUpstream: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = ByteBuffer

    private let handler: UpstreamHandler
    private var request = ByteBuffer()

    init(_ handler: UpstreamHandler) {
        self.handler = handler
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(let head):
            self.request.clear()
            self.request.writeString("\(head.method.rawValue) \(head.uri) HTTP/1.1\r\n")
            for (name, value) in head.headers { self.request.writeString("\(name): \(value)\r\n") }
            self.request.writeString("\r\n")
        case .body(.byteBuffer(let body)):
            self.request.writeImmutableBuffer(body)
        case .body:
            break
        case .end:
            context.write(self.wrapOutboundOut(self.request), promise: promise)
            return
        }
        promise?.succeed()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.handler.forwardRaw(self.unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }
}

extension UpstreamHandler {
    func forwardRaw(_ bytes: ByteBuffer) {
        guard let client = self.client else { return }
        guard let beneath = try? client.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self) else { return }
        beneath.write(NIOAny(bytes), promise: nil)
        self.unflushed = true
        if self.framing.ends(in: bytes) {
            self.unflushed = false
            self.client = nil
            beneath.flush()
            (client.handler as? Downstream)?.answered()
            self.release()
        }
    }
}

/// Where a chunked answer forwarded unparsed ends, across reads: after its head, the chunk of size 0
/// and the empty line after it (or its trailers). Chunks' bytes are skipped, not scanned.
struct RawFraming {
    private enum State {
        /// `matched` bytes of the CR LF CR LF that ends the head (or, after the last chunk, the trailers).
        case head(matched: Int)
        case last(matched: Int)
        /// A chunk's size line: the size so far, and whether an extension (`;…`) is being skipped.
        case size(Int, extension: Bool)
        /// A chunk's bytes and the CR LF after them.
        case data(remaining: Int)
        case done
    }

    private var state = State.head(matched: 0)

    /// Reads the next bytes of the answer: whether it has ended.
    mutating func ends(in bytes: ByteBuffer) -> Bool {
        bytes.withUnsafeReadableBytes { raw in
            var index = 0
            while index < raw.count {
                switch self.state {
                case .head(let matched):
                    let next = Self.match(raw[index], matched)
                    self.state = next == 4 ? .size(0, extension: false) : .head(matched: next)
                    index += 1
                case .last(let matched):
                    let next = Self.match(raw[index], matched)
                    self.state = next == 4 ? .done : .last(matched: next)
                    index += 1
                case .size(let value, let inExtension):
                    let byte = raw[index]
                    index += 1
                    if byte == UInt8(ascii: "\n") {
                        self.state = value == 0 ? .last(matched: 2) : .data(remaining: value + 2)
                    } else if !inExtension, let digit = Self.hex(byte) {
                        self.state = .size(value * 16 + digit, extension: false)
                    } else if byte == UInt8(ascii: ";") {
                        self.state = .size(value, extension: true)
                    }
                case .data(let remaining):
                    let taken = min(remaining, raw.count - index)
                    index += taken
                    self.state = taken == remaining ? .size(0, extension: false) : .data(remaining: remaining - taken)
                case .done:
                    return true
                }
            }
            if case .done = self.state { return true }
            return false
        }
    }

    /// How much of CR LF CR LF is matched after `byte`, with `matched` before it.
    private static func match(_ byte: UInt8, _ matched: Int) -> Int {
        if byte == (matched % 2 == 0 ? UInt8(ascii: "\r") : UInt8(ascii: "\n")) { return matched + 1 }
        return byte == UInt8(ascii: "\r") ? 1 : 0
    }

    private static func hex(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A")) + 10
        default: nil
        }
    }
}
