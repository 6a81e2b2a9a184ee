import NIOCore
import NIOTLS

/// Drops a client's `RST_STREAM` for a stream that both sides have already ended, before NIOHTTP2
/// sees it.
///
/// NIOHTTP2's rapid-reset defence (CVE-2023-44487) counts every inbound `RST_STREAM` and closes the
/// connection after 200 in 30 s, and Hummingbird builds its HTTP/2 handler with that default and no
/// way to change it. libcurl 7.88 (Debian 12's, and every client built on it) sends
/// `RST_STREAM(STREAM_CLOSED)` after each stream that has ended, so its 201st request within 30 s
/// on one connection cut every stream still open there. A reset of a stream that is closed in both
/// directions costs the server nothing and RFC 9113 §5.1 says to ignore it; the attack is resetting
/// streams the server is still working on, and those still reach NIOHTTP2's counter, so real abuse
/// is refused as before.
///
/// Sits between TLS and the HTTP/2 handler and reads only the 9-byte frame headers in both
/// directions (bytes pass unchanged and uncopied, except a header split across two reads, which is
/// held back until it is whole). It removes itself when ALPN picks HTTP/1.1.
final class HTTP2ResetFilter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// Inbound bytes still to pass before the next frame header: a payload, or at first the client's
    /// 24-byte connection preface (`PRI * HTTP/2.0…`).
    private var inboundSkip = 24
    private var outbound = FrameWalker(leadingBytes: 0)
    private var ended = EndedStreams()
    /// The start of a frame header that the last read cut short.
    private var heldBack: ByteBuffer?
    /// The payload of a dropped reset still to be skipped in the next read.
    private var droppingPayload = 0

    /// How many resets this connection has dropped (read by the unit tests).
    private(set) var droppedResets = 0

    init() {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted(let negotiated) = event, negotiated != "h2" {
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = Self.unwrapInboundIn(data)
        if var held = self.heldBack {
            self.heldBack = nil
            held.writeBuffer(&buffer)
            buffer = held
        }
        var keptFrom = buffer.readerIndex
        var index = buffer.readerIndex
        let end = buffer.writerIndex
        while index < end {
            if self.droppingPayload > 0 {
                let skipped = min(self.droppingPayload, end - index)
                self.droppingPayload -= skipped
                index += skipped
                keptFrom = index
                continue
            }
            if self.inboundSkip > 0 {
                let skipped = min(self.inboundSkip, end - index)
                self.inboundSkip -= skipped
                index += skipped
                continue
            }
            guard end - index >= FrameHeader.size else {
                // A header cut by the read: forward what came before it, keep its start.
                self.forward(buffer, from: keptFrom, to: index, context: context)
                self.heldBack = buffer.getSlice(at: index, length: end - index)
                return
            }
            // Safe: at least 9 readable bytes from `index` were checked just above.
            let header = FrameHeader(buffer, at: index)
            // A reset of another length is malformed: NIOHTTP2 answers it, so it passes.
            if header.type == FrameHeader.resetStream, header.length == 4, self.ended.removeIfClosed(header.streamID) {
                self.forward(buffer, from: keptFrom, to: index, context: context)
                self.droppedResets += 1
                index += FrameHeader.size
                self.droppingPayload = header.length
                keptFrom = index
                continue
            }
            if header.endsStream { self.ended.mark(header.streamID, side: .client) }
            index += FrameHeader.size
            self.inboundSkip = header.length
        }
        self.forward(buffer, from: keptFrom, to: end, context: context)
    }

    private func forward(_ buffer: ByteBuffer, from start: Int, to end: Int, context: ChannelHandlerContext) {
        guard end > start, let slice = buffer.getSlice(at: start, length: end - start) else { return }
        context.fireChannelRead(Self.wrapInboundOut(slice))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch Self.unwrapOutboundIn(data) {
        case .byteBuffer(let buffer):
            buffer.withUnsafeReadableBytes { bytes in
                self.outbound.walk(bytes) { header in
                    if header.endsStream || header.type == FrameHeader.resetStream {
                        self.ended.mark(header.streamID, side: .server)
                    }
                }
            }
        case .fileRegion(let region):
            // HTTP/2 never writes a file region; were one to pass, it is payload to the walker.
            self.outbound.skip = max(0, self.outbound.skip - region.readableBytes)
        }
        context.write(data, promise: promise)
    }
}

/// An HTTP/2 frame header (RFC 9113 §4.1): length (24 bits), type, flags, stream id (31 bits).
struct FrameHeader {
    static let size = 9
    static let data: UInt8 = 0x0
    static let headers: UInt8 = 0x1
    static let resetStream: UInt8 = 0x3
    static let endStreamFlag: UInt8 = 0x1

    var length: Int
    var type: UInt8
    var flags: UInt8
    var streamID: UInt32

    /// `bytes` has at least ``size`` bytes from `index`.
    init(_ buffer: ByteBuffer, at index: Int) {
        self = buffer.withUnsafeReadableBytes { bytes in
            FrameHeader(UnsafeRawBufferPointer(rebasing: bytes[(index - buffer.readerIndex)...]))
        }
    }

    /// `bytes` has at least ``size`` bytes.
    init(_ bytes: UnsafeRawBufferPointer) {
        self.length = Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2])
        self.type = bytes[3]
        self.flags = bytes[4]
        self.streamID = (UInt32(bytes[5]) << 24 | UInt32(bytes[6]) << 16 | UInt32(bytes[7]) << 8 | UInt32(bytes[8])) & 0x7fff_ffff
    }

    /// A DATA or HEADERS frame with END_STREAM: its sender is done with the stream.
    var endsStream: Bool {
        (self.type == Self.data || self.type == Self.headers) && self.flags & Self.endStreamFlag != 0
    }
}

/// Follows frame boundaries through a byte stream that arrives in pieces, without keeping it.
struct FrameWalker {
    /// Bytes still to pass before the next frame header: a payload, or the connection preface.
    var skip: Int
    /// A header cut short by the end of a piece (rare: at most 9 bytes, kept inline).
    private var partial: (UInt64, UInt8) = (0, 0)
    private var partialCount = 0

    init(leadingBytes: Int) {
        self.skip = leadingBytes
    }

    /// Calls `body` with every frame header that completes in `bytes`.
    mutating func walk(_ bytes: UnsafeRawBufferPointer, _ body: (FrameHeader) -> Void) {
        var index = 0
        while index < bytes.count {
            if self.skip > 0 {
                let skipped = min(self.skip, bytes.count - index)
                self.skip -= skipped
                index += skipped
                continue
            }
            let header: FrameHeader
            if self.partialCount == 0, bytes.count - index >= FrameHeader.size {
                header = FrameHeader(UnsafeRawBufferPointer(rebasing: bytes[index..<(index + FrameHeader.size)]))
                index += FrameHeader.size
            } else {
                let taken = min(FrameHeader.size - self.partialCount, bytes.count - index)
                let filled = self.partialCount
                withUnsafeMutableBytes(of: &self.partial) { storage in
                    for offset in 0..<taken { storage[filled + offset] = bytes[index + offset] }
                }
                self.partialCount += taken
                index += taken
                guard self.partialCount == FrameHeader.size else { return }
                self.partialCount = 0
                header = withUnsafeBytes(of: self.partial) { FrameHeader($0) }
            }
            body(header)
            self.skip = header.length
        }
    }
}

/// Streams of this connection that one side has ended, with which sides; the most recent 512.
///
/// A stream enters when the first side ends it and leaves when a reset for it is dropped, or when
/// 512 later streams have pushed it out (clients reset at once, and a reset of a forgotten stream
/// simply goes on to NIOHTTP2 and is counted). Searched from the newest: the reset nearly always
/// names a stream that ended a moment ago.
struct EndedStreams {
    enum Side: UInt8 {
        case client = 1
        case server = 2
    }

    private static let capacity = 512
    private var streams: [UInt32] = []
    private var sides: [UInt8] = []
    private var next = 0

    mutating func mark(_ stream: UInt32, side: Side) {
        guard stream != 0 else { return }
        if let slot = self.slot(of: stream) {
            self.sides[slot] |= side.rawValue
            return
        }
        if self.streams.count < Self.capacity {
            self.streams.append(stream)
            self.sides.append(side.rawValue)
        } else {
            self.streams[self.next] = stream
            self.sides[self.next] = side.rawValue
            self.next = (self.next + 1) % Self.capacity
        }
    }

    /// True (and forgets the stream) when both sides had ended it.
    mutating func removeIfClosed(_ stream: UInt32) -> Bool {
        guard stream != 0, let slot = self.slot(of: stream), self.sides[slot] == Side.client.rawValue | Side.server.rawValue else {
            return false
        }
        self.streams[slot] = 0
        self.sides[slot] = 0
        return true
    }

    private func slot(of stream: UInt32) -> Int? {
        let count = self.streams.count
        guard count > 0 else { return nil }
        // Newest first: the slot before `next` (when full) or the last one appended.
        var slot = (self.next + count - 1) % count
        for _ in 0..<count {
            if self.streams[slot] == stream { return slot }
            slot = slot == 0 ? count - 1 : slot - 1
        }
        return nil
    }
}
