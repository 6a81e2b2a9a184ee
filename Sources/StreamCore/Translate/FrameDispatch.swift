/// An event kind recognised from the bytes of a string `:event-type` header.
protocol FrameEventKind {
    init(eventType: UnsafeRawBufferPointer)
}

/// The message type and the event kind of a stream's frames, worked out once per distinct header
/// section: consecutive frames of one kind repeat their headers byte for byte (see
/// `HeaderSectionMemo`), so the per-frame dispatch of the translators and meters is a compare.
struct FrameDispatch<Event: FrameEventKind> {
    private var section = HeaderSectionMemo()
    private var messageType: EventStreamHeaders.MessageType?
    private var event: Event?

    init() {}

    /// `:message-type` and the kind of `:event-type` of `message` (each `nil` when absent).
    @inline(__always)
    mutating func kind(of message: EventStreamMessage) -> (EventStreamHeaders.MessageType?, Event?) {
        message.withUnsafeHeaderSection { bytes in
            if !self.section.matches(bytes) {
                (self.messageType, self.event) = message.headers.withMessageType { type, name in
                    (type, name.map(Event.init(eventType:)))
                }
                self.section.remember(bytes)
            }
            return (self.messageType, self.event)
        }
    }
}
