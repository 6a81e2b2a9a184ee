import Synchronization

/// Faults of one simulator instance as a whole (a region that throttles, is slow, or fails), beside
/// the per-request scenario: what the gateway's routing tests run several instances with. Changed
/// at run time (``set(_:)``), so a test can make a region fail and then recover.
///
/// They apply to the model routes only (`/model/{id}/…`); the inference-profile listing answers.
package final class SimulatorFaults: Sendable {
    package struct Settings: Sendable, Equatable {
        /// The share of model requests answered with ``status`` instead, 0…100. Exact over any run of
        /// 100 requests: with 30, requests 4, 7, 10, … (every one where ⌊n·30/100⌋ steps) are refused.
        package var failurePercent = 0
        /// The status of a refused request: 429 ThrottlingException (the default), 500, 503, or any
        /// other that ``BedrockError/forScenario(status:modelID:)`` knows.
        package var status = 429
        /// `Retry-After` on refused requests.
        package var retryAfterSeconds: Int?
        /// A pause before every model request's response head (refusals included).
        package var firstByteDelay: Duration = .zero

        package init(failurePercent: Int = 0, status: Int = 429, retryAfterSeconds: Int? = nil, firstByteDelay: Duration = .zero) {
            self.failurePercent = failurePercent
            self.status = status
            self.retryAfterSeconds = retryAfterSeconds
            self.firstByteDelay = firstByteDelay
        }
    }

    private let state: Mutex<(settings: Settings, requests: Int)>

    package init(_ settings: Settings = Settings()) {
        self.state = Mutex((settings, 0))
    }

    package func set(_ settings: Settings) {
        self.state.withLock { $0 = (settings, 0) }
    }

    package var settings: Settings {
        self.state.withLock { $0.settings }
    }

    /// For the next model request: the pause before answering, and the error to answer instead, if any.
    func next(modelID: String?) -> (delay: Duration, error: BedrockError?) {
        self.state.withLock { state in
            state.requests += 1
            let percent = max(0, min(100, state.settings.failurePercent))
            let n = state.requests
            let refused = percent > 0 && (n * percent) / 100 > ((n - 1) * percent) / 100
            var error: BedrockError?
            if refused {
                error = BedrockError.forScenario(status: state.settings.status, modelID: modelID)
                error?.retryAfterSeconds = state.settings.retryAfterSeconds
            }
            return (state.settings.firstByteDelay, error)
        }
    }
}
