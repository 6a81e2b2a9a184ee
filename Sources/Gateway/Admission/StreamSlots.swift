import Synchronization

/// Bounds the streams open at once, in all and per identity, and knows how many are open (for
/// the metrics and for draining on shutdown).
///
/// A slot is taken when a streaming request is admitted and given back when its
/// ``StreamSlot`` is released — by the request's end, or when the last copy of it goes away if the
/// request was dropped before it could end normally.
package final class StreamSlots: Sendable {
    struct State {
        var total = 0
        var perIdentity: [String: Int] = [:]
    }

    package let maximum: Int
    package let maximumPerIdentity: Int?
    private let state = Mutex(State())

    package init(maximum: Int, maximumPerIdentity: Int?) {
        self.maximum = maximum
        self.maximumPerIdentity = maximumPerIdentity
    }

    /// Streams open now.
    package var open: Int {
        self.state.withLock { $0.total }
    }

    /// A slot for `identity`, or the refusal (503 when the gateway is full, 429 when the identity is).
    func acquire(identity: String) -> Result<StreamSlot, GatewayError> {
        let refusal: GatewayError? = self.state.withLock { state in
            if state.total >= self.maximum {
                return GatewayError(.gatewayBusy, "the gateway has \(self.maximum) streams open, its maximum; retry shortly", retryAfter: 1)
            }
            if let perIdentity = self.maximumPerIdentity, state.perIdentity[identity, default: 0] >= perIdentity {
                return GatewayError(
                    .rateLimited, "concurrent-streams limit (\(perIdentity)) reached for identity \(identity); retry when one ends", retryAfter: 1,
                    reason: "concurrent_streams"
                )
            }
            state.total += 1
            state.perIdentity[identity, default: 0] += 1
            return nil
        }
        if let refusal { return .failure(refusal) }
        return .success(StreamSlot(slots: self, identity: identity))
    }

    fileprivate func release(identity: String) {
        self.state.withLock { state in
            state.total -= 1
            let remaining = state.perIdentity[identity, default: 1] - 1
            state.perIdentity[identity] = remaining > 0 ? remaining : nil
        }
    }
}

/// One open stream's slot; released once.
final class StreamSlot: Sendable {
    private let slots: StreamSlots
    private let identity: String
    private let released = Atomic<Bool>(false)

    fileprivate init(slots: StreamSlots, identity: String) {
        self.slots = slots
        self.identity = identity
    }

    func release() {
        guard !self.released.exchange(true, ordering: .acquiringAndReleasing) else { return }
        self.slots.release(identity: self.identity)
    }

    deinit {
        self.release()
    }
}
