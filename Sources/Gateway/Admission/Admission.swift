import StreamCore

/// Whether a request may run: the policies (default deny), the limits (requests, tokens, spend) and
/// the stream slots. Decides and reserves; records nothing (the ``Ledger`` does).
package struct Admission: Sendable {
    package let limiter: UsageLimiter
    /// Streams open now, bounded in all and per identity.
    package let streams: StreamSlots

    /// What a request asks for, as admission sees it.
    package struct Claim: Sendable {
        package var caller: Caller
        package var requested: String
        package var resolved: String
        package var declared: DeclaredRequest
        package var countsAgainstLimits: Bool
        package var isStream: Bool
    }

    /// Admits the claim under `settings`, or says why not (403, 429, 503), with the refusal counted
    /// in the metrics.
    package func admit(_ claim: Claim, settings: GatewaySettings, metrics: GatewayMetrics) async -> Result<AdmissionTicket, GatewayError> {
        switch settings.policies.evaluate(claim.caller, requested: claim.requested, resolved: claim.resolved) {
        case .denied(let reason):
            return .failure(GatewayError(.policyDenied, reason))
        case .allowed(let limits):
            var ticket = AdmissionTicket()
            if claim.countsAgainstLimits {
                switch await self.limiter.admission(limits, reserving: Self.estimate(claim.declared, model: claim.resolved, prices: settings.prices)) {
                case .refused(let refusal):
                    metrics.limitRefusal(refusal.limit)
                    return .failure(refusal.gatewayError)
                case .admitted(let hold):
                    ticket.hold = hold
                }
            }
            if claim.isStream {
                switch self.streams.acquire(identity: claim.caller.identity) {
                case .success(let slot):
                    ticket.slot = slot
                case .failure(let refusal):
                    metrics.limitRefusal(refusal.code == .gatewayBusy ? "gateway_streams" : "concurrent_streams")
                    ticket.hold?.settle(tokens: 0, costUSD: 0)
                    return .failure(refusal)
                }
            }
            return .success(ticket)
        }
    }

    /// What the limits reserve for a request until it ends: input estimated from the body's size,
    /// output from its maximum (or a default), priced from the price table.
    static func estimate(_ declared: DeclaredRequest, model: String, prices: PriceTable) -> LimitEstimate {
        let usage = TokenUsage(
            inputTokens: LimitEstimate.tokens(bytes: declared.bodyBytes),
            outputTokens: declared.maxTokens ?? LimitEstimate.defaultOutputTokens
        )
        return LimitEstimate(tokens: usage.totalTokens, costUSD: prices.cost(of: usage, model: model))
    }
}

/// An admitted request's reservation in the limits and its stream slot, given back when it ends.
package struct AdmissionTicket: Sendable {
    var hold: LimitHold?
    var slot: StreamSlot?

    /// Charges the real usage to the limits and frees the stream slot.
    func release(tokens: Int, costUSD: Double) {
        self.hold?.settle(tokens: tokens, costUSD: costUSD)
        self.slot?.release()
    }
}

/// What a request declares about itself before it runs.
package struct DeclaredRequest: Sendable, Hashable {
    /// Entries in its `messages` array (`nil` when it has none, or it could not be read).
    package var messageCount: Int?
    /// Its body's size in bytes.
    package var bodyBytes: Int
    /// The most output tokens it allows (`max_tokens`, `maxTokens`), when it says.
    package var maxTokens: Int?

    package init(messageCount: Int? = nil, bodyBytes: Int = 0, maxTokens: Int? = nil) {
        self.messageCount = messageCount
        self.bodyBytes = bodyBytes
        self.maxTokens = maxTokens
    }
}
