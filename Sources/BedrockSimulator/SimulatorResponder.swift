internal import Hummingbird
internal import Logging
internal import NIOCore
internal import StreamCore

/// Routes and answers every request. A plain responder rather than Hummingbird's router: the model id
/// segment may hold `%2F`, and the routes are matched on the raw path, split on `/` with empty
/// segments dropped (so `//inference-profiles` from a base URL with a trailing slash works too).
struct SimulatorResponder: HTTPResponder {
    typealias Context = SimulatorRequestContext

    let configuration: SimulatorConfiguration

    /// The route a request addresses.
    enum Route: Equatable {
        case model(encodedID: Substring, operation: SimulatorRecorder.Operation)
        case listInferenceProfiles
        case getInferenceProfile(encodedID: Substring)
        case unknown

        init(method: HTTPRequest.Method, path: String) {
            let segments = path.split(separator: "/")
            switch (method, segments.count, segments.first) {
            case (.post, 3, "model"):
                let operation: SimulatorRecorder.Operation
                switch segments[2] {
                case "converse": operation = .converse
                case "converse-stream": operation = .converseStream
                case "invoke": operation = .invokeModel
                case "invoke-with-response-stream": operation = .invokeModelWithResponseStream
                case "count-tokens": operation = .countTokens
                default: operation = .unknown
                }
                self = operation == .unknown ? .unknown : .model(encodedID: segments[1], operation: operation)
            case (.get, 1, "inference-profiles"):
                self = .listInferenceProfiles
            case (.get, 2, "inference-profiles"):
                self = .getInferenceProfile(encodedID: segments[1])
            default:
                self = .unknown
            }
        }

        var operation: SimulatorRecorder.Operation {
            switch self {
            case .model(_, let operation): operation
            case .listInferenceProfiles: .listInferenceProfiles
            case .getInferenceProfile: .getInferenceProfile
            case .unknown: .unknown
            }
        }
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        let start = ContinuousClock.now
        let requestID = Self.makeRequestID()
        // The raw request target: Hummingbird's parsed `uri` gives up on escapes that decode to
        // invalid UTF-8, and the model id segment must be decoded by its own rules.
        let target = request.head.path ?? "/"
        let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        let route = Route(method: request.method, path: path)
        var modelID: String?
        if case .model(let encodedID, _) = route { modelID = Self.percentDecode(encodedID) }

        var request = request
        var body = ByteBuffer()
        var bodyTooLarge = false
        do {
            body = try await request.collectBody(upTo: self.configuration.maximumRequestBodySize)
        } catch {
            bodyTooLarge = true
        }

        var recording = RecordingHandle(recorder: nil, sequenceNumber: 0)
        if let recorder = self.configuration.recorder {
            let headers = request.headers.map { SimulatorRecorder.Header(name: $0.name.rawName, value: $0.value) }
            let number = recorder.begin(
                method: request.method.rawValue, path: target, modelID: modelID,
                operation: route.operation, headers: headers, body: body
            )
            recording = RecordingHandle(recorder: recorder, sequenceNumber: number)
        }
        context.logger.debug(
            "simulator request",
            metadata: ["sim.operation": "\(route.operation.rawValue)", "sim.model": "\(modelID ?? "-")"]
        )

        let exchange = Exchange(
            route: route, modelID: modelID, request: request, body: body, requestID: requestID, start: start,
            recording: recording, context: context
        )
        do {
            if bodyTooLarge {
                throw BedrockError.validation("Input is too long for the requested model.")
            }
            return try await self.answer(exchange)
        } catch let error as BedrockError {
            recording.end(.error(status: error.status))
            return error.response(requestID: requestID)
        } catch {
            // Only cancellation gets here (the first-byte delay); the client is gone.
            recording.end(.cancelledByClient)
            throw error
        }
    }

    /// One request in flight.
    struct Exchange {
        var route: Route
        var modelID: String?
        var request: Request
        var body: ByteBuffer
        var requestID: String
        var start: ContinuousClock.Instant
        var recording: RecordingHandle
        var context: SimulatorRequestContext
    }

    private func answer(_ exchange: Exchange) async throws -> Response {
        try self.authenticate(exchange.request)

        var scenario = self.configuration.defaultScenario
        do {
            if exchange.body.readableBytes > 0 {
                try scenario.applyDirectives(in: Array(exchange.body.readableBytesView))
            }
            for value in exchange.request.headers[values: .simScenario] {
                try scenario.apply(value)
            }
        } catch {
            throw BedrockError.validation(error.description)
        }

        if scenario.firstByteDelay > .zero {
            try await Task.sleep(for: scenario.firstByteDelay)
        }

        switch exchange.route {
        case .unknown:
            throw BedrockError(status: 404, type: "UnknownOperationException", message: "Unknown operation.")
        case .listInferenceProfiles:
            try self.failIfScenarioSaysSo(scenario, modelID: nil)
            let type = exchange.request.uri.queryParameters["type"].map(String.init)
            return self.json(InferenceProfiles.list(type: type), exchange)
        case .getInferenceProfile(let encodedID):
            guard let identifier = Self.percentDecode(encodedID) else {
                throw BedrockError.validation("The inference profile identifier is not valid percent-encoded UTF-8.")
            }
            try self.failIfScenarioSaysSo(scenario, modelID: nil)
            guard let profile = InferenceProfiles.profile(identifier: identifier) else {
                throw BedrockError(status: 404, type: "ResourceNotFoundException", message: "Inference profile \(identifier) not found.")
            }
            var body = ByteBuffer()
            profile.write(into: &body)
            return self.json(body, exchange)
        case .model(_, let operation):
            guard let modelID = exchange.modelID, !modelID.isEmpty else {
                throw BedrockError.validation("The model identifier is not valid percent-encoded UTF-8.")
            }
            let fault = self.configuration.faults.next(modelID: modelID)
            if fault.delay > .zero { try await Task.sleep(for: fault.delay) }
            if let error = fault.error { throw error }
            if modelID.contains("does-not-exist") { throw BedrockError.modelNotFound() }
            let isInvoke = operation == .invokeModel || operation == .invokeModelWithResponseStream
            if isInvoke, !Self.isAnthropic(modelID) {
                throw BedrockError.validation(
                    "[sim] InvokeModel is simulated for Anthropic models only; \(modelID) is not one. Use Converse."
                )
            }
            try self.failIfScenarioSaysSo(scenario, modelID: modelID)
            if operation == .countTokens {
                return self.json(try CountTokens.answer(body: exchange.body), exchange)
            }
            let dialect: RequestDialect = isInvoke ? .anthropic : .converse
            let json: ParsedJSON
            do {
                json = try ParsedJSON.parse(exchange.body)
            } catch {
                throw BedrockError.validation("Malformed input request, please reformat your input and try again.")
            }
            guard json["messages"]?.arrayValue != nil else {
                throw BedrockError.validation("Malformed input request: messages: Field required, please reformat your input and try again.")
            }
            let facts = RequestFacts(body: exchange.body, json: json, dialect: dialect)
            let acceptance = scenario.acceptedBetas ?? self.configuration.betaAcceptance(forModel: modelID)
            if acceptance.firstRefused(in: facts.betas) != nil {
                // Bedrock names no value, so neither does the simulator (CLAUDE_CODE.md §9).
                throw BedrockError.validation("invalid beta flag")
            }
            let plan = ResponsePlan(scenario: scenario, facts: facts)
            switch operation {
            case .converse:
                return self.json(NonStreamingBodies.converse(plan, start: exchange.start), exchange)
            case .invokeModel:
                var response = self.json(NonStreamingBodies.invoke(plan, model: Self.anthropicModelName(modelID)), exchange)
                response.headers[.amznBedrockInputTokenCount] = String(plan.inputTokens)
                response.headers[.amznBedrockOutputTokenCount] = String(plan.outputTokens)
                response.headers[.amznBedrockInvocationLatency] = String(ConverseStreamSource.milliseconds(since: exchange.start))
                return response
            case .converseStream:
                let source = ConverseStreamSource(plan: plan, start: exchange.start)
                return self.stream(source, scenario: scenario, exchange: exchange, bedrockContentType: false)
            default:
                let start = exchange.start
                let model = Self.anthropicModelName(modelID)
                let source = InvokeStreamSource(
                    plan: plan, model: model, start: start, firstByteLatency: ConverseStreamSource.milliseconds(since: start)
                )
                return self.stream(source, scenario: scenario, exchange: exchange, bedrockContentType: true)
            }
        }
    }

    private func stream(
        _ source: some FrameSource & Sendable,
        scenario: Scenario,
        exchange: Exchange,
        bedrockContentType: Bool
    ) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/vnd.amazon.eventstream"
        if bedrockContentType { headers[.amznBedrockContentType] = "application/json" }
        headers[.amznRequestID] = exchange.requestID
        let recording = exchange.recording
        let context = exchange.context
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                var source = source
                try await StreamPump.run(
                    &source, scenario: scenario, writer: &writer, recording: recording,
                    writesDelivered: { await context.writesDelivered() }
                )
            }
        )
    }

    private func json(_ body: ByteBuffer, _ exchange: Exchange) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.amznRequestID] = exchange.requestID
        // The body is handed over whole; Hummingbird writes it in one go.
        exchange.recording.end(.completed)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: body))
    }

    private func failIfScenarioSaysSo(_ scenario: Scenario, modelID: String?) throws {
        guard let status = scenario.status else { return }
        var error = BedrockError.forScenario(status: status, modelID: modelID)
        error.retryAfterSeconds = scenario.retryAfterSeconds
        throw error
    }

    private func authenticate(_ request: Request) throws {
        guard let required = self.configuration.requiredBearerToken else { return }
        guard let authorization = request.headers[.authorization] else {
            throw BedrockError(status: 403, type: "AccessDeniedException", message: "Missing Authentication Token")
        }
        let prefix = "Bearer "
        guard authorization.hasPrefix(prefix),
            Self.constantTimeEquals(Array(authorization.utf8.dropFirst(prefix.utf8.count)), Array(required.utf8))
        else {
            throw BedrockError(
                status: 403, type: "UnrecognizedClientException", message: "The security token included in the request is invalid."
            )
        }
    }

    /// Compares without an early exit, so response time does not reveal how much of a token matched.
    static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }

    static func isAnthropic(_ modelID: String) -> Bool {
        modelID.contains("anthropic.") || InferenceProfiles.isApplicationProfileARN(modelID)
    }

    /// The `model` Anthropic reports: `eu.anthropic.claude-sonnet-4-5-20250929-v1:0` →
    /// `claude-sonnet-4-5-20250929`; an application profile ARN reports the Sonnet it stands for.
    static func anthropicModelName(_ modelID: String) -> String {
        var name = Substring(InferenceProfiles.isApplicationProfileARN(modelID) ? InferenceProfiles.sonnet : modelID)
        if let range = name.firstRange(of: "anthropic.") { name = name[range.upperBound...] }
        // Drop a `-v1:0`-style version suffix.
        if let dash = name.lastIndex(of: "-") {
            let suffix = name[name.index(after: dash)...]
            if suffix.first == "v", suffix.dropFirst().allSatisfy({ $0.isNumber || $0 == ":" }) {
                name = name[..<dash]
            }
        }
        return String(name)
    }

    /// Percent-decodes one path segment; `nil` for a bad escape or bytes that are not UTF-8.
    static func percentDecode(_ segment: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(segment.utf8.count)
        var iterator = segment.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(Self.hexValue), let low = iterator.next().flatMap(Self.hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// A fresh UUID-shaped request id, as Bedrock's `x-amzn-RequestId`.
    static func makeRequestID() -> String {
        let high = UInt64.random(in: .min ... .max)
        let low = UInt64.random(in: .min ... .max)
        func hex(_ value: UInt64, _ digits: Int) -> String {
            let text = String(value, radix: 16)
            return String(repeating: "0", count: max(0, digits - text.count)) + text
        }
        return "\(hex(high >> 32, 8))-\(hex(high >> 16 & 0xFFFF, 4))-\(hex(high & 0xFFFF, 4))-\(hex(low >> 48, 4))-\(hex(low & 0xFFFF_FFFF_FFFF, 12))"
    }
}
