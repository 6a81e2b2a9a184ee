import Synchronization

/// The `anthropic_beta` values Bedrock refused for a model, remembered for the life of the process.
///
/// Bedrock answers `400 ValidationException {"message":"invalid beta flag"}` for any value a model
/// does not take and never says which one. The gateway then retries once with fewer values (the
/// known-good ones, or none) and calls ``remember(model:refused:)`` with what the refused request
/// carried, so later requests to that model drop them before the call instead of paying the round
/// trip again. ``AnthropicBetaPolicy`` consults it on every filter.
///
/// Shared by every request: a `Mutex` around a small dictionary (the critical sections are a lookup
/// or an insert, never across an `await`; STYLE.md §9).
package final class AnthropicBetaRefusals: Sendable {
    /// Model ids come from clients (aliases, ARNs), so the memory is bounded: past this many models,
    /// new ones are not remembered (their refusals cost a retry each, as before).
    package static let maximumModelCount = 1024

    private let refusals = Mutex<[String: Set<String>]>([:])

    package init() {}

    /// Records that Bedrock refused a request to `model` carrying `refused`.
    ///
    /// - Returns: the values not remembered before for that model (empty when nothing is new), so
    ///   the caller logs and counts each refusal once.
    @discardableResult
    package func remember(model: String, refused: some Sequence<String>) -> [String] {
        self.refusals.withLock { refusals in
            var known = refusals[model] ?? []
            guard refusals[model] != nil || refusals.count < Self.maximumModelCount else { return [] }
            var added: [String] = []
            for value in refused where known.insert(value).inserted {
                added.append(value)
            }
            if !added.isEmpty { refusals[model] = known }
            return added
        }
    }

    /// What Bedrock refused for `model` so far.
    package func refused(model: String) -> Set<String> {
        self.refusals.withLock { $0[model] ?? [] }
    }
}
