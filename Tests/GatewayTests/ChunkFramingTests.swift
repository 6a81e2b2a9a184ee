import Foundation
import NIOCore
import StreamCore
import Testing

@testable import Gateway

/// Streamed HTTP/1.1 bodies are framed by the relay itself (``ChunkFraming``), beneath NIO's encoder:
/// the framing must be exactly RFC 9112's, whichever way a chunk is framed, and the connection must
/// go on serving requests afterwards.
struct ChunkFramingTests {
    static let sizes = [1, 2, 9, 15, 16, 17, 255, 256, 4095, 4096, 65_535, 65_536, 1_000_001]

    static func expected(_ payload: [UInt8]) -> [UInt8] {
        Array(String(payload.count, radix: 16).utf8) + [13, 10] + payload + [13, 10]
    }

    static func payload(_ size: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
    }

    /// Compared whole, reported by the size line (a megabyte of bytes is no use in a failure).
    static func check(_ framed: ByteBuffer, _ payload: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) {
        let matches = Array(framed.readableBytesView) == Self.expected(payload)
        let line = String(decoding: framed.readableBytesView.prefix(10), as: UTF8.self).split(separator: "\r").first ?? ""
        #expect(matches, "\(payload.count) bytes framed with the size line \(line.debugDescription)", sourceLocation: sourceLocation)
    }

    @Test("a chunk with room before it is framed in place: size line, bytes, CRLF; nothing copied")
    func inPlace() {
        for size in Self.sizes {
            let payload = Self.payload(size)
            var bytes = ByteBuffer()
            bytes.writeRepeatingByte(0xEE, count: ChunkFraming.headroom)
            bytes.moveReaderIndex(forwardBy: ChunkFraming.headroom)
            bytes.writeBytes(payload)
            var scratch = ByteBuffer()
            let framed = ChunkFraming.frame(&bytes, scratch: &scratch)
            Self.check(framed, payload)
            #expect(scratch.capacity == 0, "size \(size): the scratch buffer was used")
        }
    }

    @Test("a chunk without room before it (a slice of an upstream read) is copied into the kept buffer, framed the same")
    func copied() {
        var scratch = ByteBuffer()
        for size in Self.sizes {
            let payload = Self.payload(size)
            var read = ByteBuffer(bytes: [0xAA] + payload + [0xBB])
            var slice = read.getSlice(at: 1, length: size)!
            let framed = ChunkFraming.frame(&slice, scratch: &scratch)
            Self.check(framed, payload)
            read.clear()
        }
    }

    @Test("over a raw HTTP/1.1 connection: an OpenAI stream and a /bedrock stream are exact chunked bodies, one after the other on one connection")
    func onTheWire() async throws {
        try await LiveStack.run { stack in
            let connection = try RawConnection(port: stack.gatewayPort)
            func request(_ path: String, _ body: String) -> String {
                "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(stack.token)\r\nContent-Type: application/json\r\n"
                    + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
            }
            let ending: [UInt8] = Array("\r\n0\r\n\r\n".utf8)

            #expect(connection.send(request("/v1/chat/completions", chatRequest("count [[sim chunks=40 chunk_size=300]]"))))
            let (chat, chatClosed) = await connection.receiveBytes(for: .seconds(20)) { $0.suffix(ending.count).elementsEqual(ending) }
            #expect(!chatClosed)
            let chatBody = try Self.dechunk(chat)
            let events = try sseObjects(ByteBuffer(bytes: chatBody))
            #expect(events.count >= 40)
            #expect(String(decoding: chatBody, as: UTF8.self).hasSuffix("data: [DONE]\n\n"))

            let bedrock = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":100,"messages":[{"role":"user","content":"hi [[sim chunks=30]]"}]}"#
            #expect(connection.send(request("/bedrock/model/\(BedrockRoutesTests.model)/invoke-with-response-stream", bedrock)))
            let (frames, framesClosed) = await connection.receiveBytes(for: .seconds(20)) { $0.suffix(ending.count).elementsEqual(ending) }
            #expect(!framesClosed)
            let messages = try decodeEventStream(ByteBuffer(bytes: try Self.dechunk(frames)))
            #expect(messages.count >= 30)
            #expect(messages.allSatisfy { $0.headers.isEvent("chunk") })
        }
    }

    /// The body of one HTTP/1.1 response with `Transfer-Encoding: chunked`, read strictly: every size
    /// line lowercase hexadecimal without leading zeros, every chunk followed by CRLF, the last chunk
    /// empty, and nothing after it.
    static func dechunk(_ response: [UInt8]) throws -> [UInt8] {
        let text = String(decoding: response, as: UTF8.self)
        guard let headEnd = response.indices.first(where: { response[$0...].starts(with: [13, 10, 13, 10]) }) else {
            throw CrashTestError(message: "no head in \(text.prefix(200))")
        }
        let head = String(decoding: response[..<headEnd], as: UTF8.self).lowercased()
        guard head.hasPrefix("http/1.1 200"), head.contains("transfer-encoding: chunked") else {
            throw CrashTestError(message: "not a chunked 200: \(head)")
        }
        var body: [UInt8] = []
        var index = headEnd + 4
        while true {
            guard let lineEnd = response[index...].indices.first(where: { response[$0...].starts(with: [13, 10]) }) else {
                throw CrashTestError(message: "a size line without CRLF at \(index)")
            }
            let line = String(decoding: response[index..<lineEnd], as: UTF8.self)
            guard let size = Int(line, radix: 16), line == String(size, radix: 16) else {
                throw CrashTestError(message: "size line \(line.debugDescription)")
            }
            index = lineEnd + 2
            guard index + size + 2 <= response.count, response[(index + size)...].starts(with: [13, 10]) else {
                throw CrashTestError(message: "a chunk of \(size) bytes without its CRLF")
            }
            body += response[index..<(index + size)]
            index += size + 2
            if size == 0 { break }
        }
        guard index == response.count else { throw CrashTestError(message: "\(response.count - index) bytes after the last chunk") }
        return body
    }
}
