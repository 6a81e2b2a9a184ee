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
            return GatewayError(
                status: .requestTimeout, type: "invalid_request_error", code: "request_body_timeout",
                message: "the request body did not arrive within \(timeout.components.seconds) s", bedrockType: "ValidationException"
            )
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
    func collectBody(upTo limit: Int, timeout: Duration) async throws(BodyFailure) -> ByteBuffer {
        let body = self.body
        let result = await withTaskGroup(of: Result<ByteBuffer, BodyFailure>?.self) { group in
            group.addTask {
                do {
                    return .success(try await body.collect(upTo: limit))
                } catch {
                    // Cancelled by the timeout: the other child reports it.
                    return Task.isCancelled ? nil : .failure(.tooLarge)
                }
            }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                    return .failure(.timedOut)
                } catch {
                    return nil
                }
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
