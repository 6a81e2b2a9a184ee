public import NIOCore

/// One event-stream message whose CRCs and header records have been checked.
///
/// Headers and payload are slices of the bytes the decoder was fed (no copy when the message lay
/// inside one read). A slice keeps its whole parent buffer alive: copy what you keep past the stream.
public struct EventStreamMessage: Hashable, Sendable {
    public var headers: EventStreamHeaders
    public var payload: ByteBuffer

    public init(headers: EventStreamHeaders, payload: ByteBuffer) {
        self.headers = headers
        self.payload = payload
    }
}
