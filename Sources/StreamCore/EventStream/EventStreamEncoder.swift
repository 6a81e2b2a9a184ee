public import NIOCore

/// Writes event-stream messages: every header type, both CRCs.
///
/// The simulator, the tests and the benchmarks produce their streams with it.
///
/// ```swift
/// var out = ByteBuffer()
/// try EventStreamEncoder.write(
///     headers: [EventStreamHeader(name: ":event-type", value: .init(string: "messageStart"))],
///     payload: ByteBuffer(string: #"{"role":"assistant"}"#),
///     into: &out
/// )
/// ```
public enum EventStreamEncoder {
    /// Why a message cannot be encoded.
    public struct EncodingError: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// Appends one message to `buffer`.
    ///
    /// - Throws: ``EncodingError`` for a header name of 0 or more than 255 bytes, a string or byte
    ///   array longer than 32,767 bytes, a UUID that is not 16 bytes, or a message over 4 GiB.
    public static func write(headers: some Sequence<EventStreamHeader>, payload: ByteBuffer, into buffer: inout ByteBuffer) throws {
        let start = buffer.writerIndex
        // Reserve the prelude; the lengths are known only once the headers are written.
        buffer.writeRepeatingByte(0, count: 12)
        let headersStart = buffer.writerIndex
        for header in headers {
            try self.write(header, into: &buffer)
        }
        let headersLength = buffer.writerIndex - headersStart
        buffer.writeImmutableBuffer(payload)
        let totalLength = buffer.writerIndex - start + 4
        guard totalLength <= Int(UInt32.max) else {
            buffer.moveWriterIndex(to: start)
            throw EncodingError(description: "message of \(totalLength) bytes exceeds the 4 GiB length field")
        }
        buffer.setInteger(UInt32(totalLength), at: start)
        buffer.setInteger(UInt32(headersLength), at: start + 4)
        let preludeCRC = buffer.withUnsafeReadableBytes { bytes in
            let prelude = start - buffer.readerIndex
            return EventStreamCRC.update(0, UnsafeRawBufferPointer(rebasing: bytes[prelude..<prelude + 8]))
        }
        buffer.setInteger(preludeCRC, at: start + 8)
        let messageCRC = buffer.withUnsafeReadableBytes { bytes in
            let from = start - buffer.readerIndex + 8
            return EventStreamCRC.update(preludeCRC, UnsafeRawBufferPointer(rebasing: bytes[from..<bytes.count]))
        }
        buffer.writeInteger(messageCRC)
    }

    /// One message as a new buffer.
    public static func encode(headers: some Sequence<EventStreamHeader>, payload: ByteBuffer) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        try self.write(headers: headers, payload: payload, into: &buffer)
        return buffer
    }

    private static func write(_ header: EventStreamHeader, into buffer: inout ByteBuffer) throws {
        let nameLength = header.name.readableBytes
        guard (1...255).contains(nameLength) else {
            throw EncodingError(description: "header name of \(nameLength) bytes; names are 1–255 bytes")
        }
        buffer.writeInteger(UInt8(nameLength))
        buffer.writeImmutableBuffer(header.name)
        buffer.writeInteger(header.value.typeCode)
        switch header.value {
        case .bool: break
        case .byte(let value): buffer.writeInteger(value)
        case .short(let value): buffer.writeInteger(value)
        case .integer(let value): buffer.writeInteger(value)
        case .long(let value), .timestamp(let value): buffer.writeInteger(value)
        case .byteArray(let bytes), .string(let bytes):
            guard bytes.readableBytes <= HeaderRecord.maximumVariableValueLength else {
                throw EncodingError(description: "header value of \(bytes.readableBytes) bytes; the maximum is 32767")
            }
            buffer.writeInteger(UInt16(bytes.readableBytes))
            buffer.writeImmutableBuffer(bytes)
        case .uuid(let bytes):
            guard bytes.readableBytes == 16 else {
                throw EncodingError(description: "uuid header of \(bytes.readableBytes) bytes; a uuid is 16")
            }
            buffer.writeImmutableBuffer(bytes)
        }
    }
}
