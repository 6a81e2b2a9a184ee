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
        self.withMessageType { type, _ in type }
    }

    /// Reads `:message-type` and `:event-type` in one walk of the headers and passes them to `body`,
    /// the event type as the borrowed bytes of its value: the translators' per-frame dispatch.
    ///
    /// (Having the decoder note these positions while it validates was measured: it cost the decoder
    /// more than it saved the translator.)
    package func withMessageType<Result>(
        _ body: (MessageType?, UnsafeRawBufferPointer?) -> Result
    ) -> Result {
        self.section.withUnsafeReadableBytes { bytes in
            var messageType: MessageType?
            var eventType: UnsafeRawBufferPointer?
            var offset = 0
            while offset < bytes.count {
                let record = HeaderRecord(validatedIn: bytes, at: offset)
                offset = record.end
                let name = UnsafeRawBufferPointer(rebasing: bytes[record.nameStart..<record.nameStart + record.nameLength])
                let value = UnsafeRawBufferPointer(rebasing: bytes[record.valueStart..<record.valueStart + record.valueLength])
                if name.elementsEqual(":message-type") {
                    guard record.typeCode == 7 else {
                        messageType = .unknown
                        continue
                    }
                    messageType = value.elementsEqual("event") ? .event
                        : value.elementsEqual("exception") ? .exception
                        : value.elementsEqual("error") ? .error
                        : .unknown
                } else if record.typeCode == 7, name.elementsEqual(":event-type") {
                    eventType = value
                }
            }
            return body(messageType, eventType)
        }
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
