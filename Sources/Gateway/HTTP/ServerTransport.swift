import Foundation
import Hummingbird
package import HummingbirdCore
import HummingbirdHTTP2
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import NIOSSL
import Logging

/// The certificate and key files for TLS termination, from `server.tls`.
package struct TLSFiles: Sendable, Equatable {
    /// PEM file with the certificate chain, leaf first.
    package var certificateChainPath: String
    /// PEM file with the private key. Its contents are never logged or put in an error.
    package var privateKeyPath: String

    package init(certificateChainPath: String, privateKeyPath: String) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
    }
}

/// How the server speaks on its socket.
package enum ServerTransport: Sendable {
    /// Plain HTTP/1.1 (keep-alive), served from the event loops (``LoopHTTP1Channel``).
    case http1(HTTP1Channel.Configuration)
    /// A Hummingbird channel: TLS with ALPN (HTTP/2 or HTTP/1.1), or plain HTTP/1.1 through
    /// Hummingbird's own `HTTP1Channel` (`SLUICE_HTTP1_CHANNEL=hummingbird`, for comparisons).
    case hummingbird(HTTPServerBuilder)

    /// The server; `responder` serves the loop-served connections (Hummingbird's channels get the
    /// application's).
    func builder<Responder: HTTPResponder>(for responder: Responder, serverName: String) -> HTTPServerBuilder
    where Responder.Context == GatewayRequestContext {
        switch self {
        case .http1(let configuration):
            HTTPServerBuilder { _ in SmallReads(LoopHTTP1Channel(responder: responder, configuration: configuration, serverName: serverName)) }
        case .hummingbird(let builder):
            builder
        }
    }
}

/// How the server speaks on its socket: plain HTTP/1.1 (keep-alive), or with `server.tls` TLS with
/// ALPN, where clients that offer `h2` get HTTP/2 and the rest HTTP/1.1.
///
/// - Throws: ``ConfigurationError`` naming the file that cannot be read or parsed.
/// `maxBodyBytes`: a request that declares a longer body is not asked for it (`Expect`).
package func makeServerBuilder(tls: TLSFiles?, clientIdle: Duration = .seconds(30), maxBodyBytes: Int? = nil) throws -> ServerTransport {
    guard let tls else { return makeHTTP1ServerBuilder(clientIdle: clientIdle, maxBodyBytes: maxBodyBytes) }
    let http1 = makeHTTP1Configuration(clientIdle: clientIdle, maxBodyBytes: maxBodyBytes)
    let certificates: [NIOSSLCertificate]
    do {
        certificates = try NIOSSLCertificate.fromPEMFile(tls.certificateChainPath)
    } catch {
        throw ConfigurationError(source: tls.certificateChainPath, key: "server.tls.certificateFile", problem: "not a readable PEM certificate chain")
    }
    guard !certificates.isEmpty else {
        throw ConfigurationError(source: tls.certificateChainPath, key: "server.tls.certificateFile", problem: "holds no certificate")
    }
    let key: NIOSSLPrivateKey
    do {
        key = try NIOSSLPrivateKey(file: tls.privateKeyPath, format: .pem)
    } catch {
        throw ConfigurationError(source: tls.privateKeyPath, key: "server.tls.keyFile", problem: "not a readable PEM private key")
    }
    let configuration = TLSConfiguration.makeServerConfiguration(
        certificateChain: certificates.map { .certificate($0) },
        privateKey: .privateKey(key)
    )
    do {
        // Built once here so that a certificate and key that do not belong together stop start-up
        // naming the files; the server builds its own below.
        _ = try HTTP2UpgradeChannel(tlsConfiguration: configuration, responder: { _, _, _ in })
        return .hummingbird(HTTPServerBuilder { responder in
            SmallReads(ResetFilteringHTTP2Channel(
                upgrade: try HTTP2UpgradeChannel(
                    tlsConfiguration: configuration, configuration: .init(idleTimeout: clientIdle, streamConfiguration: http1), responder: responder
                )
            ))
        })
    } catch {
        throw ConfigurationError(source: tls.certificateChainPath, key: "server.tls", problem: "the certificate and key cannot be used together")
    }
}

/// Hummingbird's TLS + ALPN channel with ``HTTP2ResetFilter`` between TLS and the HTTP/2 handler.
/// The filter goes in right after the TLS handler while the channel is set up, before any byte is
/// read; when ALPN then picks HTTP/2 the HTTP/2 handler is added behind it.
struct ResetFilteringHTTP2Channel: ServerChildChannel {
    typealias Value = HTTP2UpgradeChannel.Value
    let upgrade: HTTP2UpgradeChannel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        self.upgrade.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let operations = channel.pipeline.syncOperations
            let tls = try operations.context(handlerType: NIOSSLServerHandler.self)
            try operations.addHandler(HTTP2ResetFilter(), position: .after(tls.handler))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await self.upgrade.handle(value: value, logger: logger)
    }
}

/// The first reads of a connection into 1 KiB, not NIO's 2 KiB: each connection keeps its receive buffer
/// for its whole life (NIO reuses it for the next read), and a client's connection reads little once
/// its request is in, while a stream lasts. Reads that fill the buffer double it (NIO's adaptive
/// allocator), so a large request body still comes in few reads.
enum ReceiveBuffers {
    static let allocator = AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 65536)
}

/// A server child channel with ``ReceiveBuffers``' allocator.
struct SmallReads<Inner: ServerChildChannel>: ServerChildChannel {
    typealias Value = Inner.Value
    let inner: Inner

    init(_ inner: Inner) {
        self.inner = inner
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.setOption(ChannelOptions.recvAllocator, value: ReceiveBuffers.allocator).flatMap {
            self.inner.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await self.inner.handle(value: value, logger: logger)
    }
}

/// Plain HTTP/1.1 (keep-alive), with ``ReceiveBuffers``' reads.
package func makeHTTP1ServerBuilder(clientIdle: Duration, maxBodyBytes: Int? = nil) -> ServerTransport {
    let http1 = makeHTTP1Configuration(clientIdle: clientIdle, maxBodyBytes: maxBodyBytes)
    if ProcessInfo.processInfo.environment["SLUICE_HTTP1_CHANNEL"] == "hummingbird" {
        return .hummingbird(HTTPServerBuilder { responder in SmallReads(HTTP1Channel(responder: responder, configuration: http1)) })
    }
    return .http1(http1)
}

/// HTTP/1.1 settings against hostile clients: a connection that sends nothing for `clientIdle`
/// (a slowloris trickling its headers, an idle keep-alive) is closed; headers are bounded to 256
/// fields and 64 KiB in all (real clients send a few dozen and a few KiB; Claude Code about 20).
/// Hummingbird's channels (TLS) get ``HTTP1Compatibility`` (the loop-served one has its own).
func makeHTTP1Configuration(clientIdle: Duration, maxBodyBytes: Int?) -> HTTP1Channel.Configuration {
    HTTP1Channel.Configuration(
        additionalChannelHandlers: [HTTP1Compatibility(maxBodyBytes: maxBodyBytes)],
        idleTimeout: TimeAmount(clientIdle),
        httpDecoderConfiguration: .init(
            maxHeaderFieldSize: ParseErrorAnswer.headerBytes, maxHeaderListSize: ParseErrorAnswer.headerBytes,
            maxHeaderFieldCount: ParseErrorAnswer.headerFields
        )
    )
}

/// A request NIO's HTTP/1 parser refuses gets an answer that says why, and the connection closes
/// (the parser cannot go on): 431 for headers over the limits, 400 for anything else that is not
/// HTTP/1.1, with an OpenAI-shaped error (the request line may not have parsed, so its API is not
/// known). On the loop-served connection it replaces NIO's `HTTPServerProtocolErrorHandler`, which
/// answered an empty 400; on Hummingbird's (TLS) it comes before the handler that answered the same.
/// Like NIO's, it answers only when no other answer has begun (then it passes the error on).
final class ParseErrorAnswer: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// The parser's limits on every HTTP/1 connection: a request's headers in all, and their count.
    static let headerBytes = 64 * 1024
    static let headerFields = 256

    private var answering = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        // The parser cannot go on after its error: this answer, if any, is the connection's last.
        guard !self.answering else {
            // An answer has begun: only the close is left, as the handlers after this one see it.
            context.fireErrorCaught(error)
            return
        }
        let refusal: GatewayError
        switch error {
        case .headerOverflow:
            refusal = GatewayError(
                .requestHeadersTooLarge,
                "the request's headers are over this gateway's limits (\(Self.headerBytes / 1024) KiB, \(Self.headerFields) fields)"
            )
        case .paused:
            // What the parser makes of HTTP/2's connection preface.
            refusal = GatewayError(
                .invalidRequest, "HTTP/2 without TLS is not served here: use HTTP/1.1, or HTTPS (server.tls), where HTTP/2 is offered"
            )
        case .unknown:
            refusal = GatewayError(.invalidRequest, "the request is not valid HTTP/1.1")
        default:
            refusal = GatewayError(.invalidRequest, "the request is not valid HTTP/1.1 (\(error))")
        }
        let body = ErrorShape.openAI.body(refusal)
        var headers = HTTPHeaders([("Connection", "close"), ("Content-Type", "application/json")])
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        let status = HTTPResponseStatus(statusCode: refusal.status)
        context.write(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        // Not passed on: it is answered (Hummingbird's channel would answer it again with its own
        // 400), and the connection closes once the answer is out (the parser cannot go on).
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: written)
        let channel = context.channel
        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200: self.answering = true
        case .end: self.answering = false
        default: break
        }
        context.write(data, promise: promise)
    }
}

/// What ``LoopConnection`` does for HTTP/1.0 and `Expect`, for Hummingbird's HTTP/1.1 channel
/// (TLS), whose HTTPTypes codec drops the request's version. It is one of the channel's additional
/// handlers, which go after that codec: it puts ``HTTP10Framing`` and ``ImmediateContinue`` before
/// it, where the version is still known, and leaves. On an HTTP/2 stream (the same list of
/// handlers) it only leaves.
final class HTTP1Compatibility: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private let maxBodyBytes: Int?

    init(maxBodyBytes: Int?) {
        self.maxBodyBytes = maxBodyBytes
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        if let codec = try? pipeline.context(handlerType: HTTP1ToHTTPServerCodec.self) {
            try? pipeline.addHandler(ParseErrorAnswer(), position: .before(codec.handler))
            try? pipeline.addHandler(HTTP10Framing(), position: .before(codec.handler))
            try? pipeline.addHandler(ImmediateContinue(maxBodyBytes: self.maxBodyBytes), position: .before(codec.handler))
        }
        pipeline.removeHandler(context: context, promise: nil)
    }
}

/// `100 Continue` as soon as a request that asks for it arrives (curl waits 1 s for it before it
/// sends a body over 1 MiB), unless it declares a body over the limit (the handler refuses it on
/// that length) or an answer is still being written (the 100 would fall into it). Hummingbird's
/// channel does not say when the handler reads the body, which ``LoopConnection`` waits for.
final class ImmediateContinue: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let maxBodyBytes: Int?
    /// Requests whose answer has not ended yet.
    private var open = 0

    init(maxBodyBytes: Int?) {
        self.maxBodyBytes = maxBodyBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = self.unwrapInboundIn(data) {
            self.open += 1
            let length = head.headers.first(name: "content-length").flatMap { Int($0) }
            if self.open == 1, head.version == .http1_1,
               head.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }),
               (length ?? 0) <= (self.maxBodyBytes ?? Int.max) {
                context.writeAndFlush(self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
            }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = self.unwrapOutboundIn(data) { self.open -= 1 }
        context.write(data, promise: promise)
    }
}
