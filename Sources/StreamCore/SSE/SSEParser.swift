public import NIOCore

/// One server-sent event: its `event:` name (if any) and its `data:` lines joined with `\n`.
public struct SSEEvent: Hashable, Sendable {
    public var event: String?
    public var data: String
    public var id: String?

    public init(event: String? = nil, data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }
}

/// An incremental parser of `text/event-stream` (the WHATWG event-stream format), for tests, the load
/// generator and clients: feed bytes split anywhere, take complete events out.
///
/// Lines end in LF, CRLF or CR; `:` lines are comments; a blank line dispatches the event; `data`
/// lines accumulate; a field's value loses one leading space. Bytes already searched for a line end
/// are never searched again, so 1-byte reads cost linear time.
///
/// ```swift
/// var parser = SSEParser()
/// parser.feed(read)
/// while let event = try parser.next() { print(event.data) }
/// ```
public struct SSEParser {
    /// Why a stream was refused.
    public struct Error: Swift.Error, Hashable, Sendable {
        public var message: String
    }

    /// Lines longer than this are refused, so a stream with no line ends cannot grow memory without
    /// bound. 16 MiB: larger than any chunk a gateway sends.
    public var maximumLineLength: Int

    private var buffer = ByteBuffer()
    /// Offset (from the reader index) up to which `buffer` has been searched for a line end.
    private var scanned = 0
    /// A CR ended the last line; an LF right after it belongs to that line end.
    private var skipLeadingLF = false
    private var event: String?
    private var data: [UInt8] = []
    private var hasData = false
    private var id: String?

    public init(maximumLineLength: Int = 16 * 1024 * 1024) {
        self.maximumLineLength = maximumLineLength
    }

    /// Adds bytes of the stream.
    public mutating func feed(_ bytes: ByteBuffer) {
        if self.buffer.readableBytes == 0 {
            self.buffer = bytes
        } else {
            self.buffer.writeImmutableBuffer(bytes)
        }
    }

    /// The next complete event, or `nil` when more bytes are needed.
    public mutating func next() throws(Error) -> SSEEvent? {
        while let line = try self.nextLine() {
            if line.isEmpty {
                if let event = self.dispatch() { return event }
                continue
            }
            self.process(line)
        }
        return nil
    }

    /// Whether bytes of an incomplete event are pending (a stream that ends here was cut short).
    public var hasPendingEvent: Bool {
        self.buffer.readableBytes > 0 || self.hasData || self.event != nil
    }

    private mutating func nextLine() throws(Error) -> [UInt8]? {
        if self.skipLeadingLF, self.buffer.readableBytes > 0 {
            if self.buffer.getInteger(at: self.buffer.readerIndex, as: UInt8.self) == UInt8(ascii: "\n") {
                self.buffer.moveReaderIndex(forwardBy: 1)
            }
            self.skipLeadingLF = false
        }
        let view = self.buffer.readableBytesView
        let start = view.startIndex
        guard let end = view[(start + self.scanned)...].firstIndex(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) else {
            self.scanned = view.count
            if view.count > self.maximumLineLength {
                throw Error(message: "event-stream line longer than \(self.maximumLineLength) bytes")
            }
            if self.buffer.readerIndex > 64 * 1024 { self.buffer.discardReadBytes() }
            return nil
        }
        let line = Array(view[start..<end])
        let terminator = view[end]
        self.buffer.moveReaderIndex(forwardBy: end - start + 1)
        self.scanned = 0
        if terminator == UInt8(ascii: "\r") { self.skipLeadingLF = true }
        return line
    }

    private mutating func process(_ line: [UInt8]) {
        if line.first == UInt8(ascii: ":") { return }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        let name = line[..<colon]
        var value = colon < line.endIndex ? line[(colon + 1)...] : []
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        if name.elementsEqual("data".utf8) {
            if self.hasData { self.data.append(UInt8(ascii: "\n")) }
            self.data.append(contentsOf: value)
            self.hasData = true
        } else if name.elementsEqual("event".utf8) {
            self.event = String(decoding: value, as: UTF8.self)
        } else if name.elementsEqual("id".utf8) {
            self.id = String(decoding: value, as: UTF8.self)
        }
        // `retry` and unknown fields are ignored, as the format says.
    }

    private mutating func dispatch() -> SSEEvent? {
        defer {
            self.event = nil
            self.data.removeAll(keepingCapacity: true)
            self.hasData = false
        }
        guard self.hasData else { return nil }
        return SSEEvent(event: self.event, data: String(decoding: self.data, as: UTF8.self), id: self.id)
    }
}

@available(*, unavailable)
extension SSEParser: Sendable {}
