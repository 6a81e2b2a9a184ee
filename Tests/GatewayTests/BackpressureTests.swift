import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

/// Backpressure end to end: a client that stops reading stops the gateway reading upstream, so the
/// gateway's memory does not grow with the response.
@Suite(.serialized)
struct BackpressureTests {
    /// 20,000 frames of ~4 KiB: about 80 MiB upstream, far beyond every socket buffer on the way.
    static func bigStream(
        url: String, prompt: String = "big [[sim chunks=20000 chunk_size=4096]]", authorization: (inout HTTPHeaders) -> Void
    ) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        authorization(&request.headers)
        request.body = .bytes(ByteBuffer(string: chatRequest(prompt)))
        return request
    }

    /// Reads slowly: a part (a few KiB), then a pause, for two seconds. Returns the bytes read.
    static func readSlowly(_ response: HTTPClientResponse) async throws -> Int {
        var received = 0
        var iterator = response.body.makeAsyncIterator()
        for _ in 0..<20 {
            guard let part = try await iterator.next() else { break }
            received += part.readableBytes
            try await Task.sleep(for: .milliseconds(100))
        }
        return received
    }

    /// A response's body, read by `start` and then to its end, or a failure that says how far it got
    /// when it does not end within `limit`: a test that waits for ever tells nothing (CI once stalled
    /// in this suite for 15 minutes: the client had every byte but the response's last chunk).
    static func read<Value: Sendable>(
        _ response: HTTPClientResponse, within limit: Duration, stack: LiveStack,
        start: @escaping @Sendable (inout HTTPClientResponse.Body.AsyncIterator, inout ByteBuffer) async throws -> Value
    ) async throws -> (ByteBuffer, Value?) {
        let progress = Progress<Value>()
        let finished = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                var iterator = response.body.makeAsyncIterator()
                var body = ByteBuffer()
                let value = try await start(&iterator, &body)
                progress.state.withLock { $0 = (body, value) }
                while var part = try await iterator.next() {
                    progress.state.withLock { _ = $0.body.writeBuffer(&part) }
                }
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let first = try await group.next() ?? false
            group.cancelAll()
            return first
        }
        let (received, value) = progress.state.withLock { $0 }
        if !finished {
            let tail = received.getString(at: received.readerIndex + max(0, received.readableBytes - 120), length: min(120, received.readableBytes)) ?? ""
            let responses = stack.audit.all.filter { $0.contains(#""event":"response""#) }.count
            Issue.record("the body did not end within \(limit): \(received.readableBytes) bytes so far, ending \(tail.debugDescription); response audit lines: \(responses)")
        }
        return (received, value)
    }

    private final class Progress<Value: Sendable>: Sendable {
        let state = Mutex<(body: ByteBuffer, value: Value?)>((ByteBuffer(), nil))
    }

    @Test("a slow reader holds the upstream back: bounded frames in flight, flat memory")
    func slowReader() async throws {
        try await LiveStack.run { stack in
            let request = Self.bigStream(url: stack.gateway + "/v1/chat/completions") { stack.authorize(&$0, unless: []) }
            let response = try await stack.client.execute(request, timeout: .seconds(60))
            let received = try await Self.readSlowly(response)
            let entry = try #require(stack.recorder.entries.first)
            let written = entry.framesWritten
            print("slow reader: the simulator wrote \(written) of 20,000 frames while the client read \(received) bytes")
            // Had the gateway buffered, the simulator would have written all 20,000 frames by now.
            #expect(written > 0 && written < 10_000, "simulator wrote \(written) frames while the client read \(received) bytes")
        }
    }

    /// The idle time limit is the upstream's: a client that holds the stream back for longer (the
    /// upstream is not read meanwhile) gets the whole stream once it reads again, not a stall error.
    @Test("a client that pauses longer than the idle limit gets the whole stream: the pause is not the upstream's")
    func pausedReaderIsNotIdle() async throws {
        // The limit is not tiny: in a full test run the simulator is a task on the test process's
        // busy pool, and a real gap of a few hundred milliseconds upstream would (rightly) trip it.
        try await LiveStack.run(configure: { $0.timeouts.idle = .seconds(1) }) { stack in
            // ~25 MiB: beyond the socket buffers on the way, so the pause holds the upstream back
            // (a fresh CI machine's loopback buffers once held all of a 12 MiB stream: 3,004 frames).
            let request = Self.bigStream(url: stack.gateway + "/v1/chat/completions", prompt: "paused [[sim chunks=6000 chunk_size=4096]]") {
                stack.authorize(&$0, unless: [])
            }
            let response = try await stack.client.execute(request, timeout: .seconds(60))
            #expect(response.status == .ok)
            let (body, heldBack) = try await Self.read(response, within: .seconds(60), stack: stack) { iterator, body in
                body = try #require(try await iterator.next())
                try await Task.sleep(for: .milliseconds(2500))
                return try #require(stack.recorder.entries.first).framesWritten
            }
            print("paused reader: the simulator wrote \(heldBack ?? 0) of 6,004 frames during the pause")
            #expect((1..<6000).contains(heldBack ?? 0), "the simulator wrote \(heldBack ?? 0) of its 6,004 frames during the pause")
            let chat = try StreamedChat(body)
            let (error, finishReason, done) = (chat.error, chat.finishReason, chat.done)
            #expect(error == nil)
            #expect(finishReason == "stop")
            #expect(done)
        }
    }

    /// The same slow reader against `sluice serve --simulator` in a process of its own, whose
    /// resident memory is the gateway's (and the simulator's) alone: measured in this test process,
    /// it also held whatever the suites running beside it allocated (62 MiB once).
    @Test(
        "a slow reader: the gateway's own resident memory stays flat while 80 MiB wait upstream",
        .enabled(if: FileManager.default.isExecutableFile(atPath: SluiceProcess.binary.path), "run `swift build --product sluice` first")
    )
    func slowReaderMemory() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let database = directory.path("backpressure.db")
        let token = try await OperationsTests.token("reader", database: database)
        let server = try await SluiceProcess.serve(database: database)
        defer { if server.process.isRunning { server.kill() } }
        let pid = server.process.processIdentifier
        try await HTTPClient.withHTTPClient { client in
            let request = Self.bigStream(url: "http://127.0.0.1:\(server.port)/v1/chat/completions") {
                $0.add(name: "Authorization", value: "Bearer \(token)")
            }
            let before = HostileInputTests.residentBytes(pid)
            let response = try await client.execute(request, timeout: .seconds(60))
            #expect(response.status == .ok)
            let received = try await Self.readSlowly(response)
            let after = HostileInputTests.residentBytes(pid)
            print("slow reader: gateway RSS \(before / 1024) KiB before, \(after / 1024) KiB after reading \(received) bytes")
            // Buffered, the 80 MiB the simulator can produce would be in the gateway's memory by now.
            #expect(after - before < 24 * 1024 * 1024, "resident memory grew from \(before) to \(after) bytes while the client read \(received)")
        }
        server.signal(SIGTERM)
        _ = try await server.waitForExit(timeout: .seconds(15))
    }
}
