import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import StreamCore
import Synchronization
import Testing

/// The real gateway in front of the real simulator, both on 127.0.0.1 with ephemeral ports, and an
/// HTTP client to drive them. Nothing of ours is mocked.
///
/// Each stack has its own SQLite store in a temporary directory and an admin token (group
/// `admins`, which the built-in policy lets use every model); `post` and `get` send it unless the
/// test passes its own `Authorization` or `x-api-key`.
struct LiveStack {
    let gatewayPort: Int
    /// Every simulator's port and recorder, in `upstreams` order; the first is `simulatorPort`/`recorder`.
    let simulatorPorts: [Int]
    let recorders: [SimulatorRecorder]
    var simulatorPort: Int { self.simulatorPorts[0] }
    var recorder: SimulatorRecorder { self.recorders[0] }
    /// The gateway's upstreams (their health board, for assertions).
    let upstreams: Upstreams
    let client: HTTPClient
    let store: SQLiteStore
    /// Names and regions of the upstreams a stack with several simulators configures, in order.
    static let upstreamNames = [("east", "us-east-1"), ("west", "us-west-2"), ("central", "us-east-2")]

    /// The admin token `post` and `get` send by default.
    let token: String
    let audit: AuditCapture

    var gateway: String { "http://127.0.0.1:\(self.gatewayPort)" }
    var simulator: String { "http://127.0.0.1:\(self.simulatorPort)" }

    /// - Parameter more: further simulators; with any, the gateway has one upstream per simulator
    ///   (``upstreamNames``) in `upstreams`, which `configure` may still change.
    static func run<Result: Sendable>(
        simulator simulatorConfiguration: SimulatorConfiguration = .init(),
        more: [SimulatorConfiguration] = [],
        authentication: UpstreamAuthentication = .none,
        configure: @Sendable (inout GatewayConfiguration) -> Void = { _ in },
        now: @escaping @Sendable () -> Date = { Date() },
        databasePath: String? = nil,
        _ body: @Sendable (LiveStack) async throws -> Result
    ) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try await SQLiteStore.open(path: databasePath ?? directory.appendingPathComponent("sluice.db").path, logger: Logger(label: "sluice-test"))
        let admin = ClientToken.make(identity: "test-admin", groups: ["admins"], label: "LiveStack", ttl: .seconds(3600), now: now())
        do {
            try await store.insertToken(admin.record)
            let result = try await Self.run(
                simulators: [simulatorConfiguration] + more, authentication: authentication, configure: configure, now: now, store: store, token: admin.token,
                body
            )
            try await store.close()
            return result
        } catch {
            try? await store.close()
            throw error
        }
    }

    private static func run<Result: Sendable>(
        simulators simulatorConfigurations: [SimulatorConfiguration],
        authentication: UpstreamAuthentication,
        configure: @Sendable (inout GatewayConfiguration) -> Void,
        now: @escaping @Sendable () -> Date,
        store: SQLiteStore,
        token: String,
        _ body: @Sendable (LiveStack) async throws -> Result
    ) async throws -> Result {
        let audit = AuditCapture()
        var logger = Logger(label: "sluice-test")
        // A server still answering after the two seconds of graceful shutdown is cancelled, which
        // Hummingbird logs as errors.
        logger.logLevel = .critical
        let recorders = simulatorConfigurations.map { _ in SimulatorRecorder() }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let (gatewayPorts, gatewayPort) = AsyncStream.makeStream(of: Int.self)
        do {
            let result = try await withThrowingTaskGroup(of: Void.self) { group in
                var simulatorBound: [Int] = []
                // The gateway first, then the simulators: the order a deployment stops in.
                var serviceGroups: [ServiceGroup] = []
                for (index, var simulatorConfiguration) in simulatorConfigurations.enumerated() {
                    simulatorConfiguration.recorder = recorders[index]
                    simulatorConfiguration.port = 0
                    let (simulatorPorts, simulatorPort) = AsyncStream.makeStream(of: Int.self)
                    let simulatorApp = makeSimulatorApplication(configuration: simulatorConfiguration, logger: logger) { port in
                        simulatorPort.yield(port)
                    }
                    let simulatorGroup = Self.serviceGroup(simulatorApp, logger: logger)
                    serviceGroups.append(simulatorGroup)
                    group.addTask { try await simulatorGroup.run() }
                    var ports = simulatorPorts.makeAsyncIterator()
                    simulatorBound.append(try #require(await ports.next()))
                }
                var configuration = GatewayConfiguration()
                configuration.server.port = 0
                configuration.upstream.endpoint = URL(string: "http://127.0.0.1:\(simulatorBound[0])")
                if simulatorBound.count > 1 {
                    configuration.upstreams = simulatorBound.enumerated().map { index, port in
                        var upstream = GatewayConfiguration.Upstream()
                        (upstream.name, upstream.region) = Self.upstreamNames[index]
                        upstream.endpoint = URL(string: "http://127.0.0.1:\(port)")
                        return upstream
                    }
                }
                configure(&configuration)
                let upstream = Upstreams(
                    plan: try configuration.effectiveUpstreams.map { member in
                        UpstreamPlan.Member(configuration: member, endpoint: try #require(member.endpoint), authentication: authentication)
                    },
                    configuration: configuration
                )
                let access = GatewayAccess(configuration: configuration, store: store, audit: audit.sink, now: now)
                let server = try makeServerBuilder(
                    tls: configuration.server.tls, clientIdle: configuration.timeouts.clientIdle, maxBodyBytes: configuration.server.maxBodyBytes
                )
                let gatewayApp = buildGatewayApplication(configuration: configuration, upstreams: upstream, access: access, server: server, logger: logger) { port in
                    gatewayPort.yield(port)
                }
                let gatewayGroup = Self.serviceGroup(gatewayApp, logger: logger)
                serviceGroups.insert(gatewayGroup, at: 0)
                group.addTask { try await gatewayGroup.run() }
                var gatewayIterator = gatewayPorts.makeAsyncIterator()
                let gatewayBound = try #require(await gatewayIterator.next())
                let stack = LiveStack(
                    gatewayPort: gatewayBound, simulatorPorts: simulatorBound, recorders: recorders, upstreams: upstream, client: client, store: store,
                    token: token, audit: audit
                )
                let outcome: Swift.Result<Result, any Error>
                do {
                    outcome = .success(try await body(stack))
                } catch {
                    outcome = .failure(error)
                }
                for serviceGroup in serviceGroups { await serviceGroup.triggerGracefulShutdown() }
                while (try? await group.next()) != nil {}
                try? await upstream.shutdown()
                return try outcome.get()
            }
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// Runs a server in its own service group, which the stack stops as SIGTERM would: no new
    /// connections, open ones may finish, and only after two seconds the rest is cancelled.
    /// Cancelling at once (as this harness used to) can drop a connection that was accepted but not
    /// yet handed to the server's loop, on which NIO traps: "Deinited NIOAsyncWriter without calling
    /// finish()" (swift-nio #2637), about one full test run in fourteen.
    private static func serviceGroup(_ service: some Service, logger: Logger) -> ServiceGroup {
        var configuration = ServiceGroupConfiguration(services: [.init(service: service)], logger: logger)
        configuration.maximumGracefulShutdownDuration = .seconds(2)
        return ServiceGroup(configuration: configuration)
    }

    /// POSTs JSON and returns the status, headers and the whole body.
    func post(_ path: String, json: String, headers: [(String, String)] = [], base: String? = nil) async throws -> (HTTPResponseStatus, HTTPHeaders, ByteBuffer) {
        var request = HTTPClientRequest(url: (base ?? self.gateway) + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        self.authorize(&request.headers, unless: headers)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await self.client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return (response.status, response.headers, body)
    }

    func get(_ path: String, headers: [(String, String)] = []) async throws -> (HTTPResponseStatus, HTTPHeaders, ByteBuffer) {
        var request = HTTPClientRequest(url: self.gateway + path)
        self.authorize(&request.headers, unless: headers)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await self.client.execute(request, timeout: .seconds(30))
        return (response.status, response.headers, try await response.body.collect(upTo: 16 * 1024 * 1024))
    }

    func delete(_ path: String, headers: [(String, String)] = []) async throws -> (HTTPResponseStatus, HTTPHeaders, ByteBuffer) {
        var request = HTTPClientRequest(url: self.gateway + path)
        request.method = .DELETE
        self.authorize(&request.headers, unless: headers)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await self.client.execute(request, timeout: .seconds(30))
        return (response.status, response.headers, try await response.body.collect(upTo: 16 * 1024 * 1024))
    }

    /// Adds the stack's admin token unless the test brings its own credential (or asks for none
    /// with an empty `x-sluice-test-no-token` header).
    func authorize(_ fields: inout HTTPHeaders, unless headers: [(String, String)]) {
        let names = Set(headers.map { $0.0.lowercased() })
        guard names.isDisjoint(with: ["authorization", "x-api-key", "x-sluice-test-no-token"]) else { return }
        fields.add(name: "Authorization", value: "Bearer \(self.token)")
    }

    /// Creates a token in the stack's store.
    func makeToken(identity: String, groups: [String], ttl: Duration? = .seconds(3600), now: Date = Date()) async throws -> String {
        let made = ClientToken.make(identity: identity, groups: groups, label: nil, ttl: ttl, now: now)
        try await self.store.insertToken(made.record)
        return made.token
    }
}

/// An OpenAI chat request with one user message (the simulator reads `[[sim …]]` directives in it).
func chatRequest(_ prompt: String, stream: Bool = true, includeUsage: Bool = false, model: String = "claude-sonnet", extra: String = "") -> String {
    let escaped = prompt.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
    let options = includeUsage ? #","stream_options":{"include_usage":true}"# : ""
    return #"{"model":"\#(model)","stream":\#(stream)\#(options),"messages":[{"role":"user","content":"\#(escaped)"}]\#(extra)}"#
}

/// The SSE events of a body, as JSON objects (`[DONE]` as the string "[DONE]").
func sseObjects(_ body: ByteBuffer) throws -> [Any] {
    var parser = SSEParser()
    parser.feed(body)
    var events: [Any] = []
    while let event = try parser.next() {
        if event.data == "[DONE]" {
            events.append("[DONE]")
        } else {
            events.append(try JSONSerialization.jsonObject(with: Data(event.data.utf8)))
        }
    }
    return events
}

/// Every message of an event stream; fails the test on any decoding error.
func decodeEventStream(_ body: ByteBuffer) throws -> [EventStreamMessage] {
    var decoder = EventStreamDecoder()
    try decoder.feed(body)
    var messages: [EventStreamMessage] = []
    while let message = try decoder.next() { messages.append(message) }
    try decoder.finish()
    return messages
}

/// Audit lines the gateway wrote, for assertions.
final class AuditCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var sink: AuditSink {
        AuditSink { line in self.lines.withLock { $0.append(line) } }
    }

    var all: [String] { self.lines.withLock { $0 } }
}
