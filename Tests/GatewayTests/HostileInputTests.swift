import AsyncHTTPClient
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A plain TCP connection, for what no HTTP client will send: ten thousand headers, a trickle.
final class RawConnection: Sendable {
    let descriptor: Int32

    init(port: Int) throws {
        self.descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(self.descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CrashTestError(message: "connect failed: \(errno)") }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(self.descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(self.descriptor) }

    /// Sends all of `bytes`; false when the peer has closed.
    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(self.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    func send(_ text: String) -> Bool { self.send(Array(text.utf8)) }

    /// Reads what arrives within `timeout`: the bytes and whether the peer closed.
    ///
    /// The blocking reads run on a Dispatch thread. Swift Testing runs suites in parallel on the
    /// cooperative pool, which has one thread per core (two here). Seconds of blocking `recv` on one
    /// of them stalled every other test by ~20 s, long enough for the tests that need a stream still
    /// open to miss it.
    func receive(for timeout: Duration) async -> (text: String, closed: Bool) {
        let (bytes, closed) = await self.receiveBytes(for: timeout)
        return (String(decoding: bytes, as: UTF8.self), closed)
    }

    /// The bytes that arrive within `timeout` (or until `done` says they are enough), and whether
    /// the peer closed.
    func receiveBytes(for timeout: Duration, until done: @escaping @Sendable ([UInt8]) -> Bool = { _ in false }) async -> (bytes: [UInt8], closed: Bool) {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: self.receiveBlocking(for: timeout, until: done)) }
        }
    }

    private func receiveBlocking(for timeout: Duration, until done: ([UInt8]) -> Bool) -> (bytes: [UInt8], closed: Bool) {
        var received: [UInt8] = []
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            let count = buffer.withUnsafeMutableBytes { recv(self.descriptor, $0.baseAddress, $0.count, 0) }
            if count == 0 { return (received, true) }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                return (received, true)
            }
            received += buffer[0..<count]
            if done(received) { break }
        }
        return (received, false)
    }
}

@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: SluiceProcess.binary.path), "run `swift build --product sluice` first"))
struct HostileInputTests {
    static func residentBytes(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kilobytes * 1024
    }

    @Test("oversize body, 10,000 headers, 1,000-deep JSON, invalid UTF-8, 100,000 messages, slowloris and a stalled body: each refused cleanly; the server answers afterwards and its memory returns to baseline")
    func hostileInputs() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.path("hostile.db")
        let config = directory.path("sluice.json")
        let token = try await OperationsTests.token("mallory", database: database)
        // A config file without policies denies everything: give the built-in admin rule back.
        // requestBodySeconds 10, not less: under the whole suite on 2 cores, sending the 3 MB body of
        // 100,000 messages took over 2 s once, and the 33 MiB oversize body over 4 s (the server
        // rightly closed on both, and the client saw a broken pipe). clientIdleSeconds
        // 3, not 1: the client's event loop shares the test process with the whole suite, and a new
        // connection it could not write to for a second was closed as idle before its request
        // (remoteConnectionClosed, in 2 of 4 full runs); the slowloris and stalled-body checks below
        // still see their connections closed well inside their bounds.
        try Data(#"{"timeouts":{"clientIdleSeconds":3,"requestBodySeconds":10},"policies":[{"source":"group:admins"}]}"#.utf8)
            .write(to: URL(fileURLWithPath: config))
        let server = try await SluiceProcess.serve(database: database, arguments: ["--config", config])
        defer { if server.process.isRunning { server.kill() } }
        let pid = server.process.processIdentifier
        let url = "http://127.0.0.1:\(server.port)/v1/chat/completions"

        try await HTTPClient.withHTTPClient { client in
            func post(_ body: ByteBuffer, line: Int = #line) async throws -> (HTTPResponseStatus, String) {
                do {
                    return try await send(body)
                } catch {
                    Issue.record("request at line \(line): \(error)")
                    throw error
                }
            }
            func send(_ body: ByteBuffer) async throws -> (HTTPResponseStatus, String) {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                // A connection per request: this server closes connections idle for 3 s, and a pooled
                // one it closes just as the client picks it up fails with "I/O on closed channel"
                // (CI saw it after building the 100,000-message body took about that long).
                request.headers.add(name: "Connection", value: "close")
                request.body = .bytes(body)
                let response = try await client.execute(request, timeout: .seconds(60))
                return (response.status, String(buffer: try await response.body.collect(upTo: 1 << 20)))
            }
            func normal() async throws {
                let body = ByteBuffer(string: chatRequest("still there? [[sim chunks=3]]"))
                // One more try when the connection was closed before any answer: under the whole suite
                // on 2 cores the server's loop (a debug build in its own process) was once starved
                // past the idle limit between accepting a connection and reading its request, and
                // closed it as idle (remoteConnectionClosed). These are the "still answering" checks,
                // not the hostile inputs; a server that stopped answering fails both tries.
                let answer: (HTTPResponseStatus, String)
                if let first = try? await send(body) { answer = first } else { answer = try await post(body) }
                let (status, text) = answer
                #expect(status == .ok)
                #expect(text.hasSuffix("data: [DONE]\n\n"))
            }
            try await normal()
            for _ in 0..<20 { try await normal() }
            let baseline = Self.residentBytes(pid)

            // A body over the 32 MiB limit.
            var huge = ByteBuffer()
            huge.writeString(#"{"model":"claude-sonnet","messages":[{"role":"user","content":""#)
            huge.writeRepeatingByte(UInt8(ascii: "a"), count: 33 * 1024 * 1024)
            huge.writeString(#""}]}"#)
            do {
                let (status, text) = try await post(huge)
                #expect(status == .payloadTooLarge)
                #expect(text.contains("request_too_large"))
            } catch {
                // The server may close the connection after answering, while the client still sends.
                Issue.record("oversize body: \(error)")
            }
            huge = ByteBuffer()

            // JSON nested 1,000 deep inside the content.
            let deep = #"{"model":"claude-sonnet","messages":[{"role":"user","content":"x"}],"tools":"# + String(repeating: "[", count: 1000)
                + String(repeating: "]", count: 1000) + "}"
            let (deepStatus, deepText) = try await post(ByteBuffer(string: deep))
            #expect(deepStatus == .badRequest)
            #expect(deepText.contains("nest") || deepText.contains("deep"), "\(deepText)")

            // Invalid UTF-8 in a string.
            var invalid = ByteBuffer(string: #"{"model":"claude-sonnet","messages":[{"role":"user","content":"bad "#)
            invalid.writeBytes([0xFF, 0xFE, 0xC0, 0x80])
            invalid.writeString(#""}]}"#)
            let (invalidStatus, invalidText) = try await post(invalid)
            #expect(invalidStatus == .badRequest)
            #expect(invalidText.contains("invalid_request_error"))

            // 100,000 messages.
            var many = ByteBuffer(string: #"{"model":"claude-sonnet","messages":["#)
            for index in 0..<100_000 {
                if index > 0 { many.writeString(",") }
                many.writeString(index % 2 == 0 ? #"{"role":"user","content":"hi"}"# : #"{"role":"assistant","content":"ok"}"#)
            }
            many.writeString("]}")
            let (manyStatus, manyText) = try await post(many)
            #expect(manyStatus == .badRequest)
            #expect(manyText.contains(#""param":"messages""#))
            many = ByteBuffer()

            // 10,000 headers: the parser's limit (256) refuses them; the connection closes.
            let flood = try RawConnection(port: server.port)
            var head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            for index in 0..<10_000 { head += "x-h\(index): v\r\n" }
            head += "\r\n"
            _ = flood.send(head)
            let floodAnswer = await flood.receive(for: .seconds(5))
            #expect(floodAnswer.closed || floodAnswer.text.hasPrefix("HTTP/1.1 4"), "\(floodAnswer.text.prefix(200))")
            #expect(!floodAnswer.text.hasPrefix("HTTP/1.1 2"))

            // Slowloris: headers one byte at a time, never finished. Closed after the idle limit (3 s).
            let slow = try RawConnection(port: server.port)
            let started = ContinuousClock.now
            var closed = false
            for byte in Array("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 200) {
                if !slow.send([byte]) {
                    closed = true
                    break
                }
                if await slow.receive(for: .milliseconds(100)).closed {
                    closed = true
                    break
                }
            }
            #expect(closed, "a slowloris connection stayed open")
            #expect(ContinuousClock.now - started < .seconds(8))

            // A stalled body: complete headers, part of the body, then nothing: closed after the idle limit.
            let stalled = try RawConnection(port: server.port)
            let stalledAt = ContinuousClock.now
            _ = stalled.send(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\":"
            )
            #expect(await stalled.receive(for: .seconds(6)).closed)
            #expect(ContinuousClock.now - stalledAt < .seconds(5))

            // A trickled body (a byte every 150 ms keeps the connection from idling): 408 once the
            // body has taken longer than requestBodySeconds (10 s).
            let trickle = try RawConnection(port: server.port)
            _ = trickle.send(
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
            )
            var trickleAnswer = ""
            for _ in 0..<100 {
                guard trickle.send(" ") else { break }
                let (text, closed) = await trickle.receive(for: .milliseconds(150))
                trickleAnswer += text
                if closed || !trickleAnswer.isEmpty { break }
            }
            #expect(trickleAnswer.hasPrefix("HTTP/1.1 408"), "\(trickleAnswer.prefix(200))")
            #expect(trickleAnswer.contains("request_body_timeout"))

            // Still up, still right, and back to its baseline memory.
            for _ in 0..<20 { try await normal() }
            let after = Self.residentBytes(pid)
            print("hostile inputs: RSS baseline \(baseline / 1024) KiB, after \(after / 1024) KiB")
            #expect(after < baseline + 8 * 1024 * 1024, "RSS grew from \(baseline) to \(after)")
        }
        #expect(server.process.isRunning)
        server.signal(SIGTERM)
        #expect(try await server.waitForExit(timeout: .seconds(15)) == 0)
    }
}
