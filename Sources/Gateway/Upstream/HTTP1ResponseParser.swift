import NIOCore
import NIOHTTP1

/// Reads HTTP/1.1 responses (RFC 9112) from an upstream connection's reads, one event at a time:
/// the head, the body's bytes as slices of the reads (never copied), the end. Bodies framed by
/// `Content-Length`, by chunked transfer coding or by the connection's close; informational (1xx)
/// heads are skipped. It is strict where a lenient reading could mix two responses (conflicting
/// lengths, folded header lines, malformed chunk sizes) and then fails rather than guess.
///
/// A line split across reads (the head, a chunk's size line, a trailer) is kept until its end
/// arrives; a body's bytes are handed on as they come.
struct HTTP1ResponseParser {
    enum Event {
        case head(HTTPResponseHead)
        /// Body bytes: a slice of the read.
        case body(ByteBuffer)
        /// The response is complete; bytes after it belong to the next response (or are an error).
        case end
    }

    /// The response is not HTTP/1.1 as RFC 9112 allows: the connection cannot be trusted further.
    struct Malformed: Error, CustomStringConvertible {
        var reason: String
        var description: String { "malformed upstream response: \(self.reason)" }
    }

    /// Larger heads are refused (Bedrock's are well under 2 KiB).
    static let maximumHeadBytes = 64 * 1024
    /// Longer chunk-size and trailer lines are refused.
    static let maximumLineBytes = 4 * 1024

    private enum State {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        /// The CRLF after a chunk's data.
        case chunkEnd
        case trailers(bytes: Int)
        case untilClose
        case done
    }

    private var state = State.head
    /// The start of a line whose end has not arrived yet.
    private var partial = ByteBuffer()
    /// Whether the connection may carry another request after this response.
    private(set) var keepAlive = true

    /// Ready for the next response on the connection.
    mutating func reset() {
        self.state = .head
        self.partial.clear()
        self.keepAlive = true
    }

    /// The next event from `buffer` (what it parses is consumed), or `nil` when more bytes are
    /// needed (`buffer` is then empty) or the response has ended (`buffer` keeps what follows it).
    mutating func next(_ buffer: inout ByteBuffer) throws(Malformed) -> Event? {
        if self.partial.readableBytes > 0 {
            // The unfinished line's start, then the new bytes: parsed as one.
            self.partial.writeBuffer(&buffer)
            buffer = self.partial
            self.partial = ByteBuffer()
        }
        while true {
            switch self.state {
            case .head:
                guard let end = Self.headEnd(buffer) else {
                    guard buffer.readableBytes < Self.maximumHeadBytes else { throw Malformed(reason: "the response head is too long") }
                    self.keep(&buffer)
                    return nil
                }
                let head = try self.parseHead(buffer.readSlice(length: end) ?? ByteBuffer())
                if head.status.code / 100 == 1 {
                    // 100 Continue and other interim answers: the final head follows.
                    guard head.status != .switchingProtocols else { throw Malformed(reason: "an unrequested protocol switch") }
                    continue
                }
                return .head(head)
            case .fixed(let remaining):
                if remaining == 0 {
                    self.state = .done
                    return .end
                }
                guard buffer.readableBytes > 0 else { return nil }
                let length = min(remaining, buffer.readableBytes)
                self.state = .fixed(remaining: remaining - length)
                return .body(buffer.readSlice(length: length) ?? ByteBuffer())
            case .untilClose:
                guard buffer.readableBytes > 0 else { return nil }
                return .body(buffer.readSlice(length: buffer.readableBytes) ?? ByteBuffer())
            case .chunkSize:
                guard let line = try self.line(&buffer) else { return nil }
                let size = try Self.chunkSize(line)
                self.state = size == 0 ? .trailers(bytes: 0) : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return nil }
                let length = min(remaining, buffer.readableBytes)
                self.state = length == remaining ? .chunkEnd : .chunkData(remaining: remaining - length)
                return .body(buffer.readSlice(length: length) ?? ByteBuffer())
            case .chunkEnd:
                guard let line = try self.line(&buffer) else { return nil }
                guard line.readableBytes == 0 else { throw Malformed(reason: "a chunk is longer than its size") }
                self.state = .chunkSize
            case .trailers(let bytes):
                guard let line = try self.line(&buffer) else { return nil }
                if line.readableBytes == 0 {
                    self.state = .done
                    return .end
                }
                let total = bytes + line.readableBytes
                guard total <= Self.maximumHeadBytes else { throw Malformed(reason: "the trailers are too long") }
                self.state = .trailers(bytes: total)
            case .done:
                return nil
            }
        }
    }

    /// The connection closed: `true` when that ends the response (a body delimited by the close).
    mutating func closed() -> Bool {
        guard case .untilClose = self.state else { return false }
        self.state = .done
        return true
    }

    // MARK: Lines

    /// Keeps what is left of `buffer` for the next read (it is an unfinished line).
    private mutating func keep(_ buffer: inout ByteBuffer) {
        self.partial = buffer
        buffer.moveReaderIndex(to: buffer.writerIndex)
    }

    /// The next line without its CRLF (a bare LF is accepted, RFC 9112 §2.2), or `nil` when its end
    /// has not arrived.
    private mutating func line(_ buffer: inout ByteBuffer, limit: Int = Self.maximumLineBytes) throws(Malformed) -> ByteBuffer? {
        let newline = buffer.withUnsafeReadableBytes { $0.firstIndex(of: UInt8(ascii: "\n")) }
        guard let newline else {
            guard buffer.readableBytes < limit else { throw Malformed(reason: "a line is too long") }
            self.keep(&buffer)
            return nil
        }
        guard newline < limit else { throw Malformed(reason: "a line is too long") }
        var line = buffer.readSlice(length: newline) ?? ByteBuffer()
        buffer.moveReaderIndex(forwardBy: 1)
        if line.readableBytes > 0, line.getInteger(at: line.writerIndex - 1, as: UInt8.self) == UInt8(ascii: "\r") {
            line.moveWriterIndex(to: line.writerIndex - 1)
        }
        return line
    }

    /// The length of the head through its empty line, if it has all arrived.
    private static func headEnd(_ buffer: ByteBuffer) -> Int? {
        buffer.withUnsafeReadableBytes { bytes in
            var index = 0
            while let newline = bytes[index...].firstIndex(of: UInt8(ascii: "\n")) {
                // The next line is empty: LF, or CR LF.
                let next = newline + 1
                if next < bytes.count, bytes[next] == UInt8(ascii: "\n") { return next + 1 }
                if next + 1 < bytes.count, bytes[next] == UInt8(ascii: "\r"), bytes[next + 1] == UInt8(ascii: "\n") { return next + 2 }
                index = next
            }
            return nil
        }
    }

    // MARK: The head

    private mutating func parseHead(_ bytes: ByteBuffer) throws(Malformed) -> HTTPResponseHead {
        // Every line of `bytes` ends in a newline (it ends with the empty line).
        var bytes = bytes
        guard let statusLine = try self.line(&bytes, limit: Self.maximumHeadBytes) else { throw Malformed(reason: "no status line") }
        let (version, status) = try Self.statusLine(statusLine)
        var headers = HTTPHeaders()
        while let line = try self.line(&bytes, limit: Self.maximumHeadBytes), line.readableBytes > 0 {
            let (name, value) = try Self.field(line)
            headers.add(name: name, value: value)
        }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status), headers: headers)
        guard status / 100 != 1 else { return head }
        self.keepAlive = Self.keepsAlive(version: version, headers: headers)
        if status == 204 || status == 304 {
            self.state = .fixed(remaining: 0)
        } else if let codings = Self.values(of: "transfer-encoding", in: headers) {
            if codings.last?.lowercased() == "chunked" {
                self.state = .chunkSize
            } else {
                // Not chunked last: the body runs to the close (RFC 9112 §6.3).
                self.state = .untilClose
                self.keepAlive = false
            }
            // A length beside a coding is a smuggling attempt's mark: the connection is not reused.
            if headers.contains(name: "content-length") { self.keepAlive = false }
        } else if let lengths = Self.values(of: "content-length", in: headers) {
            guard let first = lengths.first, lengths.allSatisfy({ $0 == first }), let length = Self.decimal(first) else {
                throw Malformed(reason: "an invalid Content-Length")
            }
            self.state = .fixed(remaining: length)
        } else {
            self.state = .untilClose
            self.keepAlive = false
        }
        return head
    }

    private static func statusLine(_ line: ByteBuffer) throws(Malformed) -> (HTTPVersion, Int) {
        // "HTTP/1.1 200 OK": the reason phrase is optional and not read.
        let parsed: (HTTPVersion, Int)? = line.withUnsafeReadableBytes { bytes in
            guard bytes.count >= 12, bytes.starts(with: "HTTP/1.".utf8), bytes[8] == UInt8(ascii: " ") else { return nil }
            let minor = bytes[7]
            guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1") else { return nil }
            var status = 0
            for byte in bytes[9..<12] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return nil }
                status = status * 10 + Int(byte - UInt8(ascii: "0"))
            }
            guard status >= 100, bytes.count == 12 || bytes[12] == UInt8(ascii: " ") else { return nil }
            return (HTTPVersion(major: 1, minor: Int(minor - UInt8(ascii: "0"))), status)
        }
        guard let parsed else { throw Malformed(reason: "an invalid status line") }
        return parsed
    }

    private static func field(_ line: ByteBuffer) throws(Malformed) -> (String, String) {
        let field: (String, String)? = line.withUnsafeReadableBytes { bytes in
            guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return nil }
            // A token: no whitespace in the name (and none before it, which would be a folded line).
            guard bytes[..<colon].allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
            var start = colon + 1
            var end = bytes.count
            while start < end, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "\t") { start += 1 }
            while end > start, bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") { end -= 1 }
            guard !bytes[start..<end].contains(where: { $0 == 0 || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") }) else { return nil }
            return (
                String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<colon]), as: UTF8.self),
                String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
            )
        }
        guard let field else { throw Malformed(reason: "an invalid header line") }
        return field
    }

    /// The comma-separated values of every `name` field, trimmed; `nil` when there is none.
    private static func values(of name: String, in headers: HTTPHeaders) -> [Substring]? {
        let fields = headers[name]
        guard !fields.isEmpty else { return nil }
        return fields.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { value in
            var value = value[...]
            while value.first == " " || value.first == "\t" { value = value.dropFirst() }
            while value.last == " " || value.last == "\t" { value = value.dropLast() }
            return value
        }
    }

    private static func keepsAlive(version: HTTPVersion, headers: HTTPHeaders) -> Bool {
        let options = Self.values(of: "connection", in: headers)?.map { $0.lowercased() } ?? []
        if version.minor == 0 { return options.contains("keep-alive") }
        return !options.contains("close")
    }

    private static func decimal(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 18, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { return nil }
        return Int(text)
    }

    /// A chunk-size line: hexadecimal digits, then optionally whitespace and `;` extensions.
    private static func chunkSize(_ line: ByteBuffer) throws(Malformed) -> Int {
        let size: Int? = line.withUnsafeReadableBytes { bytes in
            var size = 0
            var digits = 0
            for byte in bytes {
                let value: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): value = byte - UInt8(ascii: "A") + 10
                case UInt8(ascii: ";"), UInt8(ascii: " "), UInt8(ascii: "\t"):
                    return digits > 0 ? size : nil
                default:
                    return nil
                }
                digits += 1
                // 15 digits: no overflow, and far beyond any body this gateway would read.
                guard digits <= 15 else { return nil }
                size = size << 4 | Int(value)
            }
            return digits > 0 ? size : nil
        }
        guard let size else { throw Malformed(reason: "an invalid chunk size") }
        return size
    }
}
