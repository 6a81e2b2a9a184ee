import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import Testing

/// Backpressure end to end: a client that stops reading stops the gateway reading upstream, so the
/// gateway's memory does not grow with the response.
@Suite(.serialized)
struct BackpressureTests {
    /// Resident set size of this process, from /proc (Linux).
    static func residentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return kilobytes * 1024
    }

    @Test("a slow reader holds the upstream back: bounded frames in flight, flat memory")
    func slowReader() async throws {
        try await LiveStack.run { stack in
            // 20,000 frames of ~4 KiB: about 80 MiB upstream, far beyond every socket buffer on the way.
            var request = HTTPClientRequest(url: stack.gateway + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            stack.authorize(&request.headers, unless: [])
            request.body = .bytes(ByteBuffer(string: chatRequest("big [[sim chunks=20000 chunk_size=4096]]")))
            let before = try #require(Self.residentBytes())
            let response = try await stack.client.execute(request, timeout: .seconds(60))
            var received = 0
            var iterator = response.body.makeAsyncIterator()
            // Read slowly: a few KiB, then pause, for two seconds.
            for _ in 0..<20 {
                guard let part = try await iterator.next() else { break }
                received += part.readableBytes
                try await Task.sleep(for: .milliseconds(100))
            }
            let entry = try #require(stack.recorder.entries.first)
            let written = entry.framesWritten
            let after = try #require(Self.residentBytes())
            // Had the gateway buffered, the simulator would have written all 20,000 frames by now.
            #expect(written < 10_000, "simulator wrote \(written) frames while the client read \(received) bytes")
            #expect(after - before < 48 * 1024 * 1024, "resident memory grew by \(after - before) bytes")
        }
    }
}
