import ArgumentParser
import Foundation
import Gateway
import Logging

// Thin CLI (STYLE.md §1): parse arguments, then call the libraries.
@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A streaming gateway that puts AWS Bedrock behind the OpenAI API and Bedrock's own API.",
        discussion: """
            With no subcommand, `sluice` serves. With no AWS credentials configured it starts a built-in
            Bedrock simulator and says so, so a first run works on any machine.
            """,
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway.",
        discussion: """
            Settings come from, in increasing priority: defaults, the JSON file given with --config (or
            SLUICE_CONFIG), environment variables (SLUICE_*, AWS_BEARER_TOKEN_BEDROCK, AWS_REGION,
            AWS_PROFILE), and these flags. The Bedrock API key comes from the config file or
            AWS_BEARER_TOKEN_BEDROCK and is never printed.

            Examples:
              sluice serve                                   # simulator upstream when no credentials
              AWS_BEARER_TOKEN_BEDROCK=… sluice serve --region us-west-2
              sluice serve --host 127.0.0.1 --port 8080 --upstream http://127.0.0.1:9000
            """
    )

    @Option(help: "JSON configuration file.")
    var config: String?

    @Option(help: "Address to listen on (default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on (default 8080; 0 picks a free one).")
    var port: Int?

    @Option(help: "Bedrock Runtime endpoint (default https://bedrock-runtime.<region>.amazonaws.com).")
    var upstream: String?

    @Option(help: "AWS region (default AWS_REGION, else us-east-1).")
    var region: String?

    @Flag(inversion: .prefixedNo, help: "Use the built-in Bedrock simulator as the upstream (default: when no credentials are configured).")
    var simulator: Bool?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        var logger = Logger(label: "sluice")
        logger.logLevel = Logger.Level(rawValue: self.logLevel) ?? .info
        let configuration: GatewayConfiguration
        do {
            configuration = try GatewayConfiguration.load(
                file: self.config,
                environment: ProcessInfo.processInfo.environment,
                overrides: .init(host: self.host, port: self.port, upstream: self.upstream, region: self.region, simulator: self.simulator)
            )
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        try await GatewayServer.run(configuration: configuration, environment: ProcessInfo.processInfo.environment, logger: logger)
    }
}
