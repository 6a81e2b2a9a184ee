public import NIOCore

/// The protocol headers Bedrock sets (EVENTSTREAM.md §5), read without making a `String`.
extension EventStreamHeaders {
    /// The kind of message, from `:message-type`.
    public enum MessageType: Hashable, Sendable {
        /// `event`: a normal event named by `:event-type`.
        case event
        /// `exception`: a modeled error named by `:exception-type`; ends the stream.
        case exception
        /// `error`: an unmodeled error with `:error-code` and `:error-message`; ends the stream.
        case error
        /// Any other value, or a `:message-type` that is not a string.
        case unknown
    }

    /// `:message-type`; `nil` when the header is absent.
    public var messageType: MessageType? {
        guard let value = self.value(named: ":message-type") else { return nil }
        guard case .string(let bytes) = value else { return .unknown }
        return bytes.readableBytesView.elementsEqual("event".utf8) ? .event
            : bytes.readableBytesView.elementsEqual("exception".utf8) ? .exception
            : bytes.readableBytesView.elementsEqual("error".utf8) ? .error
            : .unknown
    }

    /// `:event-type`, e.g. `contentBlockDelta` or `chunk`.
    public var eventType: ByteBuffer? { self.stringBytes(named: ":event-type") }
    /// `:exception-type`, e.g. `throttlingException`.
    public var exceptionType: ByteBuffer? { self.stringBytes(named: ":exception-type") }
    /// `:content-type`, `application/json` for Bedrock.
    public var contentType: ByteBuffer? { self.stringBytes(named: ":content-type") }
    /// `:error-code` of an `error` message.
    public var errorCode: ByteBuffer? { self.stringBytes(named: ":error-code") }
    /// `:error-message` of an `error` message.
    public var errorMessage: ByteBuffer? { self.stringBytes(named: ":error-message") }

    /// Whether `:event-type` is exactly `name`: the allocation-free test the translators use.
    public func isEvent(_ name: StaticString) -> Bool {
        self.string(named: ":event-type", equals: name)
    }
}
