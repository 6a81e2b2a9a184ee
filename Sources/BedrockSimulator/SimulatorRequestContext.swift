internal import Hummingbird
internal import NIOCore

/// Hummingbird's basic context plus the connection's channel, which `drop_after` needs.
struct SimulatorRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// Returns once every body write made so far has reached the channel pipeline (and so the socket,
    /// when it is writable).
    ///
    /// The response writer hands each write to the event loop as a task; a task submitted after them
    /// runs after them. Without this, closing the connection for `drop_after` could discard frames the
    /// writer had accepted but not yet passed on, and the client would see fewer than N frames.
    func writesDelivered() async {
        try? await self.channel.eventLoop.submit {}.get()
    }
}
