import AsyncHTTPClient
import BedrockSimulator
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import StreamCore
import Testing

/// Runs a real simulator on 127.0.0.1, ephemeral port, for the length of `body` (STYLE.md §12).
struct Simulator {
    let port: Int
    let recorder: SimulatorRecorder

    var base: String { "http://127.0.0.1:\(self.port)" }

    static func run<Value: Sendable>(
        requiredBearerToken: String? = nil,
        defaultScenario: Scenario = Scenario(),
        acceptedBetas: [String: [String]] = [:],
        faults: SimulatorFaults = SimulatorFaults(),
        _ body: (Simulator) async throws -> Value
    ) async throws -> Value {
        let recorder = SimulatorRecorder()
        let configuration = SimulatorConfiguration(
            requiredBearerToken: requiredBearerToken, defaultScenario: defaultScenario, recorder: recorder,
            acceptedBetas: acceptedBetas, faults: faults
        )
        var logger = Logger(label: "BedrockSimulatorTests")
        // A server still answering after the two seconds of graceful shutdown is cancelled, which
        // HummingbirdCore logs as errors; they are expected here.
        logger.logLevel = .critical
        let (ports, portContinuation) = AsyncStream<Int>.makeStream()
        let app = makeSimulatorApplication(configuration: configuration, logger: logger) { port in
            portContinuation.yield(port)
            portContinuation.finish()
        }
        // Stopped as SIGTERM would stop it (no new connections, open ones may finish, the rest is
        // cancelled after two seconds). Cancelling at once can drop a connection that was accepted
        // but not yet handed to the server's loop, on which NIO traps: "Deinited NIOAsyncWriter
        // without calling finish()" (swift-nio #2637).
        var groupConfiguration = ServiceGroupConfiguration(services: [.init(service: app)], logger: logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(2)
        let serviceGroup = ServiceGroup(configuration: groupConfiguration)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await serviceGroup.run() }
            let outcome: Result<Value, any Error>
            do {
                var iterator = ports.makeAsyncIterator()
                let port = try #require(await iterator.next())
                outcome = .success(try await body(Simulator(port: port, recorder: recorder)))
            } catch {
                outcome = .failure(error)
            }
            await serviceGroup.triggerGracefulShutdown()
            while (try? await group.next()) != nil {}
            return try outcome.get()
        }
    }

    /// Sends a request and returns the response with its whole body.
    func send(
        _ path: String,
        method: HTTPMethod = .POST,
        body: String? = nil,
        headers: [(String, String)] = []
    ) async throws -> (response: HTTPClientResponse, body: ByteBuffer) {
        let response = try await self.start(path, method: method, body: body, headers: headers)
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return (response, bytes)
    }

    /// Sends a request and returns the response head; the body is still to be read.
    func start(
        _ path: String,
        method: HTTPMethod = .POST,
        body: String? = nil,
        headers: [(String, String)] = []
    ) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: self.base + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        return try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    }
}

/// The frames of a whole event-stream body, each checked by StreamCore's decoder (both CRCs, headers).
struct DecodedStream {
    var messages: [EventStreamMessage] = []
    /// Why decoding stopped early, if it did.
    var error: EventStreamError?

    init(_ body: ByteBuffer) {
        var decoder = EventStreamDecoder()
        do {
            try decoder.feed(body)
            while let message = try decoder.next() { self.messages.append(message) }
            try decoder.finish()
        } catch let error as EventStreamError {
            self.error = error
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    var eventTypes: [String] {
        self.messages.map { $0.headers.eventType.map { String(buffer: $0) } ?? "-" }
    }

    var payloads: [String] {
        self.messages.map { String(buffer: $0.payload) }
    }
}

extension EventStreamMessage {
    /// Header names in order, e.g. `[":event-type", ":content-type", ":message-type"]`.
    var headerNames: [String] { self.headers.map { String(buffer: $0.name) } }

    func headerString(_ name: String) -> String? {
        self.headers.first { String(buffer: $0.name) == name }?.value.stringValue
    }

    var json: JSONValue? { try? JSONValue(parsing: String(buffer: self.payload)) }

    /// The decoded Anthropic event inside a `chunk` frame's `{"bytes":…}`.
    var anthropicEvent: JSONValue? {
        guard let encoded = self.json?["bytes"]?.string else { return nil }
        var decoded = ByteBuffer()
        let valid = ByteBuffer(string: encoded).withUnsafeReadableBytes { (try? Base64.decode($0, appendingTo: &decoded)) != nil }
        guard valid else { return nil }
        return try? JSONValue(parsing: String(buffer: decoded))
    }
}

/// Standard Bedrock request bodies.
enum Bodies {
    static func converse(_ text: String, tools: [String] = []) -> String {
        var body = #"{"messages":[{"role":"user","content":[{"text":"# + jsonString(text) + "}]}]"
        if !tools.isEmpty {
            let specs = tools.map { #"{"toolSpec":{"name":"# + jsonString($0) + #","inputSchema":{"json":{"type":"object"}}}}"# }
            body += #","toolConfig":{"tools":["# + specs.joined(separator: ",") + "]}"
        }
        return body + "}"
    }

    static func anthropic(_ text: String, tools: [String] = []) -> String {
        var body = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":1024,"messages":[{"role":"user","content":[{"type":"text","text":"# + jsonString(text) + "}]}]"
        if !tools.isEmpty {
            let specs = tools.map { #"{"name":"# + jsonString($0) + #","input_schema":{"type":"object"}}"# }
            body += #","tools":["# + specs.joined(separator: ",") + "]"
        }
        return body + "}"
    }

    static func jsonString(_ text: String) -> String {
        var buffer = ByteBuffer()
        buffer.writeJSONString(text)
        return String(buffer: buffer)
    }
}
