import ArgumentParser
import BedrockSimulator
import Foundation
import Gateway
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import UnixSignals

// Thin CLI (STYLE.md §1): parse arguments, then call the libraries. The module has more than one
// file (TokenCommands.swift, UsageCommand.swift), so main.swift is the entry point as top-level
// code rather than through `@main`. Top-level code picks ArgumentParser's synchronous `main()`,
// which refuses async commands; a real async function picks the async overload.
func runSluice() async {
    await Sluice.main(nil)
}
// First, while the main thread is the only one: each thread started before it could keep an arena
// of its own (MemoryRelief.limitArenas).
MemoryRelief.limitArenas(environment: ProcessInfo.processInfo.environment, processors: ProcessInfo.processInfo.activeProcessorCount)
// Then, still before any task runs: the simulator runs its tasks on NIO's event loops instead of
// Swift's own pool. Each simulated chunk is a task waking from its gap and writing: on the pool that
// was a hop to the connection's loop per chunk, and the simulator was the first thing to saturate in
// Benchmarks/wire.sh at 1,000 streams (nginx's own added p50 +27-30 ms against it, +2.6-5.1 ms on the
// loops). The gateway keeps Swift's pool: its streams are relayed inside the loops already, and on
// the loops its per-request work (parsing, mapping, admission) delayed the other streams' chunks:
// added p99 at 100 streams 1.4-3.9 ms on the pool, 2.7-4.5 on the loops, p50 and TTFB no better
// (wire.sh, the same binary alternating, three rounds; README, "The wire path beside nginx").
// `SLUICE_EXECUTOR=nio` or `=swift` chooses for any command.
let executor = ProcessInfo.processInfo.environment["SLUICE_EXECUTOR"]
if executor == "nio" || (executor != "swift" && CommandLine.arguments.dropFirst().first == "simulate") {
    NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
}
await runSluice()

struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A streaming gateway that puts AWS Bedrock behind the OpenAI, Anthropic and Bedrock APIs.",
        discussion: """
            With no subcommand, `sluice` serves. With no AWS credentials configured it starts a built-in \
            Bedrock simulator and says so, so a first run works on any machine.
            """,
        version: SluiceVersion.current,
        subcommands: [Serve.self, Simulate.self, TokenCommand.self, UsageCommand.self, LoginCommand.self],
        defaultSubcommand: Serve.self
    )
}

/// A configuration or start-up problem, said on standard error as ArgumentParser says its own errors
/// but without the usage lines (the command line was not at fault): exit status 64, as for them.
func configurationFailure(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
    return ExitCode(64)
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway.",
        discussion: """
            Settings come from, in increasing priority: defaults, the JSON file given with --config (or \
            SLUICE_CONFIG), environment variables (SLUICE_*, AWS_BEARER_TOKEN_BEDROCK, AWS_REGION, \
            AWS_PROFILE), and these flags. The Bedrock API key comes from the config file or \
            AWS_BEARER_TOKEN_BEDROCK and is never printed.

            Examples:
              sluice serve       # no AWS credentials: the built-in simulator answers
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

    @Option(help: "PEM certificate chain: serve HTTPS (HTTP/2 by ALPN, HTTP/1.1 otherwise). Needs --tls-key.")
    var tlsCert: String?

    @Option(help: "PEM private key for --tls-cert.")
    var tlsKey: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (default SLUICE_LOG_LEVEL, log.level, else info).")
    var logLevel: String?

    @Option(help: "SQLite database for tokens and the usage ledger (default SLUICE_DB, store.path, else ~/.local/share/sluice/sluice.db).")
    var db: String?

    static func makeLogger(label: String, level: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = Logger.Level(rawValue: level) ?? .info
        return logger
    }

    func run() async throws {
        let overrides = GatewayConfiguration.Overrides(
            host: self.host, port: self.port, upstream: self.upstream, region: self.region, simulator: self.simulator,
            tlsCertificateFile: self.tlsCert, tlsKeyFile: self.tlsKey, logLevel: self.logLevel
        )
        let file = self.config
        // SIGHUP reads the same file, environment and flags again.
        let load: @Sendable () throws -> GatewayConfiguration = {
            try GatewayConfiguration.load(file: file, environment: ProcessInfo.processInfo.environment, overrides: overrides)
        }
        let configuration: GatewayConfiguration
        do {
            configuration = try load()
        } catch let error as ConfigurationError {
            throw configurationFailure(error.description)
        }
        // Logs go to standard error in both formats; standard output is for what commands print.
        switch configuration.log.effectiveFormat(standardErrorIsTerminal: isatty(STDERR_FILENO) != 0) {
        case .json: LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
        case .text: LoggingSystem.bootstrap(StreamLogHandler.standardError)
        }
        let logger = Self.makeLogger(label: "sluice", level: configuration.log.level)
        let environment = ProcessInfo.processInfo.environment
        let wantsSimulator: Bool
        do {
            wantsSimulator = try UpstreamPlan.wantsSimulator(configuration, environment: environment)
            try await GatewayServer.preflight(configuration, environment: environment, databasePath: self.db)
        } catch let error as ConfigurationError {
            throw configurationFailure(error.description)
        } catch let error as SQLiteStoreError {
            throw configurationFailure(error.description)
        } catch let error as PostgresStoreError {
            throw configurationFailure(error.description)
        } catch let error as StoreAddressError {
            throw configurationFailure(error.description)
        }
        guard wantsSimulator else {
            try await GatewayServer.run(configuration: configuration, environment: environment, logger: logger, databasePath: self.db, reload: load)
            return
        }
        // No credentials: run the simulator in-process on a loopback port, and say so loudly.
        try await withThrowingTaskGroup(of: Void.self) { group in
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            let simulator = makeSimulatorApplication(configuration: .init(host: "127.0.0.1", port: 0), logger: logger) { port in
                continuation.yield(port)
            }
            group.addTask { try await simulator.runService() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next(), let endpoint = URL(string: "http://127.0.0.1:\(port)") else {
                throw ValidationError("the built-in simulator did not start")
            }
            logger.warning(
                "NO AWS CREDENTIALS CONFIGURED: answering with the built-in Bedrock SIMULATOR, not real models. Set AWS_BEARER_TOKEN_BEDROCK (or AWS credentials / AWS_PROFILE) to use Bedrock.",
                metadata: ["simulator.endpoint": "\(endpoint.absoluteString)"]
            )
            try await GatewayServer.run(
                configuration: configuration, environment: environment, logger: logger, simulatorEndpoint: endpoint, databasePath: self.db,
                reload: load
            )
            group.cancelAll()
        }
    }
}

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the built-in Bedrock Runtime simulator on its own.",
        discussion: """
            Serves Bedrock Runtime's routes (no path prefix): POST /model/{id}/converse, /converse-stream, \
            /invoke, /invoke-with-response-stream, /count-tokens; GET /inference-profiles[/{id}]. \
            Each request picks a scenario with an `x-sluice-sim-scenario: key=value,…` header or a \
            `[[sim key=value …]]` directive in its body (chunks, chunk_size, gap_ms, first_byte_ms, \
            reasoning, tools, stop, status, exception_after, corrupt_after, drop_after, stamps, …).

            Point the gateway at it with: sluice serve --upstream http://127.0.0.1:<port>
            """
    )

    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port: Int = 9000

    @Option(help: "Require `Authorization: Bearer <token>` on every request (to check that a gateway sends its key).")
    var requireBearerToken: String?

    @Option(help: "Default scenario for requests that name none, e.g. \"chunks=40,gap_ms=5,stamps=1\".")
    var scenario: String?

    @Option(help: "Refuse this share (0-100) of model requests as a throttling region does (with --fail-status).")
    var failPercent: Int = 0

    @Option(help: "The status of refused requests: 429 (ThrottlingException), 500, 503, ….")
    var failStatus: Int = 429

    @Option(help: "Retry-After seconds on refused requests.")
    var retryAfter: Int?

    @Option(help: "Pause this many milliseconds before every model request's response head.")
    var firstByteMs: Int = 0

    @Option(help: "Log level.")
    var logLevel: String = "info"

    func run() async throws {
        guard (0...100).contains(self.failPercent) else { throw ValidationError("--fail-percent must be in 0...100") }
        guard (400...599).contains(self.failStatus) else { throw ValidationError("--fail-status must be an HTTP error status") }
        guard (0...600_000).contains(self.firstByteMs) else { throw ValidationError("--first-byte-ms must be in 0...600000") }
        let logger = Serve.makeLogger(label: "sluice-simulator", level: self.logLevel)
        var defaultScenario = Scenario()
        if let scenario = self.scenario {
            do {
                defaultScenario = try Scenario(parsing: scenario)
            } catch {
                throw ValidationError("--scenario: \(error)")
            }
        }
        let configuration = SimulatorConfiguration(
            host: self.host, port: self.port, requiredBearerToken: self.requireBearerToken, defaultScenario: defaultScenario,
            faults: SimulatorFaults(
                .init(failurePercent: self.failPercent, status: self.failStatus, retryAfterSeconds: self.retryAfter, firstByteDelay: .milliseconds(self.firstByteMs))
            )
        )
        let application = makeSimulatorApplication(configuration: configuration, logger: logger) { port in
            logger.notice("Bedrock simulator is listening", metadata: ["server.address": "http://\(self.host):\(port)"])
        }
        try await application.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}
