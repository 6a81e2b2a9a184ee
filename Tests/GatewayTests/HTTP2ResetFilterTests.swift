import NIOCore
import NIOEmbedded
import NIOTLS
import Testing

@testable import Gateway

/// The filter between TLS and NIOHTTP2: only resets of streams closed in both directions go, every
/// other byte passes in order, however the reads cut the frames. (The real server with curl and a
/// rapid-reset attacker: Tests/e2e/test_http2.py.)
struct HTTP2ResetFilterTests {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags]
            + [UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
    }

    static func headers(stream: UInt32, endStream: Bool) -> [UInt8] {
        frame(type: 0x1, flags: 0x4 | (endStream ? 0x1 : 0), stream: stream, payload: Array(repeating: 0x82, count: 7))
    }

    static func data(stream: UInt32, endStream: Bool, count: Int = 20) -> [UInt8] {
        frame(type: 0x0, flags: endStream ? 0x1 : 0, stream: stream, payload: Array(repeating: 0x61, count: count))
    }

    static func reset(stream: UInt32) -> [UInt8] {
        frame(type: 0x3, stream: stream, payload: [0, 0, 0, 5])
    }

    static let settings = frame(type: 0x4, stream: 0, payload: [0, 3, 0, 0, 0, 100])

    /// A channel holding the filter after an `h2` handshake.
    static func channel() throws -> (EmbeddedChannel, HTTP2ResetFilter) {
        let filter = HTTP2ResetFilter()
        let channel = EmbeddedChannel(handler: filter)
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: "h2"))
        return (channel, filter)
    }

    static func serverWrites(_ frames: [[UInt8]], on channel: EmbeddedChannel, splitAt cut: Int? = nil) throws {
        let bytes = frames.flatMap { $0 }
        let pieces = cut.map { [Array(bytes[..<min($0, bytes.count)]), Array(bytes[min($0, bytes.count)...])] } ?? [bytes]
        for piece in pieces where !piece.isEmpty {
            try channel.writeOutbound(IOData.byteBuffer(ByteBuffer(bytes: piece)))
        }
        while try channel.readOutbound(as: IOData.self) != nil {}
    }

    /// Feeds `bytes` in reads cut at `cuts`, returns what the filter passed on.
    static func feed(_ bytes: [UInt8], cuts: [Int], into channel: EmbeddedChannel) throws -> [UInt8] {
        var passed: [UInt8] = []
        var start = 0
        for cut in cuts + [bytes.count] where cut > start {
            try channel.writeInbound(ByteBuffer(bytes: bytes[start..<cut]))
            start = cut
            while let read = try channel.readInbound(as: ByteBuffer.self) {
                passed += read.readableBytesView
            }
        }
        return passed
    }

    @Test("a reset after both ends is dropped; one of a stream still open, or never seen, passes")
    func dropsOnlyClosedStreamResets() throws {
        let (channel, filter) = try Self.channel()
        // Client: stream 1 and 3 sent whole; 5 still sending its body.
        let opening = Self.preface + Self.settings + Self.headers(stream: 1, endStream: true) + Self.headers(stream: 3, endStream: true)
            + Self.headers(stream: 5, endStream: false)
        #expect(try Self.feed(opening, cuts: [], into: channel) == opening)
        // Server ends 1 and 5 (5 answered early, its request body not finished), not 3.
        try Self.serverWrites([Self.settings, Self.headers(stream: 1, endStream: false), Self.data(stream: 1, endStream: true),
                               Self.headers(stream: 5, endStream: true)], on: channel)
        let resets = Self.reset(stream: 1) + Self.reset(stream: 3) + Self.reset(stream: 5) + Self.reset(stream: 7) + Self.reset(stream: 1)
        let passed = try Self.feed(resets, cuts: [], into: channel)
        // Only the first reset of 1 goes: 3 is open on the server, 5 on the client, 7 unknown, and a
        // second reset of 1 is counted by NIOHTTP2 again.
        #expect(passed == Self.reset(stream: 3) + Self.reset(stream: 5) + Self.reset(stream: 7) + Self.reset(stream: 1))
        #expect(filter.droppedResets == 1)
    }

    @Test("every split of the inbound bytes passes the same bytes and drops the same resets")
    func everySplit() throws {
        var inbound = Self.preface + Self.settings
        for stream in stride(from: UInt32(1), through: 9, by: 2) {
            inbound += Self.headers(stream: stream, endStream: false) + Self.data(stream: stream, endStream: true, count: Int(stream) * 3)
        }
        let resets = Self.reset(stream: 1) + Self.data(stream: 11, endStream: false) + Self.reset(stream: 3) + Self.reset(stream: 9)
        let expected = inbound + Self.data(stream: 11, endStream: false) + Self.reset(stream: 9)
        let server = [Self.settings] + [1, 3, 5, 7].map { Self.data(stream: $0, endStream: true) }
        for first in 0...(inbound.count + resets.count) {
            for second in [first, first + 1, first + 9, first + 13] where second <= inbound.count + resets.count {
                let (channel, filter) = try Self.channel()
                let all = inbound + resets
                var passed = try Self.feed(Array(all[..<inbound.count]), cuts: [first, second].filter { $0 < inbound.count }, into: channel)
                // The server's frames, cut at a place of their own.
                try Self.serverWrites(server, on: channel, splitAt: first % 40)
                passed += try Self.feed(Array(all[inbound.count...]), cuts: [first, second].filter { $0 > inbound.count }.map { $0 - inbound.count }, into: channel)
                #expect(passed == expected, "cuts \(first), \(second)")
                #expect(filter.droppedResets == 2)
                _ = try channel.finish()
            }
        }
    }

    @Test("HTTP/1.1 by ALPN: the filter leaves the pipeline and bytes pass untouched")
    func removesItselfForHTTP1() throws {
        let filter = HTTP2ResetFilter()
        let channel = EmbeddedChannel(handler: filter)
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: "http/1.1"))
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.context(handler: filter) }
        let request = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        #expect(try Self.feed(request, cuts: [3], into: channel) == request)
    }
}
