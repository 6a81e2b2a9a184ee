/// Why an event stream was rejected, and where.
///
/// The decoder stops at the first error and refuses all later input: after a failed check nothing in
/// the stream can be trusted, and the protocol has no way to resynchronise (EVENTSTREAM.md §2).
/// `code` is bounded and safe as a metric label; the description never contains payload bytes.
public struct EventStreamError: Error, Hashable, Sendable {
    /// Which check failed. New codes may be added; switch with a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Base: Hashable, Sendable {
            case preludeChecksum
            case messageChecksum
            case messageTooShort
            case headersLengthInvalid
            case messageTooLarge
            case headersTooLarge
            case headerMalformed
            case truncated
            case streamAlreadyFailed
        }

        fileprivate let base: Base

        /// The CRC of the 8 length bytes does not match the prelude CRC.
        public static let preludeChecksum = Code(base: .preludeChecksum)
        /// The CRC of the whole message does not match its trailing CRC.
        public static let messageChecksum = Code(base: .messageChecksum)
        /// `total_length` is below 16, the size of an empty message.
        public static let messageTooShort = Code(base: .messageTooShort)
        /// `headers_length` is larger than `total_length − 16`.
        public static let headersLengthInvalid = Code(base: .headersLengthInvalid)
        /// `total_length` is above the configured maximum (24 MiB by default).
        public static let messageTooLarge = Code(base: .messageTooLarge)
        /// `headers_length` is above the configured maximum (128 KiB by default).
        public static let headersTooLarge = Code(base: .headersTooLarge)
        /// A header record is incomplete, runs past the header section, has an empty name, an
        /// unknown type code, an oversized value, or repeats a name.
        public static let headerMalformed = Code(base: .headerMalformed)
        /// The stream ended inside a message.
        public static let truncated = Code(base: .truncated)
        /// Input was given to a decoder that had already failed.
        public static let streamAlreadyFailed = Code(base: .streamAlreadyFailed)

        /// A short fixed name, e.g. `prelude_checksum`: the error classes of EVENTSTREAM.md §7.
        public var description: String {
            switch self.base {
            case .preludeChecksum: "prelude_checksum"
            case .messageChecksum: "message_checksum"
            case .messageTooShort: "message_too_short"
            case .headersLengthInvalid: "headers_length_invalid"
            case .messageTooLarge: "message_too_large"
            case .headersTooLarge: "headers_too_large"
            case .headerMalformed: "header_malformed"
            case .truncated: "truncated"
            case .streamAlreadyFailed: "stream_already_failed"
            }
        }
    }

    /// Which check failed.
    public var code: Code
    /// Offset in the stream (bytes since the first byte fed) of the first byte of the failing message.
    public var messageOffset: Int
    /// Offset in the stream of the field whose check failed (the prelude CRC, a header record, the
    /// message CRC, or the end of input for ``Code/truncated``).
    public var streamOffset: Int

    package init(_ code: Code, messageOffset: Int, streamOffset: Int) {
        self.code = code
        self.messageOffset = messageOffset
        self.streamOffset = streamOffset
    }
}

extension EventStreamError: CustomStringConvertible {
    public var description: String {
        "event stream error \(self.code) at byte \(self.streamOffset) (message starting at byte \(self.messageOffset))"
    }
}
