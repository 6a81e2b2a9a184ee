package import Foundation
package import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals
#if canImport(Glibc)
import Glibc
// Glibc imports RLIMIT_NOFILE as an enum case on Linux.
private let RLIMIT_NOFILE_VALUE = Int32(RLIMIT_NOFILE.rawValue)
#else
import Darwin
private let RLIMIT_NOFILE_VALUE = RLIMIT_NOFILE
#endif

/// Runs the gateway until SIGTERM or SIGINT, reloading its policies, limits, prices and models on
/// SIGHUP.
///
/// Shutdown drains: on SIGTERM (or SIGINT) the server stops accepting connections and lets the
/// open streams run on for `server.drainSeconds`; streams still open then are ended with an error
/// event (the upstream client is shut down under them), and each one's usage is recorded as it
/// ends. A second signal ends the drain at once.
package enum GatewayServer {
    /// What would stop the server once started, checked before anything is (the simulator): the TLS
    /// files, the store (opened and closed), and the listening address (in use, not this machine's,
    /// or a port that needs privileges). A newcomer who runs `sluice` twice, or has something on
    /// 8080, reads which address and what to do, not NIO's `bind(descriptor:ptr:bytes:)` after the
    /// simulator's start-up lines.
    ///
    /// - Throws: ``ConfigurationError`` naming the setting; the store's own error naming the store.
    package static func preflight(_ configuration: GatewayConfiguration, environment: [String: String], databasePath: String?) async throws {
        _ = try makeServerBuilder(tls: configuration.server.tls)
        let location = StoreLocation.resolve(flag: databasePath, environment: environment, configuredPath: configuration.storePath)
        var quiet = Logger(label: "sluice")
        quiet.logLevel = .critical
        try await StoreAddress.parse(location, environment: environment).open(logger: quiet).close()
        let host = configuration.server.host
        let port = configuration.server.port
        guard port != 0 else { return }
        let channel: any Channel
        do {
            // As the server binds (SO_REUSEADDR), so that a port left in TIME_WAIT is not refused here.
            channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port).get()
        } catch let error as IOError {
            let problem: String
            switch error.errnoCode {
            case EADDRINUSE: problem = "\(host):\(port) is in use (another sluice, or another server, listens there); choose another with --port"
            case EACCES: problem = "listening on port \(port) needs privileges (ports under 1024); choose another with --port"
            case EADDRNOTAVAIL: problem = "\(host) is not an address of this machine; choose one with --host"
            default: problem = "cannot listen on \(host):\(port): \(error)"
            }
            throw ConfigurationError(source: "start-up", key: "server.port", problem: problem)
        } catch {
            throw ConfigurationError(source: "start-up", key: "server.host", problem: "cannot listen on \(host):\(port): \(error)")
        }
        try await channel.close()
    }

    /// - Parameters:
    ///   - simulatorEndpoint: when the caller started a simulator, its URL; used when the
    ///     configuration asks for the simulator or has no credentials and no endpoint.
    ///   - databasePath: the `--db` flag; `nil` resolves `SLUICE_DB`, `store.path`, then the per-user
    ///     default (see ``StoreLocation``).
    ///   - reload: reads the configuration again (the same file, environment and flags), for SIGHUP.
    package static func run(
        configuration: GatewayConfiguration, environment: [String: String], logger: Logger, simulatorEndpoint: URL? = nil,
        databasePath: String? = nil, reload: (@Sendable () throws -> GatewayConfiguration)? = nil
    ) async throws {
        let plan = try UpstreamPlan(configuration: configuration, environment: environment, simulatorEndpoint: simulatorEndpoint)
        // Before the store opens: a TLS file it refuses must not leave the store open.
        let server = try makeServerBuilder(
            tls: configuration.server.tls, clientIdle: configuration.timeouts.clientIdle, maxBodyBytes: configuration.server.maxBodyBytes
        )
        let location = StoreLocation.resolve(flag: databasePath, environment: environment, configuredPath: configuration.storePath)
        let address = try StoreAddress.parse(location, environment: environment)
        let store = try await address.open(logger: logger)
        logger.info("store", metadata: ["store": "\(address.redacted)"])
        let access = GatewayAccess(configuration: configuration, store: store)
        await access.authenticator.oidc?.start()
        do {
            try await access.warmUp()
        } catch {
            try? await store.close()
            throw error
        }
        let upstreams = Upstreams(plan: plan.members, configuration: configuration)
        Self.raiseOpenFileLimit(logger: logger)
        for member in plan.members {
            logger.info(
                "upstream",
                metadata: [
                    "upstream": "\(member.configuration.name)", "upstream.region": "\(member.configuration.region)",
                    "upstream.endpoint": "\(member.endpoint.absoluteString)", "upstream.auth": "\(member.authentication)",
                ]
            )
        }
        let scheme = configuration.server.tls == nil ? "http" : "https"
        let application = buildGatewayApplication(configuration: configuration, upstreams: upstreams, access: access, server: server, logger: logger) { port in
            logger.notice("sluice is listening", metadata: ["server.address": "\(scheme)://\(configuration.server.host):\(port)"])
        }
        // Signals are handled here rather than by the service group, so that shutdown can drain
        // streams and SIGHUP can reload.
        let group = ServiceGroup(configuration: .init(services: [.init(service: application)], logger: logger))
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint, .sighup)
        let drain = configuration.server.drain
        do {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                tasks.addTask {
                    var draining = false
                    for await signal in signals {
                        if signal == .sighup {
                            Self.reload(access: access, using: reload, logger: logger)
                        } else if draining {
                            logger.notice("second shutdown signal: ending the drain now", metadata: ["signal": "\(signal)"])
                            await Self.endOpenStreams(access: access, upstreams: upstreams, logger: logger)
                        } else {
                            draining = true
                            logger.notice(
                                "shutting down: no new connections; open streams may finish",
                                metadata: ["signal": "\(signal)", "streams.open": "\(access.streams.open)", "drain.seconds": "\(drain.components.seconds)"]
                            )
                            await group.triggerGracefulShutdown()
                            let deadline = ContinuousClock.now + drain
                            // The signal loop goes on, so a second signal can cut the drain short.
                            Task {
                                while access.streams.open > 0, ContinuousClock.now < deadline, !access.lifecycle.isDrainExpired {
                                    try? await Task.sleep(for: .milliseconds(50))
                                }
                                if access.streams.open > 0, !access.lifecycle.isDrainExpired {
                                    await Self.endOpenStreams(access: access, upstreams: upstreams, logger: logger)
                                }
                            }
                        }
                    }
                }
                // The server has stopped (every connection closed): stop listening for signals.
                try await tasks.next()
                tasks.cancelAll()
            }
        } catch {
            try? await upstreams.shutdown()
            try? await store.close()
            throw error
        }
        try? await upstreams.shutdown()
        try await store.close()
        logger.notice("sluice stopped")
    }

    /// Each open stream holds two descriptors (the client's connection and the upstream one); the
    /// usual soft limit of 1,024 would cap the gateway near 500 streams. Raised to the hard limit.
    static func raiseOpenFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let previous = limit.rlim_cur
        limit.rlim_cur = limit.rlim_max
        if setrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 {
            logger.info("open-file limit raised", metadata: ["from": "\(previous)", "to": "\(limit.rlim_max)"])
        }
    }

    /// The drain time is over: ends the streams still open with an error event by shutting the
    /// upstream client down under them (each records its usage as it ends).
    static func endOpenStreams(access: GatewayAccess, upstreams: Upstreams, logger: Logger) async {
        guard !access.lifecycle.isDrainExpired else { return }
        access.lifecycle.markDrainExpired()
        logger.warning("drain time over: ending open streams", metadata: ["streams.open": "\(access.streams.open)"])
        try? await upstreams.shutdown()
    }

    /// Re-reads the configuration; an invalid one is refused and the running one stays.
    static func reload(access: GatewayAccess, using reload: (@Sendable () throws -> GatewayConfiguration)?, logger: Logger) {
        guard let reload else {
            logger.warning("SIGHUP: nothing to reload from")
            return
        }
        do {
            let configuration = try reload()
            access.reload(configuration)
            logger.notice(
                "configuration reloaded",
                metadata: ["policies": "\(configuration.policies.count)", "aliases": "\(configuration.models.aliases.count)", "prices": "\(configuration.prices.entries.count)"]
            )
        } catch {
            logger.error("configuration reload refused; the running configuration stays", metadata: ["error": "\(error)"])
        }
    }
}

/// Where upstream requests go and how they are authenticated, decided once at start-up: one member
/// per configured upstream (the one `upstream`, or each of `upstreams`).
package struct UpstreamPlan: Sendable {
    package struct Member: Sendable {
        package var configuration: GatewayConfiguration.Upstream
        package var endpoint: URL
        package var authentication: UpstreamAuthentication

        package init(configuration: GatewayConfiguration.Upstream, endpoint: URL, authentication: UpstreamAuthentication) {
            self.configuration = configuration
            self.endpoint = endpoint
            self.authentication = authentication
        }
    }

    package var members: [Member]
    package var usesSimulator: Bool

    /// The one member's endpoint and authentication (the one-upstream case).
    package var endpoint: URL { self.members[0].endpoint }
    package var authentication: UpstreamAuthentication { self.members[0].authentication }

    /// Whether the configuration asks for the simulator: explicitly, or by having no credentials of
    /// any kind and no endpoint of its own. A list of `upstreams` never does.
    package static func wantsSimulator(_ configuration: GatewayConfiguration, environment: [String: String]) throws -> Bool {
        guard configuration.upstreams.isEmpty else {
            if configuration.upstream.useSimulator == true {
                throw ConfigurationError(
                    source: "configuration", key: "SLUICE_SIMULATOR", problem: "the simulator replaces one upstream; the file lists 'upstreams'"
                )
            }
            return false
        }
        if let explicit = configuration.upstream.useSimulator { return explicit }
        guard configuration.upstream.apiKey == nil, configuration.upstream.endpoint == nil else { return false }
        return try Self.awsCredentials(profile: configuration.upstream.profile, environment: environment, key: "upstream.profile") == nil
    }

    /// AWS credentials from the environment or the shared credentials file (`~/.aws/credentials`, or
    /// `AWS_SHARED_CREDENTIALS_FILE`), for the given or `AWS_PROFILE` profile.
    static func awsCredentials(profile: String?, environment: [String: String], key: String) throws -> AWSCredentials? {
        let path = environment["AWS_SHARED_CREDENTIALS_FILE"]
            ?? environment["HOME"].map { "\($0)/.aws/credentials" }
        let contents = path.flatMap { FileManager.default.contents(atPath: $0) }.map { String(decoding: $0, as: UTF8.self) }
        do {
            return try AWSCredentials.load(environment: environment, profile: profile, credentialsFileContents: contents)
        } catch {
            throw ConfigurationError(source: path ?? "environment", key: key, problem: "\(error)")
        }
    }

    package init(configuration: GatewayConfiguration, environment: [String: String], simulatorEndpoint: URL?) throws {
        if try Self.wantsSimulator(configuration, environment: environment) {
            guard let simulatorEndpoint else {
                throw ConfigurationError(source: "start-up", key: "upstream.simulator", problem: "the simulator was asked for but not started")
            }
            self.members = [Member(configuration: configuration.upstream, endpoint: simulatorEndpoint, authentication: .none)]
            self.usesSimulator = true
            return
        }
        let listed = !configuration.upstreams.isEmpty
        self.members = try configuration.effectiveUpstreams.enumerated().map { index, upstream in
            let key = listed ? "upstreams[\(index)]" : "upstream"
            return try Self.member(upstream, key: key, listed: listed, environment: environment)
        }
        self.usesSimulator = false
    }

    /// One upstream's endpoint (its own, else its region's Bedrock Runtime) and credentials (its own
    /// key or profile, else the global ones: `AWS_BEARER_TOKEN_BEDROCK`, AWS credentials or profile).
    private static func member(
        _ upstream: GatewayConfiguration.Upstream, key: String, listed: Bool, environment: [String: String]
    ) throws -> Member {
        let region = upstream.region
        let endpoint: URL
        if let configured = upstream.endpoint {
            endpoint = configured
        } else if region.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }),
            let regional = URL(string: "https://bedrock-runtime.\(region).amazonaws.com")
        {
            endpoint = regional
        } else {
            throw ConfigurationError(source: "configuration", key: "\(key).region", problem: "'\(region)' is not a region name")
        }
        // The one `upstream` already took AWS_BEARER_TOKEN_BEDROCK and AWS_PROFILE from the environment.
        let globalKey = listed ? environment["AWS_BEARER_TOKEN_BEDROCK"].flatMap { $0.isEmpty ? nil : $0 } : nil
        let authentication: UpstreamAuthentication
        if let apiKey = upstream.apiKey ?? globalKey {
            authentication = .apiKey(apiKey)
        } else if let credentials = try Self.awsCredentials(
            profile: upstream.profile ?? (listed ? environment["AWS_PROFILE"] : nil), environment: environment, key: "\(key).profile"
        ) {
            authentication = .sigV4(SigV4Signer(credentials: credentials, region: region))
        } else if upstream.endpoint != nil {
            // An explicit endpoint without credentials: a local stand-in or a proxy that signs.
            authentication = .none
        } else if listed {
            throw ConfigurationError(
                source: "configuration", key: key,
                problem: "no credentials for upstream '\(upstream.name)': give it an apiKey or profile, or set AWS_BEARER_TOKEN_BEDROCK or AWS credentials"
            )
        } else {
            authentication = .none
        }
        return Member(configuration: upstream, endpoint: endpoint, authentication: authentication)
    }
}

extension Upstreams {
    /// One client per planned upstream, with the configuration's timeouts, weights, model lists and
    /// routing. Each may keep a connection per open stream and 1,024 more for whole (non-streamed)
    /// answers, which the stream limit does not count: with the pool sized to the stream limit alone,
    /// a gateway at its stream limit queued every Converse or InvokeModel call behind the streams.
    package convenience init(plan members: [UpstreamPlan.Member], configuration: GatewayConfiguration) {
        self.init(
            members: members.map { member in
                UpstreamClient(
                    name: member.configuration.name, endpoint: member.endpoint, region: member.configuration.region,
                    authentication: member.authentication, timeouts: configuration.timeouts, weight: member.configuration.weight,
                    models: member.configuration.models, maxConnections: configuration.server.maxConcurrentStreams + 1_024,
                    retriesConnecting: members.count == 1, caFile: member.configuration.caFile
                )
            },
            routing: configuration.routing
        )
    }
}
