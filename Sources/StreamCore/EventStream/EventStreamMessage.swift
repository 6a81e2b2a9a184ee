public import NIOCore

/// One event-stream message whose CRCs and header records have been checked.
///
/// Headers and payload are slices of the bytes the decoder was fed (no copy when the message lay
/// inside one read). A slice keeps its whole parent buffer alive: copy what you keep past the stream.
///
/// The message holds one slice, the header section followed by the payload, and hands out the two
/// parts on demand: a second stored slice cost every frame a retain, a release and a bounds-checked
/// `getSlice` (about 100 instructions, an eighth of decoding a text delta), and the per-frame
/// translators borrow the parts in place instead (`withUnsafeHeaderSection`, `withUnsafePayload`).
public struct EventStreamMessage: Hashable, Sendable {
    /// The header section, then the payload.
    private var body: ByteBuffer
    private var headersLength: Int

    public init(headers: EventStreamHeaders, payload: ByteBuffer) {
        var body = ByteBuffer()
        body.reserveCapacity(headers.section.readableBytes + payload.readableBytes)
        body.writeImmutableBuffer(headers.section)
        body.writeImmutableBuffer(payload)
        self.init(body: body, headersLength: headers.section.readableBytes)
    }

    /// A message from the checked frame's header section and payload, in one slice.
    package init(body: ByteBuffer, headersLength: Int) {
        precondition(headersLength <= body.readableBytes, "EventStreamMessage: header section longer than the message")
        self.body = body
        self.headersLength = headersLength
    }

    public var headers: EventStreamHeaders {
        get {
            // Safe to force unwrap: `headersLength <= body.readableBytes` (checked in init).
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
