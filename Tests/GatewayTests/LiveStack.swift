import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// The real gateway in front of the real simulator, both on 127.0.0.1 with ephemeral ports, and an
/// HTTP client to drive them. Nothing of ours is mocked.
struct LiveStack {
    let gatewayPort: Int
    let simulatorPort: Int
    let recorder: SimulatorRecorder
    let client: HTTPClient

    var gateway: String { "http://127.0.0.1:\(self.gatewayPort)" }
    var simulator: String { "http://127.0.0.1:\(self.simulatorPort)" }

    static func run<Result: Sendable>(
        simulator simulatorConfiguration: SimulatorConfiguration = .init(),
        authentication: UpstreamAuthentication = .none,
        configure: @Sendable (inout GatewayConfiguration) -> Void = { _ in },
        _ body: @Sendable (LiveStack) async throws -> Result
    ) async throws -> Result {
        var logger = Logger(label: "sluice-test")
        // Cancelling the task group stops the servers abruptly, which Hummingbird logs as errors.
        logger.logLevel = .critical
        let recorder = SimulatorRecorder()
        var simulatorConfiguration = simulatorConfiguration
        simulatorConfiguration.recorder = recorder
        simulatorConfiguration.port = 0
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let (simulatorPorts, simulatorPort) = AsyncStream.makeStream(of: Int.self)
        let (gatewayPorts, gatewayPort) = AsyncStream.makeStream(of: Int.self)
        do {
            let result = try await withThrowingTaskGroup(of: Void.self) { group in
                let simulatorApp = makeSimulatorApplication(configuration: simulatorConfiguration, logger: logger) { port in
                    simulatorPort.yield(port)
                }
                group.addTask { try await simulatorApp.runService() }
                var ports = simulatorPorts.makeAsyncIterator()
                let simulatorBound = try #require(await ports.next())
                var configuration = GatewayConfiguration()
                configuration.server.port = 0
                configuration.upstream.endpoint = URL(string: "http://127.0.0.1:\(simulatorBound)")
                configure(&configuration)
                let upstream = UpstreamClient(
                    endpoint: try #require(configuration.upstream.endpoint), region: "us-east-1", authentication: authentication,
                    timeouts: configuration.timeouts
                )
                let gatewayApp = buildGatewayApplication(configuration: configuration, upstream: upstream, logger: logger) { port in
                    gatewayPort.yield(port)
                }
                group.addTask { try await gatewayApp.runService() }
                var gatewayIterator = gatewayPorts.makeAsyncIterator()
                let gatewayBound = try #require(await gatewayIterator.next())
                let stack = LiveStack(gatewayPort: gatewayBound, simulatorPort: simulatorBound, recorder: recorder, client: client)
                do {
                    let result = try await body(stack)
                    group.cancelAll()
                    try? await upstream.shutdown()
                    return result
                } catch {
                    group.cancelAll()
                    try? await upstream.shutdown()
                    throw error
                }
            }
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// POSTs JSON and returns the status, headers and the whole body.
    func post(_ path: String, json: String, headers: [(String, String)] = [], base: String? = nil) async throws -> (HTTPResponseStatus, HTTPHeaders, ByteBuffer) {
        var request = HTTPClientRequest(url: (base ?? self.gateway) + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await self.client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        return (response.status, response.headers, body)
    }

    func get(_ path: String, headers: [(String, String)] = []) async throws -> (HTTPResponseStatus, HTTPHeaders, ByteBuffer) {
        var request = HTTPClientRequest(url: self.gateway + path)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        let response = try await self.client.execute(request, timeout: .seconds(30))
        return (response.status, response.headers, try await response.body.collect(upTo: 16 * 1024 * 1024))
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
