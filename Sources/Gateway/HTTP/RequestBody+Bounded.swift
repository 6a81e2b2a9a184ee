import Hummingbird
import NIOCore
import Synchronization

/// Why a request body was not received.
enum BodyFailure: Error {
    case tooLarge
    /// The client stopped sending before the body was complete (a slow or stalled client).
    case timedOut

    func gatewayError(limit: Int, timeout: Duration) -> GatewayError {
        switch self {
        case .tooLarge:
            return .payloadTooLarge(limit: limit)
        case .timedOut:
            return GatewayError(.requestBodyTimeout, "the request body did not arrive within \(timeout.components.seconds) s")
        }
    }

    /// A bounded label for the ledger and the audit line.
    var code: String {
        switch self {
        case .tooLarge: "request_too_large"
        case .timedOut: "request_body_timeout"
        }
    }
}

extension Request {
    /// The whole body, at most `limit` bytes, within `timeout`: a client may neither send too much
    /// nor hold a connection and its buffers by sending slowly.
    ///
    /// A body over the limit is still read to its end, up to `drain` more bytes, and dropped: a
    /// client that sends its whole body before it reads anything (Python's urllib, which also asks
    /// for `Connection: close`) then reads the 413 instead of a reset, and does not wait for the
    /// idle timeout. Past the drain allowance the connection is closed.
    ///
    /// A client that waits for `100 Continue` before it sends (`Expect`) and declares a length over
    /// the limit is refused on that length: it is not asked for the body, and does not send it.
    func collectBody(upTo limit: Int, timeout: Duration, drain: Int) async throws(BodyFailure) -> ByteBuffer {
        if self.headers.expectsContinue, let length = self.headers[.contentLength].flatMap(Int.init), length > limit {
            throw .tooLarge
        }
        // In this task, not in a child task beside a timer's: the two tasks, their group and the
        // timer's wake-up were five of the ~13 task switches of a whole streamed request. The
        // time limit cancels this task instead, which ends the body's iteration as cancelling the
        // child did; the request then only answers with the error, which no cancellation stops.
        let bound = withUnsafeCurrentTask { TimeLimit(reading: $0) }
        let timer = Deadlines.shared.schedule(at: .now + timeout) { bound.expire() }
        var collected = ByteBuffer()
        var overBy = -1
        var failed = false
        do {
            // The body can be iterated once: the same loop collects, then drains.
            for try await part in self.body {
                if overBy < 0 {
                    if collected.readableBytes + part.readableBytes <= limit {
                        collected.writeImmutableBuffer(part)
                        continue
                    }
                    overBy = 0
                    collected = ByteBuffer()
                }
                overBy += part.readableBytes
                if overBy > drain { break }
            }
        } catch {
            failed = true
        }
        Deadlines.shared.cancel(timer)
        // A cancelled iteration may end as if the body had: a cancelled task has no whole body.
        if bound.finish() || Task.isCancelled { throw .timedOut }
        if overBy >= 0 { throw .tooLarge }
        if failed { throw .timedOut }
        return collected
    }
}

/// A body's time limit: when it passes while the body is still being read, the reading task is
/// cancelled. Its lock keeps the task alive while it is cancelled: the task takes the same lock
/// (``finish()``) before it leaves the body, so it cannot have ended meanwhile.
private final class TimeLimit: Sendable {
    /// The reading task, used only under the lock and while it reads (see above).
    private struct Reader: @unchecked Sendable {
        let task: UnsafeCurrentTask
    }

    private enum State: Sendable {
        case reading(Reader?)
        case expired
        case finished
    }

    private let state: Mutex<State>

    init(reading task: UnsafeCurrentTask?) {
        self.state = Mutex(.reading(task.map(Reader.init)))
    }

    func expire() {
        self.state.withLock { state in
            guard case .reading(let reader) = state else { return }
            reader?.task.cancel()
            state = .expired
        }
    }

    /// Whether the limit passed before the body was read.
    func finish() -> Bool {
        self.state.withLock { state in
            let expired = if case .expired = state { true } else { false }
            state = .finished
            return expired
        }
    }
}
