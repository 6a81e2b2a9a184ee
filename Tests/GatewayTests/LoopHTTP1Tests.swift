import Foundation
import Testing

/// The plain HTTP/1.1 connection served from the event loops (`LoopHTTP1Channel`), on the real
/// binary, with what HTTP clients rarely send: pipelined requests, bytes that are not HTTP, and a
/// body that goes on after its answer.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: SluiceProcess.binary.path), "run `swift build --product sluice` first"))
struct LoopHTTP1Tests {
    static func count(_ needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    /// A gateway with `config` and a token for it, in a directory of its own; `stop()` ends both.
    struct Served {
        let directory: TemporaryDirectory
        let server: SluiceProcess
        let token: String

        init(_ name: String, config: String) async throws {
            self.directory = try TemporaryDirectory()
            let database = self.directory.path("\(name).db")
            self.token = try await OperationsTests.token(name, database: database)
            let file = self.directory.path("sluice.json")
            try Data(config.utf8).write(to: URL(fileURLWithPath: file))
            self.server = try await SluiceProcess.serve(database: database, arguments: ["--config", file])
        }

        func stop() {
            if self.server.process.isRunning { self.server.kill() }
            self.directory.remove()
        }
    }

    @Test("pipelined requests are answered in order, each after the one before; a Connection: close request's answer closes the connection")
    func pipelined() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await SluiceProcess.serve(database: directory.path("pipelined.db"))
        defer { if server.process.isRunning { server.kill() } }

        let connection = try RawConnection(port: server.port)
        // Three requests in one write: two health checks and a refused chat request with a body.
        let body = #"{"model":"m","messages":[]}"#
        #expect(connection.send(
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                + "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n"
                + "Connection: close\r\n\r\n\(body)"
        ))
        let (text, closed) = await connection.receive(for: .seconds(10))
        #expect(Self.count("HTTP/1.1 200 OK", in: text) == 2)
        #expect(Self.count("HTTP/1.1 401 Unauthorized", in: text) == 1)
        // In the order asked: both health checks before the refusal.
        let refusal = try #require(text.range(of: "HTTP/1.1 401"))
        #expect(text.range(of: "HTTP/1.1 200 OK", options: .backwards).map { $0.lowerBound < refusal.lowerBound } == true)
        #expect(text.contains("invalid_api_key"))
        #expect(closed, "the connection stays open after a Connection: close request was answered")
    }

    @Test("bytes that are not HTTP get a 400 and the connection is closed; the server goes on answering")
    func notHTTP() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await SluiceProcess.serve(database: directory.path("garbage.db"))
        defer { if server.process.isRunning { server.kill() } }

        let garbage = try RawConnection(port: server.port)
        #expect(garbage.send("HELLO THERE\r\n\r\n"))
        let (text, closed) = await garbage.receive(for: .seconds(10))
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request"))
        #expect(text.contains(#""message":"the request is not valid HTTP/1.1 (invalid HTTP method)""#), "\(text)")
        #expect(closed)

        // Headers over the parser's limits get a 431 that says so; HTTP/2 without TLS, which port it is.
        let big = try RawConnection(port: server.port)
        #expect(big.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 70_000) + "\r\n\r\n"))
        let (bigText, _) = await big.receive(for: .seconds(10))
        #expect(bigText.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large"), "\(bigText.prefix(200))")
        #expect(bigText.contains(#""code":"request_headers_too_large""#))
        let h2c = try RawConnection(port: server.port)
        #expect(h2c.send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
        #expect(await h2c.receive(for: .seconds(10)).text.contains("HTTP/2 without TLS is not served here"))

        let next = try RawConnection(port: server.port)
        #expect(next.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        let answer = await next.receive(for: .seconds(2))
        #expect(answer.text.hasPrefix("HTTP/1.1 200 OK"))
        #expect(!answer.closed)
    }

    @Test("a request refused before its body ended is answered at once; the rest of the body is read and dropped, then the connection closes")
    func answeredBeforeTheBody() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let server = try await SluiceProcess.serve(database: directory.path("early.db"))
        defer { if server.process.isRunning { server.kill() } }

        let connection = try RawConnection(port: server.port)
        let length = 2 * 1024 * 1024
        #expect(connection.send(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(length)\r\n\r\n"
        ))
        // No token: refused from the head alone, while the body has not started.
        let early = await connection.receive(for: .seconds(3))
        #expect(early.text.hasPrefix("HTTP/1.1 401 Unauthorized"))
        #expect(!early.closed, "closed before the client could send its body: a client that sends first would see a reset")
        // The whole body is still taken (a client that sends it all before reading gets no reset),
        // and then the connection closes: its state after an unread body is not worth keeping.
        #expect(connection.send([UInt8](repeating: 0x20, count: length)))
        let after = await connection.receive(for: .seconds(10))
        #expect(after.text.isEmpty)
        #expect(after.closed)
    }

    @Test("a body far over the limit, sent whole before anything is read (urllib): the 413 arrives, the rest is drained and the connection closes, without waiting for the idle timeout")
    func farOverTheLimit() async throws {
        let served = try await Served("urllib", config: #"{"server":{"maxBodyBytes":65536},"timeouts":{"clientIdleSeconds":30},"policies":[{"source":"group:admins"}]}"#)
        defer { served.stop() }
        let (server, token) = (served.server, served.token)

        let connection = try RawConnection(port: server.port)
        // 4 MiB: past the limit and the exchange's own drain allowance (another 64 KiB), so the
        // handler stops reading while most of the body is still coming.
        let length = 4 * 1024 * 1024
        let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(length)\r\nConnection: close\r\n\r\n"
        #expect(connection.send(Array(head.utf8) + [UInt8](repeating: 0x20, count: length)), "the body was not read to its end")
        let (text, closed) = await connection.receive(for: .seconds(15))
        #expect(text.hasPrefix("HTTP/1.1 413"))
        // Within 15 s: the idle timeout (30 s) did not close it.
        #expect(closed)
    }

    @Test("a stream's response, started on the event loop from Bedrock's head: the head every answer has (x-request-id, Date, Server, chunked), a whole body, and the connection goes on to the next request")
    func streamStartedOnTheLoop() async throws {
        let served = try await Served("loop", config: #"{"policies":[{"source":"group:admins"}]}"#)
        defer { served.stop() }
        let (server, token) = (served.server, served.token)

        let connection = try RawConnection(port: server.port)
        let ended: @Sendable ([UInt8]) -> Bool = { String(decoding: $0, as: UTF8.self).hasSuffix("\r\n0\r\n\r\n") }
        func post(_ path: String, _ body: String, id: String) -> Bool {
            connection.send(
                "POST \(path) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nx-request-id: \(id)\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
            )
        }
        func head(_ text: String) -> String { text.components(separatedBy: "\r\n\r\n")[0].lowercased() }

        #expect(post("/v1/chat/completions", chatRequest("hi [[sim chunks=3]]"), id: "loop-1"))
        let chat = await connection.receiveBytes(for: .seconds(10), until: ended)
        let chatText = String(decoding: chat.bytes, as: UTF8.self)
        #expect(head(chatText).hasPrefix("http/1.1 200 ok"))
        for field in ["content-type: text/event-stream", "x-request-id: loop-1", "date: ", "server: sluice", "transfer-encoding: chunked"] {
            #expect(head(chatText).contains("\r\n" + field), "\(field) is missing: \(head(chatText))")
        }
        #expect(chatText.contains("data: [DONE]"))
        #expect(!chat.closed)

        // The same connection, the Bedrock shape: its own head, and the relay's end handed the
        // connection back.
        let model = "eu.anthropic.claude-sonnet-4-5-20250929-v1%3A0"
        let body = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi [[sim chunks=2]]"}]}"#
        #expect(post("/bedrock/model/\(model)/invoke-with-response-stream", body, id: "loop-2"))
        let bedrock = await connection.receiveBytes(for: .seconds(10), until: ended)
        let bedrockHead = head(String(decoding: bedrock.bytes, as: UTF8.self))
        #expect(bedrockHead.hasPrefix("http/1.1 200 ok"))
        for field in ["content-type: application/vnd.amazon.eventstream", "x-request-id: loop-2", "date: ", "server: sluice"] {
            #expect(bedrockHead.contains("\r\n" + field), "\(field) is missing: \(bedrockHead)")
        }
        #expect(!bedrock.closed)

        #expect(connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        let health = await connection.receive(for: .seconds(2))
        #expect(health.text.hasPrefix("HTTP/1.1 200 OK"))
    }

    @Test("an HTTP/1.0 request is answered in HTTP/1.0 and the connection closes after the answer (ApacheBench waits for it); a stream's body is sent unchunked and ended by that close")
    func http10() async throws {
        let served = try await Served("ab", config: #"{"policies":[{"source":"group:admins"}]}"#)
        defer { served.stop() }
        let (server, token) = (served.server, served.token)

        let health = try RawConnection(port: server.port)
        #expect(health.send("GET /healthz HTTP/1.0\r\n\r\n"))
        let answer = await health.receive(for: .seconds(5))
        #expect(answer.text.hasPrefix("HTTP/1.0 200 OK"))
        #expect(answer.text.lowercased().contains("\r\nconnection: close\r\n"))
        #expect(answer.text.hasSuffix(#"{"status":"ok"}"#))
        #expect(answer.closed, "an HTTP/1.0 connection without keep-alive stays open after its answer")

        let stream = try RawConnection(port: server.port)
        let body = chatRequest("hi [[sim chunks=3]]")
        #expect(stream.send(
            "POST /v1/chat/completions HTTP/1.0\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\n"
                + "Expect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        ))
        let streamed = await stream.receive(for: .seconds(10))
        let parts = streamed.text.components(separatedBy: "\r\n\r\n")
        let head = parts[0].lowercased()
        #expect(head.hasPrefix("http/1.0 200 ok"), "\(head)")
        #expect(head.contains("content-type: text/event-stream"))
        #expect(!head.contains("transfer-encoding"), "HTTP/1.0 has no chunked framing: \(head)")
        // The events themselves, not chunk sizes between them, and no 100 (ignored in HTTP/1.0).
        #expect(parts.dropFirst().joined(separator: "\r\n\r\n").hasPrefix("data: {"))
        #expect(streamed.text.hasSuffix("data: [DONE]\n\n"))
        #expect(!streamed.text.contains("100 Continue"))
        #expect(streamed.closed, "the close that ends an unframed body did not come")
    }

    @Test("Expect: 100-continue: the 100 comes when the body is wanted, and the answer after it; a declared length over the limit is refused at once, without a 100")
    func expectContinue() async throws {
        let served = try await Served("curl", config: #"{"server":{"maxBodyBytes":65536},"policies":[{"source":"group:admins"}]}"#)
        defer { served.stop() }
        let (server, token) = (served.server, served.token)
        func head(_ length: Int) -> String {
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\n"
                + "Expect: 100-continue\r\nContent-Length: \(length)\r\n\r\n"
        }

        let connection = try RawConnection(port: server.port)
        let body = chatRequest("hi", stream: false)
        #expect(connection.send(head(body.utf8.count)))
        // curl waits 1 s for it, then sends anyway: the 100 is what it waits for, not the timeout.
        let continued = await connection.receiveBytes(for: .seconds(5)) { String(decoding: $0, as: UTF8.self).hasSuffix("\r\n\r\n") }
        #expect(String(decoding: continued.bytes, as: UTF8.self) == "HTTP/1.1 100 Continue\r\n\r\n")
        #expect(connection.send(body))
        let answered = await connection.receive(for: .seconds(2))
        #expect(answered.text.hasPrefix("HTTP/1.1 200 OK"))
        #expect(answered.text.contains("chat.completion"))
        #expect(!answered.closed)

        // Over the limit: refused on the declared length; the body is never asked for.
        let large = try RawConnection(port: server.port)
        #expect(large.send(head(1024 * 1024)))
        let refused = await large.receive(for: .seconds(2))
        #expect(refused.text.hasPrefix("HTTP/1.1 413"), "\(refused.text)")
        #expect(!refused.text.contains("100 Continue"))
    }
}
