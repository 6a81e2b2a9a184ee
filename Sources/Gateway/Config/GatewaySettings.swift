package import StreamCore
import Synchronization

/// The part of the configuration a running gateway can change without a restart (SIGHUP): model
/// aliases and the advertised list, policies with their limits, prices, and anonymous
/// inference-profile listing. Everything else (listen address, TLS, upstream, store, timeouts)
/// needs a restart.
///
/// A request reads one snapshot when it starts and keeps it to its end, so a stream opened before
/// a reload finishes under the rules it was admitted with.
package struct GatewaySettings: Sendable {
    package var catalog: ModelCatalog
    package var policies: PolicySet
    package var prices: PriceTable
    package var mapper: ChatRequestMapper
    package var anthropicMapper: AnthropicRequestMapper
    package var responsesMapper: ResponsesRequestMapper
    /// The `anthropic_beta` policy of `/v1/messages` and the `/bedrock` invoke routes.
    package var betaPolicy: AnthropicBetaPolicy { self.anthropicMapper.configuration.betas }
    package var allowAnonymousInferenceProfiles: Bool
    /// How long a kept Responses API response can be continued (`responses.retentionDays`).
    package var responsesRetentionDays: Int

    /// - Parameters:
    ///   - betaRefusals: what Bedrock refused so far in this process; kept across reloads.
    ///   - reasoning: seals and opens the Responses API's `encrypted_content`.
    package init(
        configuration: GatewayConfiguration, betaRefusals: AnthropicBetaRefusals = AnthropicBetaRefusals(),
        reasoning: ReasoningSeal = ReasoningSeal()
    ) {
        self.catalog = configuration.models
        self.policies = PolicySet(policies: configuration.policies, catalog: configuration.models)
        self.prices = configuration.prices
        self.mapper = ChatRequestMapper(
            configuration: .init(modelAliases: configuration.models.aliases, maximumMessages: configuration.server.maxMessages)
        )
        self.anthropicMapper = AnthropicRequestMapper(
            configuration: .init(
                modelAliases: configuration.models.aliases,
                betas: AnthropicBetaPolicy(
                    mode: configuration.betasPassthrough ? .passthrough : .filter, rules: configuration.betaRules, refusals: betaRefusals
                ),
                maximumMessages: configuration.server.maxMessages
            )
        )
        self.responsesMapper = ResponsesRequestMapper(
            configuration: .init(
                chat: .init(modelAliases: configuration.models.aliases, maximumMessages: configuration.server.maxMessages),
                isStoreEnabled: configuration.responsesStore, opener: reasoning
            )
        )
        self.allowAnonymousInferenceProfiles = configuration.inferenceProfilesAllowAnonymous
        self.responsesRetentionDays = configuration.responsesRetentionDays
    }
}

/// The current ``GatewaySettings``, swapped whole by a reload.
package final class LiveSettings: Sendable {
    private let state: Mutex<GatewaySettings>

    package init(_ settings: GatewaySettings) {
        self.state = Mutex(settings)
    }

    /// A snapshot: the lock is held only to copy a few references.
    package var current: GatewaySettings {
        self.state.withLock { $0 }
    }

    package func replace(with settings: GatewaySettings) {
        self.state.withLock { $0 = settings }
    }
}
