public import NIOCore

/// An incremental decoder of AWS event-stream messages (`application/vnd.amazon.eventstream`).
///
/// Feed it the bytes of a response body as they arrive, split anywhere, and take complete messages
/// out. Every message has passed both CRC checks and the header checks before it is returned.
///
/// ```swift
/// var decoder = EventStreamDecoder()
/// for try await read in body {
///     try decoder.feed(read)
///     while let message = try decoder.next() { handle(message) }
/// }
/// try decoder.finish()   // throws `.truncated` if the body ended inside a message
/// ```
///
/// Cost model: a message that lies inside one read is returned as slices of that read, with no copy
/// and no allocation. A message split across reads is copied once into a buffer sized from its
/// validated prelude (reused for the next split message when nothing holds on to it).
///
/// Limits are checked from the 12-byte prelude, before any body byte is buffered: the prelude CRC,
/// then `total_length >= 16`, then `headers_length <= total_length - 16`, then the size maxima. A
/// lying length therefore never causes an allocation.
///
/// - Important: after any error the decoder is dead: every later call throws. A corrupt stream is
///   never resynchronised (EVENTSTREAM.md §7).
public struct EventStreamDecoder {
    /// Size limits, checked from each prelude.
    public struct Limits: Hashable, Sendable {
        /// Largest accepted `total_length`. Default 24 MiB, the service maximum the Smithy
        /// specification reserves the right to raise; a gateway must bound memory, so it is enforced.
        public var maximumMessageLength: Int
        /// Largest accepted `headers_length`. Default 128 KiB, the service maximum.
        public var maximumHeadersLength: Int

        public init(maximumMessageLength: Int = 24 * 1024 * 1024, maximumHeadersLength: Int = 128 * 1024) {
            self.maximumMessageLength = maximumMessageLength
            self.maximumHeadersLength = maximumHeadersLength
        }
    }

    /// The length fields of a prelude that passed its checks.
    private struct Prelude {
        var totalLength: Int
        var headersLength: Int
    }

    private enum State {
        /// Between messages; `input` holds fewer than 12 bytes of a new message only if `partial`
        /// is set.
        case idle
        /// Collecting the first 12 bytes of a message in `partial`.
        case collectingPrelude
        /// Collecting the rest of a message whose prelude passed, in `partial`.
        case collectingMessage(Prelude)
        /// An error ended the stream.
        case failed(EventStreamError)
    }

    static let preludeLength = 12
    static let minimumMessageLength = 16

    public let limits: Limits
    private var state: State = .idle
    /// Unread bytes of the latest read (messages are sliced from here when they lie inside it).
    private var input = ByteBuffer()
    /// Accumulates one message that spans reads; kept between messages to reuse its storage.
    private var partial = ByteBuffer()
    /// Stream offset of the first byte of `input`'s readable bytes or, while collecting, of the
    /// message in `partial`.
    private var messageOffset = 0
    /// Bytes fed so far.
    private var bytesFed = 0

    /// Reuse `partial`'s storage for the next split message only up to this size, so one large
    /// message does not pin its memory for the rest of the stream.
    private static let maximumRetainedPartialCapacity = 64 * 1024

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Adds the next bytes of the stream. Call ``next()`` until it returns `nil` before feeding again.
    ///
    /// - Throws: the stream's error if the decoder has already failed.
    public mutating func feed(_ buffer: ByteBuffer) throws {
        if case .failed(let error) = self.state { throw Self.alreadyFailed(error) }
        self.bytesFed += buffer.readableBytes
        if self.input.readableBytes == 0 {
            // The common case: the previous read was consumed exactly. Take the new one as is.
            self.input = buffer
        } else {
            // Only reachable if the caller fed again before draining `next()`; keep every byte.
            self.input.writeImmutableBuffer(buffer)
        }
    }

    /// The next complete message, or `nil` when more bytes are needed.
    ///
    /// - Throws: ``EventStreamError`` when a check fails; the decoder is then dead.
    public mutating func next() throws -> EventStreamMessage? {
        do {
            return try self.step()
        } catch let error as EventStreamError {
            self.state = .failed(error)
            self.input = ByteBuffer()
            self.partial = ByteBuffer()
            throw error
        }
    }

    /// Declares the end of the stream.
    ///
    /// - Throws: ``EventStreamError/Code-swift.struct/truncated`` if the stream ended inside a message
    ///   (even 1 byte into a prelude), or the stream's earlier error.
    public mutating func finish() throws {
        switch self.state {
        case .failed(let error):
            throw Self.alreadyFailed(error)
        case .idle where self.input.readableBytes == 0:
            return
        case .idle, .collectingPrelude, .collectingMessage:
            let error = EventStreamError(.truncated, messageOffset: self.messageOffset, streamOffset: self.bytesFed)
            self.state = .failed(error)
            throw error
        }
    }

    /// Whether the bytes fed so far end exactly at a message boundary.
    public var isAtMessageBoundary: Bool {
        if case .idle = self.state { return self.input.readableBytes == 0 }
        return false
    }

    /// The capacity of the split-message buffer (tests check it is sized once, from the prelude).
    package var partialCapacity: Int { self.partial.capacity }

    private static func alreadyFailed(_ error: EventStreamError) -> EventStreamError {
        if error.code == .streamAlreadyFailed { return error }
        return EventStreamError(.streamAlreadyFailed, messageOffset: error.messageOffset, streamOffset: error.streamOffset)
    }

    private mutating func step() throws -> EventStreamMessage? {
        switch self.state {
        case .failed(let error):
            throw Self.alreadyFailed(error)

        case .idle:
            let available = self.input.readableBytes
            if available == 0 { return nil }
            if available < Self.preludeLength {
                self.startPartial(capacity: Self.preludeLength)
                self.partial.writeBuffer(&self.input)
                self.state = .collectingPrelude
                return nil
            }
            let prelude = try self.checkPrelude(in: self.input)
            if available >= prelude.totalLength {
                // Safe to force unwrap: `available >= totalLength` was just checked.
                let frame = self.input.readSlice(length: prelude.totalLength)!
                let message = try self.checkMessage(frame, prelude: prelude)
                self.messageOffset += prelude.totalLength
                return message
            }
            self.startPartial(capacity: prelude.totalLength)
            self.partial.writeBuffer(&self.input)
            self.state = .collectingMessage(prelude)
            return nil

        case .collectingPrelude:
            self.fillPartial(upTo: Self.preludeLength)
            if self.partial.readableBytes < Self.preludeLength { return nil }
            let prelude = try self.checkPrelude(in: self.partial)
            self.partial.reserveCapacity(prelude.totalLength)
            self.state = .collectingMessage(prelude)
            return try self.step()

        case .collectingMessage(let prelude):
            self.fillPartial(upTo: prelude.totalLength)
            if self.partial.readableBytes < prelude.totalLength { return nil }
            let message = try self.checkMessage(self.partial, prelude: prelude)
            self.messageOffset += prelude.totalLength
            self.state = .idle
            return message
        }
    }

    /// Makes `partial` an empty buffer of at least `capacity` bytes, reusing its storage when the last
    /// split message handed out has been released (no allocation then).
    private mutating func startPartial(capacity: Int) {
        if self.partial.capacity > Self.maximumRetainedPartialCapacity {
            self.partial = ByteBuffer()
        }
        self.partial.clear(minimumCapacity: capacity)
    }

    /// Moves bytes from `input` into `partial` until it holds `length` bytes or `input` is empty. Bytes
    /// after the current message stay in `input`, so later messages of this read are not copied.
    private mutating func fillPartial(upTo length: Int) {
        let wanted = min(length - self.partial.readableBytes, self.input.readableBytes)
        guard wanted > 0 else { return }
        // Safe to force unwrap: `wanted <= input.readableBytes`.
        var chunk = self.input.readSlice(length: wanted)!
        self.partial.writeBuffer(&chunk)
    }

    /// Checks the prelude at the start of `buffer`'s readable bytes (at least 12 of them), in the order
    /// EVENTSTREAM.md §4 requires, with arithmetic that cannot wrap (lengths are read as UInt32 and
    /// widened to Int before any sum).
    private func checkPrelude(in buffer: ByteBuffer) throws -> Prelude {
        let start = buffer.readerIndex
        // Safe to force unwrap: callers guarantee 12 readable bytes.
        let (total, headers, preludeCRC) = buffer.getMultipleIntegers(at: start, as: (UInt32, UInt32, UInt32).self)!
        let computed = buffer.withUnsafeReadableBytes { bytes in
            EventStreamCRC.update(0, UnsafeRawBufferPointer(rebasing: bytes[0..<8]))
        }
        guard computed == preludeCRC else {
            throw EventStreamError(.preludeChecksum, messageOffset: self.messageOffset, streamOffset: self.messageOffset + 8)
        }
        let totalLength = Int(total)
        let headersLength = Int(headers)
        guard totalLength >= Self.minimumMessageLength else {
            throw EventStreamError(.messageTooShort, messageOffset: self.messageOffset, streamOffset: self.messageOffset)
        }
        guard headersLength <= totalLength - Self.minimumMessageLength else {
            throw EventStreamError(.headersLengthInvalid, messageOffset: self.messageOffset, streamOffset: self.messageOffset + 4)
        }
        guard totalLength <= self.limits.maximumMessageLength else {
            throw EventStreamError(.messageTooLarge, messageOffset: self.messageOffset, streamOffset: self.messageOffset)
        }
        guard headersLength <= self.limits.maximumHeadersLength else {
            throw EventStreamError(.headersTooLarge, messageOffset: self.messageOffset, streamOffset: self.messageOffset + 4)
        }
        return Prelude(totalLength: totalLength, headersLength: headersLength)
    }

    /// Verifies the message CRC of a complete frame (exactly `prelude.totalLength` readable bytes), then
    /// every header record, and returns the message as slices of `frame`.
    private func checkMessage(_ frame: ByteBuffer, prelude: Prelude) throws -> EventStreamMessage {
        let total = prelude.totalLength
        let headersLength = prelude.headersLength
        let failure: (code: EventStreamError.Code, at: Int)? = frame.withUnsafeReadableBytes { bytes in
            // The message CRC covers bytes 0..<total-4; resume from the prelude CRC (which is the CRC
            // of bytes 0..<8, already checked) so each byte is hashed once.
            let preludeCRC = UInt32(bigEndianBytes: bytes, at: 8)
            let computed = EventStreamCRC.update(preludeCRC, UnsafeRawBufferPointer(rebasing: bytes[8..<total - 4]))
            guard computed == UInt32(bigEndianBytes: bytes, at: total - 4) else {
                return (.messageChecksum, total - 4)
            }
            let section = UnsafeRawBufferPointer(rebasing: bytes[12..<12 + headersLength])
            if let bad = Self.firstMalformedHeader(in: section) {
                return (.headerMalformed, 12 + bad)
            }
            return nil
        }
        if let failure {
            throw EventStreamError(failure.code, messageOffset: self.messageOffset, streamOffset: self.messageOffset + failure.at)
        }
        let start = frame.readerIndex
        // Safe to force unwrap: both ranges lie inside the frame (headers ≤ total − 16 was checked).
        let section = frame.getSlice(at: start + 12, length: headersLength)!
        let payload = frame.getSlice(at: start + 12 + headersLength, length: total - 16 - headersLength)!
        return EventStreamMessage(headers: EventStreamHeaders(validatedSection: section), payload: payload)
    }

    /// The offset of the first bad header record in `section`, or `nil` when all are well formed and
    /// no name repeats.
    ///
    /// Duplicate names are forbidden by the spec and read differently by different SDKs (first wins,
    /// last wins, both delivered), so a frame with one is refused rather than interpreted. Bedrock
    /// sends three headers, checked pairwise with no allocation; past `pairwiseHeaderCount` the names
    /// go into a set, so a hostile 128 KiB section of tiny headers costs linear time, not quadratic.
    private static func firstMalformedHeader(in section: UnsafeRawBufferPointer) -> Int? {
        var offset = 0
        var index = 0
        var seen: Set<[UInt8]> = []
        while offset < section.count {
            guard let record = HeaderRecord.parse(section, at: offset) else { return offset }
            let name = UnsafeRawBufferPointer(rebasing: section[record.nameStart..<record.nameStart + record.nameLength])
            if index < Self.pairwiseHeaderCount {
                if Self.name(name, appearsBefore: offset, in: section) { return offset }
            } else {
                if index == Self.pairwiseHeaderCount { seen = Self.names(before: offset, in: section) }
                if !seen.insert(Array(name)).inserted { return offset }
            }
            offset = record.end
            index += 1
        }
        return nil
    }

    private static let pairwiseHeaderCount = 16

    private static func name(_ name: UnsafeRawBufferPointer, appearsBefore end: Int, in section: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < end, let earlier = HeaderRecord.parse(section, at: offset) {
            if earlier.nameLength == name.count,
                UnsafeRawBufferPointer(rebasing: section[earlier.nameStart..<earlier.nameStart + earlier.nameLength])
                    .elementsEqual(name)
            {
                return true
            }
            offset = earlier.end
        }
        return false
    }

    private static func names(before end: Int, in section: UnsafeRawBufferPointer) -> Set<[UInt8]> {
        var names: Set<[UInt8]> = []
        var offset = 0
        while offset < end, let record = HeaderRecord.parse(section, at: offset) {
            names.insert(Array(section[record.nameStart..<record.nameStart + record.nameLength]))
            offset = record.end
        }
        return names
    }
}

@available(*, unavailable)
extension EventStreamDecoder: Sendable {}

extension UInt32 {
    fileprivate init(bigEndianBytes bytes: UnsafeRawBufferPointer, at offset: Int) {
        self = UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
            | UInt32(bytes[offset + 3])
    }
}
