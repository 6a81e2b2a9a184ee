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
/// validated prelude (up to 256 KiB; larger ones grow as their bytes arrive), and that buffer is reused
/// for the next split message when nothing holds on to the last one.
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
    fileprivate struct Prelude {
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
    /// The last header section that passed its checks: a frame with the same section bytes passes
    /// them too, so it is compared instead of checked again (Bedrock repeats its headers frame after
    /// frame).
    private var checkedHeaders = HeaderSectionMemo()

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
            if available == 0 {
                // The read is used up: let its storage go, or the connection that read it could
                // not reuse it for its next read (NIO reuses a receive buffer only when it is the
                // buffer's last holder) and would hold a second one for every open stream.
                self.input = ByteBuffer()
                return nil
            }
            if available < Self.preludeLength {
                self.startPartial(capacity: Self.preludeLength)
                self.partial.writeBuffer(&self.input)
                self.input = ByteBuffer()
                self.state = .collectingPrelude
                return nil
            }
            // The common case checks prelude, message CRC and headers in one borrow of the read:
            // each borrow of a ByteBuffer costs a dynamic exclusivity check.
            let limits = self.limits
            let check = self.input.withUnsafeReadableBytes { bytes -> FrameCheck in
                switch Self.checkPrelude(bytes, limits: limits) {
                case .failure(let failure):
                    return .failed(failure)
                case .success(let prelude) where bytes.count >= prelude.totalLength:
                    if let failure = Self.checkMessage(bytes, prelude: prelude, checkedHeaders: &self.checkedHeaders) {
                        return .failed(failure)
                    }
                    return .complete(prelude)
                case .success(let prelude):
                    return .incomplete(prelude)
                }
            }
            switch check {
            case .failed(let failure):
                throw self.error(failure)
            case .complete(let prelude):
                let message = self.input.sliceMessage(prelude: prelude)
                self.input.moveReaderIndex(forwardBy: prelude.totalLength)
                self.messageOffset += prelude.totalLength
                return message
            case .incomplete(let prelude):
                self.startPartial(capacity: Self.initialCapacity(for: prelude))
                self.partial.writeBuffer(&self.input)
                self.input = ByteBuffer()
                self.state = .collectingMessage(prelude)
                return nil
            }

        case .collectingPrelude:
            self.fillPartial(upTo: Self.preludeLength)
            if self.partial.readableBytes < Self.preludeLength { return nil }
            let limits = self.limits
            switch self.partial.withUnsafeReadableBytes({ Self.checkPrelude($0, limits: limits) }) {
            case .failure(let failure):
                throw self.error(failure)
            case .success(let prelude):
                self.partial.reserveCapacity(Self.initialCapacity(for: prelude))
                self.state = .collectingMessage(prelude)
                return try self.step()
            }

        case .collectingMessage(let prelude):
            self.fillPartial(upTo: prelude.totalLength)
            if self.partial.readableBytes < prelude.totalLength { return nil }
            if let failure = self.partial.withUnsafeReadableBytes({
                Self.checkMessage($0, prelude: prelude, checkedHeaders: &self.checkedHeaders)
            }) {
                throw self.error(failure)
            }
            let message = self.partial.sliceMessage(prelude: prelude)
            self.messageOffset += prelude.totalLength
            self.state = .idle
            return message
        }
    }

    private enum FrameCheck {
        case failed(Failure)
        case complete(Prelude)
        case incomplete(Prelude)
    }

    /// A failed check: its code and the offset of the failing field within the message.
    private struct Failure: Error {
        var code: EventStreamError.Code
        var offset: Int
    }

    private func error(_ failure: Failure) -> EventStreamError {
        EventStreamError(failure.code, messageOffset: self.messageOffset, streamOffset: self.messageOffset + failure.offset)
    }

    /// Up to this size a split message's buffer is sized from the prelude at once, so its bytes are
    /// copied exactly once. Larger messages grow with the bytes that actually arrive: a valid prelude
    /// claiming 24 MiB must not make a stream reserve 24 MiB on the strength of 12 bytes.
    private static let maximumUpfrontCapacity = 256 * 1024

    private static func initialCapacity(for prelude: Prelude) -> Int {
        min(prelude.totalLength, Self.maximumUpfrontCapacity)
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
        // Copied: the read's storage is not held while the message waits for more (see `.idle`).
        if self.input.readableBytes == 0 { self.input = ByteBuffer() }
    }

    /// Checks the prelude at the start of `bytes` (at least 12 of them), in the order EVENTSTREAM.md §4
    /// requires, with arithmetic that cannot wrap (lengths are read as UInt32 and widened to Int before
    /// any sum).
    private static func checkPrelude(_ bytes: UnsafeRawBufferPointer, limits: Limits) -> Result<Prelude, Failure> {
        let computed = EventStreamCRC.update(0, UnsafeRawBufferPointer(rebasing: bytes[0..<8]))
        guard computed == UInt32(bigEndianBytes: bytes, at: 8) else {
            return .failure(Failure(code: .preludeChecksum, offset: 8))
        }
        let totalLength = Int(UInt32(bigEndianBytes: bytes, at: 0))
        let headersLength = Int(UInt32(bigEndianBytes: bytes, at: 4))
        guard totalLength >= Self.minimumMessageLength else {
            return .failure(Failure(code: .messageTooShort, offset: 0))
        }
        guard headersLength <= totalLength - Self.minimumMessageLength else {
            return .failure(Failure(code: .headersLengthInvalid, offset: 4))
        }
        guard totalLength <= limits.maximumMessageLength else {
            return .failure(Failure(code: .messageTooLarge, offset: 0))
        }
        guard headersLength <= limits.maximumHeadersLength else {
            return .failure(Failure(code: .headersTooLarge, offset: 4))
        }
        return .success(Prelude(totalLength: totalLength, headersLength: headersLength))
    }

    /// Verifies the message CRC of the complete frame at the start of `bytes`, then every header record
    /// (unless the section is the last one that passed).
    private static func checkMessage(
        _ bytes: UnsafeRawBufferPointer, prelude: Prelude, checkedHeaders: inout HeaderSectionMemo
    ) -> Failure? {
        let total = prelude.totalLength
        // The message CRC covers bytes 0..<total-4; resume from the prelude CRC (the CRC of bytes
        // 0..<8, already checked) so each byte is hashed once.
        let preludeCRC = UInt32(bigEndianBytes: bytes, at: 8)
        let computed = EventStreamCRC.update(preludeCRC, UnsafeRawBufferPointer(rebasing: bytes[8..<total - 4]))
        guard computed == UInt32(bigEndianBytes: bytes, at: total - 4) else {
            return Failure(code: .messageChecksum, offset: total - 4)
        }
        let section = UnsafeRawBufferPointer(rebasing: bytes[12..<12 + prelude.headersLength])
        if checkedHeaders.matches(section) { return nil }
        if let bad = Self.firstMalformedHeader(in: section) {
            return Failure(code: .headerMalformed, offset: 12 + bad)
        }
        checkedHeaders.remember(section)
        return nil
    }

    /// The offset of the first bad header record in `section`, or `nil` when all are well formed and
    /// no name repeats.
    ///
    /// Duplicate names are forbidden by the spec and read differently by different SDKs (first wins,
    /// last wins, both delivered), so a frame with one is refused rather than interpreted. The first
    /// `pairwiseHeaderCount` names are remembered on the stack and compared pairwise (Bedrock sends
    /// three, so this allocates nothing); past that the names go into a set, so a hostile 128 KiB
    /// section of tiny headers costs linear time, not quadratic.
    private static func firstMalformedHeader(in section: UnsafeRawBufferPointer) -> Int? {
        withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: Self.pairwiseHeaderCount) { names in
            var offset = 0
            var count = 0
            // Created only past `pairwiseHeaderCount`: even an empty Set costs a release per frame.
            var seen: Set<[UInt8]>?
            while offset < section.count {
                guard let record = HeaderRecord.parse(section, at: offset) else { return offset }
                let range = record.nameStart..<record.nameStart + record.nameLength
                if count < Self.pairwiseHeaderCount {
                    for index in 0..<count where Self.equal(names[index], range, in: section) {
                        return offset
                    }
                    names.initializeElement(at: count, to: range)
                } else {
                    var set = seen ?? Set(names.map { Array(section[$0]) })
                    seen = nil  // keeps `set` uniquely referenced, so inserting does not copy it
                    if !set.insert(Array(section[range])).inserted { return offset }
                    seen = set
                }
                offset = record.end
                count += 1
            }
            return nil
        }
    }

    private static let pairwiseHeaderCount = 16

    @inline(__always)
    private static func equal(_ a: Range<Int>, _ b: Range<Int>, in section: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        var i = a.lowerBound
        var j = b.lowerBound
        while i < a.upperBound {
            if section[i] != section[j] { return false }
            i += 1
            j += 1
        }
        return true
    }
}

@available(*, unavailable)
extension EventStreamDecoder: Sendable {}

extension ByteBuffer {
    /// The message at the start of the readable bytes, whose frame has passed its checks: it shares
    /// this buffer's storage.
    @inline(__always)
    fileprivate func sliceMessage(prelude: EventStreamDecoder.Prelude) -> EventStreamMessage {
        // The range lies inside the checked frame (headers ≤ total − 16).
        EventStreamMessage(
            checkedFrameIn: self, at: self.readerIndex + 12, length: prelude.totalLength - 16, headersLength: prelude.headersLength
        )
    }
}

extension UInt32 {
    fileprivate init(bigEndianBytes bytes: UnsafeRawBufferPointer, at offset: Int) {
        self = UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
            | UInt32(bytes[offset + 3])
    }
}
