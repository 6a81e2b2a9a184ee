import Hummingbird
import NIOCore

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
    func collectBody(upTo limit: Int, timeout: Duration, drain: Int) async throws(BodyFailure) -> ByteBuffer {
        let body = self.body
        let result = await withTaskGroup(of: Result<ByteBuffer, BodyFailure>?.self) { group in
            group.addTask {
                var collected = ByteBuffer()
                var overBy = -1
                do {
                    // The body can be iterated once: the same loop collects, then drains.
                    for try await part in body {
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
                    // Cancelled by the timeout: the other child reports it.
                    return Task.isCancelled ? nil : .failure(overBy >= 0 ? .tooLarge : .timedOut)
                }
                return overBy >= 0 ? .failure(.tooLarge) : .success(collected)
            }
            group.addTask {
                // Not `Task.sleep`: see ``Deadlines``.
                await Deadlines.shared.wait(until: .now + timeout) ? .failure(.timedOut) : nil
            }
            var outcome: Result<ByteBuffer, BodyFailure> = .failure(.timedOut)
            while let next = await group.next() {
                if let next {
                    outcome = next
                    break
                }
            }
            group.cancelAll()
            return outcome
        }
        return try result.get()
    }
}
