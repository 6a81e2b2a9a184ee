public import NIOCore

/// One event-stream message whose CRCs and header records have been checked.
///
/// Headers and payload are slices of the bytes the decoder was fed (no copy when the message lay
/// inside one read). A slice keeps its whole parent buffer alive: copy what you keep past the stream.
///
/// The message holds the decoder's buffer itself (a copy of a `ByteBuffer` is one retain) with its
/// reader and writer indices moved onto the frame's header section and payload, and hands out the
/// two parts on demand: a `getSlice` per frame cost about 90 instructions, and the per-frame
/// translators borrow the parts in place instead (`withUnsafeHeaderSection`, `withUnsafePayload`).
public struct EventStreamMessage: Hashable, Sendable {
    /// Readable bytes: the header section, then the payload. (The buffer and one word: with three
    /// more stored words, the callers' copies and destroys of a message went through its type
    /// metadata, ~90 instructions a frame.)
    private var body: ByteBuffer
    private var headersLength: Int

    public init(headers: EventStreamHeaders, payload: ByteBuffer) {
        var body = ByteBuffer()
        body.reserveCapacity(headers.section.readableBytes + payload.readableBytes)
        body.writeImmutableBuffer(headers.section)
        body.writeImmutableBuffer(payload)
        self.body = body
        self.headersLength = headers.section.readableBytes
    }

    /// The message whose header section and payload are the `length` bytes of `buffer` at
    /// `index` (an absolute index), `headersLength` of them the header section: the decoder's
    /// checked frame, already known to lie inside `buffer`'s readable bytes.
    @inline(__always)
    package init(checkedFrameIn buffer: ByteBuffer, at index: Int, length: Int, headersLength: Int) {
        precondition(headersLength >= 0 && headersLength <= length, "EventStreamMessage: header section longer than the message")
        var body = buffer
        // Writer index first: the new reader index must not pass it.
        body.moveWriterIndex(to: index + length)
        body.moveReaderIndex(to: index)
        self.body = body
        self.headersLength = headersLength
    }

    public var headers: EventStreamHeaders {
        get {
            // Safe to force unwrap: `headersLength <= body.readableBytes` (the decoder's check).
            EventStreamHeaders(validatedSection: self.body.getSlice(at: self.body.readerIndex, length: self.headersLength)!)
        }
        set {
            self = EventStreamMessage(headers: newValue, payload: self.payload)
        }
    }

    public var payload: ByteBuffer {
        get {
            // Safe to force unwrap: as above.
            self.body.getSlice(at: self.body.readerIndex + self.headersLength, length: self.body.readableBytes - self.headersLength)!
        }
        set {
            self = EventStreamMessage(headers: self.headers, payload: newValue)
        }
    }

    /// Bytes of header section and payload (the frame without its 16 bytes of prelude and CRCs).
    package var bodyLength: Int { self.body.readableBytes }

    /// Borrows the header section's bytes, without making a slice.
    @inline(__always)
    package func withUnsafeHeaderSection<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        let headersLength = self.headersLength
        return self.body.withUnsafeReadableBytes { bytes in body(UnsafeRawBufferPointer(rebasing: bytes[..<headersLength])) }
    }

    /// Borrows the payload's bytes, without making a slice.
    @inline(__always)
    package func withUnsafePayload<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        let headersLength = self.headersLength
        // A closed range: `bytes[headersLength...]` went through an unspecialised `dropFirst` call.
        return self.body.withUnsafeReadableBytes { bytes in body(UnsafeRawBufferPointer(rebasing: bytes[headersLength..<bytes.count])) }
    }
}
