// A faithful Bedrock Runtime stand-in (DESIGN.md): `sluice serve` without AWS credentials, the
// gateway's integration tests and the load generator all talk to it.
package import Hummingbird
package import Logging
internal import NIOCore
internal import StreamCore

package enum BedrockSimulatorStatus {
    package static let summary =
        "Bedrock simulator: converse, converse-stream, invoke, invoke-with-response-stream, count-tokens, inference-profiles."
}

/// How a simulator listens and behaves.
package struct SimulatorConfiguration: Sendable {
    package var host: String
    /// 0 picks an ephemeral port; ``makeSimulatorApplication(configuration:logger:onServerRunning:)``
    /// reports the bound one.
    package var port: Int
    /// When set, every request without `Authorization: Bearer <token>` gets 403
    /// (`AccessDeniedException` when the header is missing, `UnrecognizedClientException` when the
    /// token is wrong), in Bedrock's error shape.
    package var requiredBearerToken: String?
    /// The scenario of a request that selects none (see ``Scenario`` for how requests select one).
    package var defaultScenario: Scenario
    /// Records every request and how its response ended; `nil` records nothing.
    package var recorder: SimulatorRecorder?
    /// Larger bodies get 400 ValidationException. 32 MiB: above Claude Code's ~90 KB bodies and
    /// Bedrock's own limits, and still bounded.
    package var maximumRequestBodySize: Int
    /// The `anthropic_beta` values each model takes, keyed by a glob over the model id in the path
    /// (`*sonnet-4-5*`, `us.anthropic.claude-haiku-4-5-20251001-v1:0`); the values of every matching
    /// key are accepted. A request carrying any other value is answered 400 `ValidationException`
    /// `{"message":"invalid beta flag"}`, as Bedrock does. Models no key matches take every value
    /// (the default: empty). A request's `[[sim accept_betas=…]]` wins over this.
    package var acceptedBetas: [String: [String]]
    /// Faults of this instance as a whole (throttling, slowness), changeable while it runs.
    package var faults: SimulatorFaults

    package init(
        host: String = "127.0.0.1",
        port: Int = 0,
        requiredBearerToken: String? = nil,
        defaultScenario: Scenario = Scenario(),
        recorder: SimulatorRecorder? = nil,
        maximumRequestBodySize: Int = 32 * 1024 * 1024,
        acceptedBetas: [String: [String]] = [:],
        faults: SimulatorFaults = SimulatorFaults()
    ) {
        self.faults = faults
        self.host = host
        self.port = port
        self.requiredBearerToken = requiredBearerToken
        self.defaultScenario = defaultScenario
        self.recorder = recorder
        self.maximumRequestBodySize = maximumRequestBodySize
        self.acceptedBetas = acceptedBetas
    }

    /// What `modelID` takes: the union of the values of every matching ``acceptedBetas`` key, or
    /// ``BetaAcceptance/all`` when none matches.
    package func betaAcceptance(forModel modelID: String) -> BetaAcceptance {
        var accepted: Set<String>?
        for (pattern, values) in self.acceptedBetas where ModelGlob.matches(pattern, modelID) {
            accepted = (accepted ?? []).union(values)
        }
        return accepted.map { .only($0) } ?? .all
    }
}

/// A Hummingbird application serving the Bedrock Runtime routes (no path prefix):
/// `POST /model/{modelId}/{converse, converse-stream, invoke, invoke-with-response-stream, count-tokens}`,
/// `GET /inference-profiles[?type=…]` and `GET /inference-profiles/{id}`.
///
/// The caller runs it: `runService()`, or add it to a `ServiceGroup` with other services.
///
/// ```swift
/// let app = makeSimulatorApplication(configuration: .init(port: 0), logger: logger) { port in
///     print("simulator on 127.0.0.1:\(port)")
/// }
/// try await app.runService()
/// ```
///
/// - Parameters:
///   - configuration: address, authentication, default scenario and recorder.
///   - logger: the application's logger; requests are logged at debug, never their headers or bodies.
///   - onServerRunning: called once the socket is bound, with the bound port.
package func makeSimulatorApplication(
    configuration: SimulatorConfiguration,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    Application(
        responder: SimulatorResponder(configuration: configuration),
        configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port)),
        onServerRunning: { channel in
            await onServerRunning(channel.localAddress?.port ?? configuration.port)
        },
        logger: logger
    )
}
