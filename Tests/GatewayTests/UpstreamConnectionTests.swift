import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing

@testable import Gateway

/// The upstream HTTP/1.1 client: its response parser on every way a response can be cut into reads,
/// and its connections against an upstream that does what Bedrock never should (a stand-in on a raw
/// socket, scripted per request), through the real gateway.
struct HTTP1ResponseParserTests {
    struct Parsed {
        var heads: [HTTPResponseHead] = []
        var body = ByteBuffer()
        var ended = false
        var keepAlive = false
        /// What was left in the read after the end.
        var rest = 0
    }

    /// Feeds `pieces` as reads; `closed` tells the parser the connection closed after them.
    static func parse(_ pieces: [String], closed: Bool = false) throws -> Parsed {
        var parser = HTTP1ResponseParser()
        var parsed = Parsed()
        for piece in pieces {
            var buffer = ByteBuffer(string: piece)
            while !parsed.ended, let event = try parser.next(&buffer) {
                switch event {
                case .head(let head): parsed.heads.append(head)
                case .body(var part): parsed.body.writeBuffer(&part)
                case .end: parsed.ended = true
                }
            }
            parsed.rest += buffer.readableBytes
        }
        if closed, !parsed.ended { parsed.ended = parser.closed() }
        parsed.keepAlive = parser.keepAlive
        return parsed
    }

    /// Every split of `text` in two, and one byte at a time: each must parse as the whole does.
    static func splits(_ text: String) -> [[String]] {
        let bytes = Array(text.utf8)
        var splits = (0...bytes.count).map { cut in
            [String(decoding: bytes[..<cut], as: UTF8.self), String(decoding: bytes[cut...], as: UTF8.self)]
        }
        splits.append(bytes.map { String(decoding: [$0], as: UTF8.self) })
        return splits
    }

    static let chunked =
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\nX-Amzn-RequestId: abc\r\n\r\n"
        + "5\r\nhello\r\n1;ext=\"a b\"\r\n \r\n0000000000000A\r\nworld!!!!!\r\n0\r\nX-Trailer: yes\r\n\r\n"

    @Test("a chunked body, cut into reads at every byte: the same head, bytes and end; extensions and trailers skipped")
    func chunkedAtEveryCut() throws {
        for pieces in Self.splits(Self.chunked) {
            let parsed = try Self.parse(pieces)
            #expect(parsed.heads.count == 1)
            #expect(parsed.heads.first?.status == .ok)
            #expect(parsed.heads.first?.headers["x-amzn-requestid"] == ["abc"])
            #expect(String(buffer: parsed.body) == "hello world!!!!!")
            #expect(parsed.ended)
            #expect(parsed.keepAlive)
            #expect(parsed.rest == 0)
        }
    }

    @Test("Content-Length: the body ends at its length; what follows is left for the next response")
    func contentLength() throws {
        let text = "HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\n\r\n{\"a\":\"bcd\"}"
        for pieces in Self.splits(text) {
            let parsed = try Self.parse(pieces)
            #expect(parsed.heads.first?.status == .badRequest)
            #expect(String(buffer: parsed.body) == "{\"a\":\"bcd\"}")
            #expect(parsed.ended)
            #expect(parsed.keepAlive)
        }
        let extra = try Self.parse([text + "HTTP/1.1 200"])
        #expect(extra.ended)
        #expect(extra.rest == "HTTP/1.1 200".utf8.count)
    }

    @Test("no length: the body runs to the close, and the connection is not kept")
    func untilClose() throws {
        let parsed = try Self.parse(["HTTP/1.1 200 OK\r\n\r\nabc", "def"], closed: true)
        #expect(String(buffer: parsed.body) == "abcdef")
        #expect(parsed.ended)
        #expect(!parsed.keepAlive)
        // A chunked body cut by the close is not complete.
        let cut = try Self.parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel"], closed: true)
        #expect(!cut.ended)
        let short = try Self.parse(["HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"], closed: true)
        #expect(!short.ended)
    }

    @Test("interim 100 Continue is skipped; 204 has no body; Connection: close and HTTP/1.0 are not kept alive")
    func headsAndKeepAlive() throws {
        let continued = try Self.parse(["HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])
        #expect(continued.heads.map(\.status) == [.ok])
        #expect(String(buffer: continued.body) == "ok")
        let empty = try Self.parse(["HTTP/1.1 204 No Content\r\n\r\n"])
        #expect(empty.ended)
        #expect(empty.body.readableBytes == 0)
        #expect(try !Self.parse(["HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n"]).keepAlive)
        #expect(try !Self.parse(["HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"]).keepAlive)
        #expect(try Self.parse(["HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"]).keepAlive)
        // A length beside chunked coding: the coding frames the body, and the connection is not reused.
        let both = try Self.parse(["HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"])
        #expect(String(buffer: both.body) == "ok")
        #expect(both.ended)
        #expect(!both.keepAlive)
    }

    @Test(
        "what is not HTTP/1.1 is refused, not guessed at",
        arguments: [
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 099 Low\r\n\r\n",
            "banana\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\n: empty\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        ]
    )
    func malformed(text: String) {
        #expect(throws: HTTP1ResponseParser.Malformed.self) { try Self.parse([text]) }
        // Byte by byte too: the verdict does not depend on how the reads fall.
        #expect(throws: HTTP1ResponseParser.Malformed.self) { try Self.parse(text.utf8.map { String(decoding: [$0], as: UTF8.self) }) }
    }

    @Test("a head that never ends, or a chunk-size line that never ends, is refused at its limit, not kept growing")
    func limits() throws {
        let header = "HTTP/1.1 200 OK\r\n" + String(repeating: "X-Padding: \(String(repeating: "a", count: 1000))\r\n", count: 70)
        #expect(throws: HTTP1ResponseParser.Malformed.self) { try Self.parse([header]) }
        let line = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1" + String(repeating: " ", count: 5000)
        #expect(throws: HTTP1ResponseParser.Malformed.self) { try Self.parse([line]) }
        // Under the limits: fine.
        let padded = "HTTP/1.1 200 OK\r\n" + String(repeating: "X-Padding: \(String(repeating: "a", count: 1000))\r\n", count: 30) + "Content-Length: 0\r\n\r\n"
        #expect(try Self.parse([padded]).ended)
    }
}

/// An upstream on a raw socket that answers each request as its script says, and counts the
/// connections it accepted and the requests it read.
final class ScriptedUpstream: Sendable {
    enum Reply: Sendable {
        /// These bytes, and the connection stays open.
        case send(String)
        /// These bytes, then the connection is closed.
        case sendAndClose(String)
        /// The first bytes, then the second in one write after `delay` (the connection stays open).
        case sendLater(String, then: String, after: TimeAmount)
    }

    /// The reply to the `request`-th request overall (from 0), the `onConnection`-th request on its connection.
    typealias Script = @Sendable (_ request: Int, _ onConnection: Int) -> Reply

    private let channel: any Channel
    private let counts: Counts
    var port: Int { self.channel.localAddress?.port ?? 0 }
    var connections: Int { self.counts.connections.load(ordering: .relaxed) }
    var requests: Int { self.counts.requests.load(ordering: .relaxed) }

    final class Counts: Sendable {
        let connections = Atomic(0)
        let requests = Atomic(0)
    }

    init(port: Int = 0, script: @escaping Script) async throws {
        let counts = Counts()
        self.counts = counts
        self.channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                counts.connections.add(1, ordering: .relaxed)
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(counts: counts, script: script))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
    }

    func close() async {
        try? await self.channel.close()
    }

    /// Reads whole requests (head, then `Content-Length` bytes) and answers each.
    final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private let counts: Counts
        private let script: Script
        private let state = Mutex<(buffer: ByteBuffer, onConnection: Int)>((ByteBuffer(), 0))

        init(counts: Counts, script: @escaping Script) {
            self.counts = counts
            self.script = script
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = self.unwrapInboundIn(data)
            var replies: [Reply] = []
            self.state.withLock { state in
                state.buffer.writeBuffer(&bytes)
                while let request = Self.takeRequest(&state.buffer) {
                    _ = request
                    let index = self.counts.requests.wrappingAdd(1, ordering: .relaxed).oldValue
                    replies.append(self.script(index, state.onConnection))
                    state.onConnection += 1
                }
            }
            for reply in replies {
                switch reply {
                case .send(let text):
                    context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
                case .sendAndClose(let text):
                    context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
                    context.close(promise: nil)
                    return
                case .sendLater(let text, let later, let delay):
                    context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
                    let channel = context.channel
                    context.eventLoop.scheduleTask(in: delay) { channel.writeAndFlush(ByteBuffer(string: later), promise: nil) }
                }
            }
        }

        static func takeRequest(_ buffer: inout ByteBuffer) -> String? {
            let text = String(buffer: buffer)
            guard let headEnd = text.range(of: "\r\n\r\n") else { return nil }
            let head = text[..<headEnd.lowerBound]
            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
            let total = text.utf8.distance(from: text.utf8.startIndex, to: headEnd.upperBound) + length
            guard buffer.readableBytes >= total else { return nil }
            return buffer.readString(length: total)
        }
    }

    static func converse(_ text: String, connection: String = "") -> String {
        let body = #"{"output":{"message":{"role":"assistant","content":[{"text":"\#(text)"}]}},"stopReason":"end_turn","usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4}}"#
        return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\(connection)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }
}

@Suite(.serialized)
struct UpstreamConnectionTests {
    static func run(_ script: @escaping ScriptedUpstream.Script, _ body: @Sendable (LiveStack, ScriptedUpstream) async throws -> Void) async throws {
        let upstream = try await ScriptedUpstream(script: script)
        let port = upstream.port
        do {
            try await LiveStack.run(configure: { $0.upstream.endpoint = URL(string: "http://127.0.0.1:\(port)") }) { stack in
                try await body(stack, upstream)
            }
        } catch {
            await upstream.close()
            throw error
        }
        await upstream.close()
    }

    static func answer(_ stack: LiveStack, _ prompt: String) async throws -> (HTTPResponseStatus, [String: Any]) {
        let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest(prompt, stream: false))
        let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] ?? [:]
        return (status, object)
    }

    static func content(_ object: [String: Any]) -> String? {
        ((object["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
    }

    static func errorCode(_ object: [String: Any]) -> String? {
        (object["error"] as? [String: Any])?["code"] as? String
    }

    @Test("sequential requests reuse one kept-alive connection; Connection: close gets a new one")
    func keepAlive() async throws {
        try await Self.run({ request, _ in
            .send(ScriptedUpstream.converse("answer \(request)", connection: request == 2 ? "Connection: close\r\n" : ""))
        }) { stack, upstream in
            for index in 0..<5 {
                let (status, object) = try await Self.answer(stack, "hello")
                #expect(status == .ok)
                #expect(Self.content(object) == "answer \(index)")
            }
            #expect(upstream.requests == 5)
            // The third answer said close: the fourth and fifth went on a second connection.
            #expect(upstream.connections == 2)
        }
    }

    @Test("a kept-alive connection the upstream closes instead of answering: the request goes again on a new one, once")
    func staleConnection() async throws {
        try await Self.run({ request, onConnection in
            // Every connection answers its first request and drops the second unanswered.
            onConnection == 0 ? .send(ScriptedUpstream.converse("answer \(request)")) : .sendAndClose("")
        }) { stack, upstream in
            for _ in 0..<3 {
                let (status, object) = try await Self.answer(stack, "hello")
                #expect(status == .ok)
                #expect(Self.content(object)?.hasPrefix("answer") == true)
            }
            // 1st on A; 2nd dropped on A, answered on B; 3rd dropped on B, answered on C.
            #expect(upstream.connections == 3)
            #expect(upstream.requests == 5)
        }
        // A new connection that closes without answering is not tried again: the client hears of it.
        try await Self.run({ _, _ in .sendAndClose("") }) { stack, upstream in
            let (status, object) = try await Self.answer(stack, "hello")
            #expect(status == .badGateway)
            #expect(Self.errorCode(object) == "upstream_disconnected")
            #expect(upstream.requests == 1)
        }
    }

    @Test("a response that is not HTTP/1.1 is a 502 upstream_malformed_response; the next request gets a new connection")
    func malformed() async throws {
        try await Self.run({ request, _ in
            request == 0 ? .send("HTTP/1.1 banana\r\n\r\n") : .send(ScriptedUpstream.converse("fine"))
        }) { stack, upstream in
            let (status, object) = try await Self.answer(stack, "hello")
            #expect(status == .badGateway)
            #expect(Self.errorCode(object) == "upstream_malformed_response")
            let (again, answer) = try await Self.answer(stack, "hello")
            #expect(again == .ok)
            #expect(Self.content(answer) == "fine")
            #expect(upstream.connections == 2)
        }
    }

    @Test("a body cut by the close before its length: 502 upstream_disconnected, not a short answer")
    func cutBody() async throws {
        try await Self.run({ _, _ in
            .sendAndClose("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"output\":")
        }) { stack, _ in
            let (status, object) = try await Self.answer(stack, "hello")
            #expect(status == .badGateway)
            #expect(Self.errorCode(object) == "upstream_disconnected")
        }
    }

    @Test("at the connection limit a call waits for a connection to come free, then runs on it")
    func connectionLimit() async throws {
        let upstream = try await ScriptedUpstream(script: { request, _ in .send(ScriptedUpstream.converse("answer \(request)")) })
        let port = upstream.port
        let client = UpstreamClient(
            endpoint: try #require(URL(string: "http://127.0.0.1:\(port)")), region: "us-east-1", authentication: .none,
            timeouts: GatewayConfiguration.Timeouts(), maxConnections: 1
        )
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let calls = try (0..<3).map { _ in
            try client.start(operation: .converse, modelID: "m", body: ByteBuffer(string: "{}"), firstByte: .seconds(10), loop: loop, logger: .init(label: "test"))
        }
        var answers: [String] = []
        for call in calls {
            let head = try await call.head()
            #expect(head.status == .ok)
            // Answered: the request is not kept for the rest of the call.
            #expect(call.request.readableBytes == 0)
            answers.append(String(buffer: try await call.collect(upTo: 1 << 16)))
        }
        #expect(answers.count == 3)
        #expect(Set(answers).count == 3)
        #expect(upstream.connections == 1)
        #expect(upstream.requests == 3)
        try await client.shutdown()
        // Shut down: refused, not left waiting.
        let late = try client.start(operation: .converse, modelID: "m", body: ByteBuffer(string: "{}"), firstByte: .seconds(10), loop: loop, logger: .init(label: "test"))
        await #expect(throws: UpstreamTransportError.self) { try await late.head() }
        await upstream.close()
    }

    /// A ConverseStream call to `upstream` whose head came (200), its body not yet taken.
    static func answeredStream(from upstream: ScriptedUpstream) async throws -> (UpstreamClient, any EventLoop, UpstreamCall) {
        let client = UpstreamClient(
            endpoint: try #require(URL(string: "http://127.0.0.1:\(upstream.port)")), region: "us-east-1", authentication: .none,
            timeouts: GatewayConfiguration.Timeouts()
        )
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let call = try client.start(
            operation: .converseStream, modelID: "m", body: ByteBuffer(string: "{}"), firstByte: .seconds(10), loop: loop, logger: .init(label: "test")
        )
        #expect(try await call.head().status == .ok)
        return (client, loop, call)
    }

    @Test("a read that brings several parts of the body: each is received, then one flush for the read")
    func oneFlushPerRead() async throws {
        let upstream = try await ScriptedUpstream(script: { _, _ in
            .sendLater("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", then: "3\r\naaa\r\n3\r\nbbb\r\n3\r\nccc\r\n", after: .milliseconds(300))
        })
        let (client, loop, call) = try await Self.answeredStream(from: upstream)
        let (events, received) = AsyncStream.makeStream(of: String.self)
        try await loop.submit {
            call.relay(
                into: UpstreamBodySink(
                    receive: { part in
                        received.yield(String(buffer: part))
                        return nil
                    },
                    ended: { _ in received.finish() },
                    readComplete: { received.yield("<flush>") }
                )
            )
        }.get()
        var all: [String] = []
        for await event in events {
            all.append(event)
            if all.count == 4 { break }
        }
        // The three parts came in one write of the upstream's, so in one read: one flush, after them.
        #expect(all == ["aaa", "bbb", "ccc", "<flush>"])
        call.cancel()
        try await client.shutdown()
        await upstream.close()
    }

    @Test("an upstream that closes after its response while the consumer is not ready: the held rest is delivered, then the end")
    func closeWhilePaused() async throws {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\naaa\r\n3\r\nbbb\r\n3\r\nccc\r\n0\r\n\r\n"
        let upstream = try await ScriptedUpstream(script: { _, _ in .sendAndClose(chunked) })
        let (client, loop, call) = try await Self.answeredStream(from: upstream)
        let (parts, received) = AsyncStream.makeStream(of: String.self)
        let gate = loop.makePromise(of: Void.self)
        try await loop.submit {
            let first = NIOLoopBoundBox(true, eventLoop: loop)
            call.relay(
                into: UpstreamBodySink(
                    receive: { part in
                        received.yield(String(buffer: part))
                        // Not ready after the first part: the rest is held while the upstream closes.
                        guard first.value else { return nil }
                        first.value = false
                        return gate.futureResult
                    },
                    ended: { error in
                        received.yield(error == nil ? "<end>" : "<error: \(error.map { "\($0)" } ?? "")>")
                        received.finish()
                    }
                )
            )
        }.get()
        // The close arrives while the consumer holds the first part back.
        try await Task.sleep(for: .milliseconds(300))
        gate.succeed()
        var all: [String] = []
        for await part in parts { all.append(part) }
        #expect(all == ["aaa", "bbb", "ccc", "<end>"])
        try await client.shutdown()
        await upstream.close()
    }

    @Test("a connection unused for the idle time is closed; the next call opens a new one")
    func idleConnectionsClosed() async throws {
        let upstream = try await ScriptedUpstream(script: { request, _ in .send(ScriptedUpstream.converse("answer \(request)")) })
        let client = UpstreamClient(
            endpoint: try #require(URL(string: "http://127.0.0.1:\(upstream.port)")), region: "us-east-1", authentication: .none,
            timeouts: GatewayConfiguration.Timeouts(), idleConnectionTimeout: .milliseconds(200)
        )
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        func answer() async throws -> String {
            let call = try client.start(operation: .converse, modelID: "m", body: ByteBuffer(string: "{}"), firstByte: .seconds(10), loop: loop, logger: .init(label: "test"))
            _ = try await call.head()
            return String(buffer: try await call.collect(upTo: 1 << 16))
        }
        _ = try await answer()
        _ = try await answer()
        #expect(upstream.connections == 1)
        try await Task.sleep(for: .milliseconds(600))
        _ = try await answer()
        #expect(upstream.connections == 2)
        try await client.shutdown()
        await upstream.close()
    }

    @Test("the only upstream, not listening yet: connecting is tried again until it is, within the connect time limit")
    func connectRetried() async throws {
        // A port that was free a moment ago.
        let probe = try await ScriptedUpstream(script: { _, _ in .send("") })
        let port = probe.port
        await probe.close()
        // Long: at the start of the whole suite on two cores the test's own task can wait seconds.
        var timeouts = GatewayConfiguration.Timeouts()
        timeouts.connect = .seconds(60)
        let client = UpstreamClient(
            endpoint: try #require(URL(string: "http://127.0.0.1:\(port)")), region: "us-east-1", authentication: .none, timeouts: timeouts
        )
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let call = try client.start(operation: .converse, modelID: "m", body: ByteBuffer(string: "{}"), firstByte: .seconds(60), loop: loop, logger: .init(label: "test"))
        try await Task.sleep(for: .milliseconds(400))
        let upstream = try await ScriptedUpstream(port: port, script: { _, _ in .send(ScriptedUpstream.converse("late")) })
        #expect(try await call.head().status == .ok)
        #expect(String(buffer: try await call.collect(upTo: 1 << 16)).contains("late"))
        try await client.shutdown()
        await upstream.close()
        // One of several (no retry): refused at once, as upstream_unreachable.
        let single = UpstreamClient(
            endpoint: try #require(URL(string: "http://127.0.0.1:\(port)")), region: "us-east-1", authentication: .none, timeouts: timeouts,
            retriesConnecting: false
        )
        let refused = try single.start(operation: .converse, modelID: "m", body: ByteBuffer(string: "{}"), firstByte: .seconds(10), loop: loop, logger: .init(label: "test"))
        // Retrying until the 60 s connect limit would end at the first-byte limit instead, as a GatewayError.
        let error = await #expect(throws: UpstreamTransportError.self) { try await refused.head() }
        #expect(error.map { UpstreamFailure.describe($0).code } == .upstreamUnreachable)
        try await single.shutdown()
    }

    @Test("the request as sent: one write with Host, the fields and Content-Length; a field that could end its line is refused")
    func serialize() throws {
        let request = try UpstreamClient.serialize(
            path: "/model/m/converse", host: "example.com:8443", fields: [("Content-Type", "application/json"), ("anthropic-beta", "a,b")],
            body: ByteBuffer(string: "{}")
        )
        #expect(
            String(buffer: request)
                == "POST /model/m/converse HTTP/1.1\r\nHost: example.com:8443\r\nContent-Type: application/json\r\nanthropic-beta: a,b\r\nContent-Length: 2\r\n\r\n{}"
        )
        #expect(throws: GatewayError.self) {
            try UpstreamClient.serialize(path: "/", host: "h", fields: [("X-A", "1\r\nX-Injected: 2")], body: ByteBuffer())
        }
        #expect(throws: GatewayError.self) {
            try UpstreamClient.serialize(path: "/", host: "h", fields: [("X A", "1")], body: ByteBuffer())
        }
    }
}
