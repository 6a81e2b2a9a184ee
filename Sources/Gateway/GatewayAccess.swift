package import Foundation
import StreamCore

/// The gateway's domain services, wired once: identity (who is calling), admission (may they), the
/// ledger (what they used), the live settings and the metrics. The exchange pipeline reads them;
/// nothing here speaks HTTP (reading a request's credential is the exchange's, Credentials.swift).
package struct GatewayAccess: Sendable {
    package let authenticator: TokenAuthenticator
    /// Policies, prices and models: replaced by a reload, read once per request.
    package let settings: LiveSettings
    package let admission: Admission
    package let ledger: Ledger
    package let metrics: GatewayMetrics
    package let lifecycle = GatewayLifecycle()
    /// What Bedrock refused of `anthropic_beta` values, per model, for this process (kept across reloads).
    let betaRefusals = AnthropicBetaRefusals()
    /// The Responses API's reasoning seal (its key is fixed at start-up).
    let reasoningSeal: ReasoningSeal

    package init(
        configuration: GatewayConfiguration, store: any Store, audit: AuditSink = .standardError,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.authenticator = TokenAuthenticator(
            store: store, oidc: configuration.oidc.map { OIDCVerifier(settings: $0, fetch: JSONDocument.get, now: now) },
            offlineGrace: configuration.storeOfflineGrace, now: now
        )
        let seal = ReasoningSeal(secret: configuration.responsesKey)
        self.reasoningSeal = seal
        self.settings = LiveSettings(GatewaySettings(configuration: configuration, betaRefusals: self.betaRefusals, reasoning: seal))
        self.admission = Admission(
            limiter: UsageLimiter(
                now: now, shared: store as? any SharedLimitStore, whenUnavailable: configuration.limitsWhenUnavailable,
                holdLifetime: configuration.timeouts.request + .seconds(60)
            ),
            streams: StreamSlots(
                maximum: configuration.server.maxConcurrentStreams, maximumPerIdentity: configuration.server.maxConcurrentStreamsPerIdentity
            )
        )
        let metrics = GatewayMetrics()
        self.metrics = metrics
        self.ledger = Ledger(store: store, audit: audit, metrics: metrics, now: now)
    }

    package var store: any Store { self.ledger.store }
    package var limiter: UsageLimiter { self.admission.limiter }
    package var streams: StreamSlots { self.admission.streams }

    /// Puts a reloaded configuration's policies, limits, prices and models in force for the requests
    /// that start from now on.
    package func reload(_ configuration: GatewayConfiguration) {
        self.settings.replace(with: GatewaySettings(configuration: configuration, betaRefusals: self.betaRefusals, reasoning: self.reasoningSeal))
    }

    /// Loads this month's spend and today's tokens from the ledger into the limiter.
    package func warmUp() async throws {
        // Shared limits keep their counts in the store.
        guard !self.limiter.isShared else { return }
        self.limiter.preload(from: try await self.store.usage(since: self.limiter.startOfMonth()))
    }

    /// Applies the policies and limits to a mapped request and opens its ledger entry.
    ///
    /// - Returns: the account to close when the request ends, or the 403/429/503 to answer (already
    ///   recorded in the ledger and the audit log).
    package func admit<Mapped>(
        _ caller: Caller, route: String, request: MappedRequest<Mapped>, settings: GatewaySettings, requestID: String,
        arrived: ContinuousClock.Instant
    ) async -> Result<RequestAccount, GatewayError> {
        var account = RequestAccount(
            ledger: self.ledger, caller: caller, route: route, requestedModel: request.requestedModel, resolvedModel: request.resolvedModel,
            messageCount: request.declared.messageCount, prices: settings.prices, requestID: requestID,
            arrived: arrived
        )
        account.bodyBytes = request.declared.bodyBytes
        account.session = request.session
        let claim = Admission.Claim(
            caller: caller, requested: request.requestedModel, resolved: request.resolvedModel, declared: request.declared,
            countsAgainstLimits: request.countsAgainstLimits, isStream: request.operation.isStreaming
        )
        switch await self.admission.admit(claim, settings: settings, metrics: self.metrics) {
        case .failure(let refusal):
            await account.finish(refusal)
            return .failure(refusal)
        case .success(let ticket):
            account.admission = ticket
            self.ledger.recordAdmitted(account)
            return .success(account)
        }
    }
}
