package import Foundation
package import Logging
import ServiceLifecycle
import UnixSignals

/// Runs the gateway until SIGTERM or SIGINT: the upstream client, then the HTTP server.
package enum GatewayServer {
    /// - Parameters:
    ///   - simulatorEndpoint: when the caller started a simulator, its URL; used when the
    ///     configuration asks for the simulator or has no credentials and no endpoint.
    package static func run(configuration: GatewayConfiguration, logger: Logger, simulatorEndpoint: URL? = nil) async throws {
        let plan = try UpstreamPlan(configuration: configuration, simulatorEndpoint: simulatorEndpoint)
        let upstream = UpstreamClient(endpoint: plan.endpoint, region: configuration.upstream.region, authentication: plan.authentication, timeouts: configuration.timeouts)
        logger.info("upstream", metadata: ["upstream.endpoint": "\(plan.endpoint.absoluteString)", "upstream.auth": "\(plan.authentication)"])
        let application = buildGatewayApplication(configuration: configuration, upstream: upstream, logger: logger) { port in
            logger.notice("sluice is listening", metadata: ["server.address": "http://\(configuration.server.host):\(port)"])
        }
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: application)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        do {
            try await group.run()
        } catch {
            try? await upstream.shutdown()
            throw error
        }
        try await upstream.shutdown()
    }
}

/// Where upstream requests go and how they are authenticated, decided once at start-up.
package struct UpstreamPlan: Sendable {
    package var endpoint: URL
    package var authentication: UpstreamAuthentication
    package var usesSimulator: Bool

    /// Whether the configuration asks for the simulator: explicitly, or by having no credentials and
    /// no endpoint of its own.
    package static func wantsSimulator(_ configuration: GatewayConfiguration) -> Bool {
        if let explicit = configuration.upstream.useSimulator { return explicit }
        return configuration.upstream.apiKey == nil && configuration.upstream.endpoint == nil
    }

    package init(configuration: GatewayConfiguration, simulatorEndpoint: URL?) throws {
        if Self.wantsSimulator(configuration) {
            guard let simulatorEndpoint else {
                throw ConfigurationError(source: "start-up", key: "upstream.simulator", problem: "the simulator was asked for but not started")
            }
            self.endpoint = simulatorEndpoint
            self.authentication = .none
            self.usesSimulator = true
            return
        }
        let region = configuration.upstream.region
        if let endpoint = configuration.upstream.endpoint {
            self.endpoint = endpoint
        } else if region.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }),
            let endpoint = URL(string: "https://bedrock-runtime.\(region).amazonaws.com")
        {
            self.endpoint = endpoint
        } else {
            throw ConfigurationError(source: "configuration", key: "upstream.region", problem: "'\(region)' is not a region name")
        }
        self.authentication = configuration.upstream.apiKey.map(UpstreamAuthentication.apiKey) ?? .none
        self.usesSimulator = false
    }
}
