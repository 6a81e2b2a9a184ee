import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import StreamCore

/// The `/bedrock/…` routes: Bedrock Runtime's own API, passed through for Claude Code, boto3 and the
/// Anthropic SDK's Bedrock client. Request bodies go upstream byte for byte; streamed answers are
/// decoded and CRC-checked on the way and forwarded as the original bytes, one frame never split
/// from its checks: a corrupt frame is never forwarded.
struct BedrockRoutes: Sendable {
    let upstream: UpstreamClient
    let maxBodyBytes: Int
    /// How long a client may take to send its body.
    let bodyTimeout: Duration
    let requestTimeout: Duration
    let access: GatewayAccess

    /// What a `/bedrock` path asks for.
    enum Target: Equatable {
        case model(id: String, operation: BedrockOperation)
        case listInferenceProfiles
        case inferenceProfile(id: String)
    }

    /// Parses the path after the route prefix. Claude Code sends `//` after the prefix when its base
    /// URL ends in `/`, and the model id as one segment with raw `:`, `%3A` or `%2F` (CLAUDE_CODE.md
    /// §2.3, §7).
    static func target(path: String) -> Target? {
        guard let range = path.range(of: "/bedrock") else { return nil }
        var rest = path[range.upperBound...]
        while rest.hasPrefix("/") { rest = rest.dropFirst() }
        if rest.hasPrefix("model/") {
            let tail = rest.dropFirst("model/".count)
            guard let slash = tail.lastIndex(of: "/"),
                let operation = BedrockOperation(rawValue: String(tail[tail.index(after: slash)...])),
                let id = percentDecodePathSegment(tail[..<slash]), !id.isEmpty
            else { return nil }
            return .model(id: id, operation: operation)
        }
        if rest == "inference-profiles" || rest == "inference-profiles/" {
            return .listInferenceProfiles
        }
        if rest.hasPrefix("inference-profiles/") {
            guard let id = percentDecodePathSegment(rest.dropFirst("inference-profiles/".count)), !id.isEmpty else { return nil }
            return .inferenceProfile(id: id)
        }
        return nil
    }

    /// Answers a `/bedrock` request. `caller` is `nil` only for the inference-profile listing when
    /// the configuration allows it without a token.
    func respond(to request: Request, context: some RequestContext, caller: Caller?) async throws -> Response {
        guard let target = Self.target(path: request.uri.path) else {
            return GatewayError.notFound("no Bedrock route at \(request.uri.path)").bedrockResponse()
        }
        switch (target, request.method) {
        case (.model(let id, let operation), .post):
            guard let caller else { return AuthenticationFailure.missing.gatewayError.bedrockResponse() }
            return try await self.invoke(modelID: id, operation: operation, request: request, context: context, caller: caller)
        case (.listInferenceProfiles, .get):
            return self.listInferenceProfiles()
        case (.inferenceProfile(let id), .get):
            return self.inferenceProfile(id: id)
        default:
            return GatewayError(
                status: .methodNotAllowed, type: "invalid_request_error", code: "method_not_allowed",
                message: "\(request.method) is not supported here", bedrockType: "ValidationException"
            ).bedrockResponse()
        }
    }

    // MARK: Runtime operations

    /// Client headers that mean something to Bedrock and carry no client credential. The client's
    /// own request metadata is left out here: the gateway merges it with the caller's identity.
    static func forwardedHeaders(_ fields: HTTPFields) -> [(String, String)] {
        fields.compactMap { field in
            let name = field.name.canonicalName
            guard name.hasPrefix("x-amzn-bedrock-"), name != HTTPField.Name.bedrockRequestMetadata.canonicalName else { return nil }
            return (name, field.value)
        }
    }

    func invoke(
        modelID: String, operation: BedrockOperation, request: Request, context: some RequestContext, caller: Caller
    ) async throws -> Response {
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: self.maxBodyBytes, timeout: self.bodyTimeout)
        } catch {
            let refusal = error.gatewayError(limit: self.maxBodyBytes, timeout: self.bodyTimeout)
            await self.access.recordRejected(
                caller, route: "/bedrock/model/\(operation.name)", requested: modelID, status: Int(refusal.status.code), reason: error.code,
                requestID: context.requestID
            )
            return refusal.bedrockResponse()
        }
        let resolved = self.access.settings.current.catalog.resolve(modelID)
        let summary = BedrockRequestSummary(body: body)
        let account: RequestAccount
        switch await self.access.admit(
            caller, route: "/bedrock/model/\(operation.name)", requested: modelID, resolved: resolved,
            declared: DeclaredRequest(messageCount: summary.messageCount, bodyBytes: body.readableBytes, maxTokens: summary.maxTokens),
            countsAgainstLimits: operation != .countTokens, isStream: operation.isStreaming, requestID: context.requestID
        ) {
        case .success(let admitted): account = admitted
        case .failure(let refusal): return refusal.bedrockResponse()
        }
        // Cost allocation: Bedrock attributes the call to these tags in its own usage reports.
        var upstreamHeaders = Self.forwardedHeaders(request.headers)
        upstreamHeaders.append((
            HTTPField.Name.bedrockRequestMetadata.canonicalName,
            GatewayAccess.requestMetadataJSON(for: caller, merging: request.headers[.bedrockRequestMetadata])
        ))
        let started = ContinuousClock.now
        let response: HTTPClientResponse
        do {
            response = try await self.upstream.execute(
                operation: operation, modelID: modelID, body: body, headers: upstreamHeaders, logger: context.logger
            )
        } catch {
            let failure = UpstreamResponse.describe(error)
            context.logger.info("upstream request failed", metadata: ["upstream.error": "\(failure.code)"])
            self.access.metrics.upstreamError(failure.code)
            let error = failure.code.hasSuffix("timeout") ? GatewayError.upstreamTimeout(failure.message) : GatewayError.upstreamUnreachable(failure.message)
            await account.finish(status: error.status.code, finishReason: failure.code, usage: nil)
            return error.bedrockResponse()
        }
        guard response.status == .ok else {
            let passed = await Self.passErrorThrough(response)
            let errorType = passed.headers[.amazonErrorType].map { String($0.prefix { $0 != ":" }) }
            self.access.metrics.upstreamError(errorType ?? "status_\(response.status.code)")
            await account.finish(status: passed.status.code, finishReason: errorType, usage: nil)
            return passed
        }
        guard operation.isStreaming else {
            let (passed, usage) = await Self.passBodyThrough(response)
            await account.finish(status: passed.status.code, finishReason: nil, usage: usage)
            return passed
        }
        var headers: HTTPFields = [.contentType: "application/vnd.amazon.eventstream"]
        headers[.bedrockContentType] = "application/json"
        if let requestID = response.headers.first(name: "x-amzn-requestid") {
            headers[.amazonRequestID] = requestID
        }
        let deadline = started + self.requestTimeout
        let logger = context.logger
        let observer = StreamObserver(metrics: self.access.metrics, lifecycle: self.access.lifecycle, route: "/bedrock/model")
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await Self.relay(
                upstream: response.body, operation: operation, deadline: deadline, writer: &writer, logger: logger, observer: observer
            ) { outcome in
                await account.finish(status: 200, finishReason: outcome.finishReason, usage: account.usage(of: outcome), firstByte: outcome.firstByte)
            }
        })
    }

    /// Forwards verified frames as the bytes they arrived as; ends with a Bedrock exception frame
    /// when the upstream stream breaks (Claude Code then falls back to `/invoke`).
    ///
    /// `onEnd` runs exactly once, however the stream ends, before the response ends (see
    /// ``ChatCompletionsRoute/stream(upstream:options:deadline:writer:logger:onEnd:)``).
    static func relay(
        upstream body: some AsyncSequence<ByteBuffer, any Error>,
        operation: BedrockOperation,
        deadline: ContinuousClock.Instant,
        writer: inout any ResponseBodyWriter,
        logger: Logger,
        observer: StreamObserver? = nil,
        onEnd: @Sendable (StreamOutcome) async -> Void = { _ in }
    ) async throws {
        var decoder = EventStreamDecoder()
        var invokeMeter = InvokeStreamTranslator()
        var converseMeter = ConverseStreamMeter()
        // Bytes received and not yet forwarded; the verified prefix is forwarded after each read.
        var pending = ByteBuffer()
        var verified = 0
        var failure: (code: String, message: String)?
        var firstByte: ContinuousClock.Instant?
        var disconnected = false
        do {
            for try await read in body {
                let arrived = ContinuousClock.now
                if pending.readableBytes == 0 { pending = read } else { pending.writeImmutableBuffer(read) }
                try decoder.feed(read)
                while let message = try decoder.next() {
                    verified += 16 + message.bodyLength
                    if operation == .invokeWithResponseStream {
                        _ = invokeMeter.observe(message)
                    } else {
                        converseMeter.observe(message)
                    }
                }
                if verified > 0 {
                    let handed = ContinuousClock.now
                    if firstByte == nil { firstByte = handed }
                    observer?.chunkProcessed(handed - arrived)
                    try await Self.forward(&pending, count: &verified, to: &writer)
                }
                if arrived > deadline {
                    failure = ("request_timeout", "the request exceeded the gateway's time limit")
                    break
                }
            }
            if failure == nil { try decoder.finish() }
        } catch is ClientDisconnected {
            logger.debug("client disconnected mid-stream")
            disconnected = true
        } catch is CancellationError {
            disconnected = true
        } catch let error as EventStreamError {
            logger.info("corrupt upstream stream", metadata: ["decoder.error": "\(error.code)"])
            observer?.metrics.decoderError("\(error.code)")
            failure = ("upstream_corrupt_stream", "upstream sent a corrupt event stream (\(error.code))")
        } catch {
            if observer?.lifecycle.isDrainExpired == true {
                failure = ("server_shutting_down", "the gateway is shutting down; this stream was cut at the end of its drain time")
            } else {
                failure = UpstreamResponse.describe(error, duringBody: true)
                logger.info("upstream stream failed", metadata: ["upstream.error": "\(failure?.code ?? "")"])
            }
        }
        if let code = failure?.code, code != "server_shutting_down" { observer?.metrics.upstreamError(code) }
        if !disconnected {
            do {
                // Frames verified before the failure still go out; the broken rest never does.
                if verified > 0 { try await Self.forward(&pending, count: &verified, to: &writer) }
                if let failure {
                    var frame = ByteBuffer()
                    try Self.writeExceptionFrame(message: failure.message, into: &frame)
                    try await writer.write(frame)
                }
            } catch {
                disconnected = true
            }
        }
        let usage: TokenUsage?
        let stopReason: String?
        let isComplete: Bool
        let produced: Int
        if operation == .invokeWithResponseStream {
            usage = invokeMeter.usage
            stopReason = invokeMeter.stopReason
            isComplete = invokeMeter.isComplete
            produced = invokeMeter.producedBytes
        } else {
            usage = converseMeter.usage
            stopReason = converseMeter.stopReason
            isComplete = converseMeter.usage != nil
            produced = converseMeter.producedBytes
        }
        let finishReason = disconnected ? "client_disconnected" : failure?.code ?? stopReason
        await onEnd(
            StreamOutcome(usage: usage, isUsageComplete: isComplete, producedBytes: produced, finishReason: finishReason, firstByte: firstByte)
        )
        if disconnected { throw CancellationError() }
        try await writer.finish(nil)
    }

    private static func forward(_ pending: inout ByteBuffer, count: inout Int, to writer: inout any ResponseBodyWriter) async throws {
        // Safe to force unwrap: `count` bytes of `pending` were just decoded and verified.
        let chunk = pending.readSlice(length: count)!
        count = 0
        if pending.readableBytes == 0 { pending = ByteBuffer() }
        do {
            try await writer.write(chunk)
        } catch {
            throw ClientDisconnected()
        }
    }

    /// A `modelStreamErrorException` frame, as Bedrock sends when a stream fails after it started.
    static func writeExceptionFrame(message: String, into buffer: inout ByteBuffer) throws {
        var payload = ByteBuffer()
        payload.writeStaticString("{\"message\":")
        payload.writeJSONString(message)
        payload.writeStaticString(",\"originalStatusCode\":502}")
        try EventStreamEncoder.write(
            headers: [
                EventStreamHeader(name: ":exception-type", value: .init(string: "modelStreamErrorException")),
                EventStreamHeader(name: ":content-type", value: .init(string: "application/json")),
                EventStreamHeader(name: ":message-type", value: .init(string: "exception")),
            ],
            payload: payload,
            into: &buffer
        )
    }

    /// Bedrock's own error, status, type and body (bounded), as the client's SDK expects it.
    static func passErrorThrough(_ response: HTTPClientResponse) async -> Response {
        let body = (try? await response.body.collect(upTo: UpstreamResponse.maximumErrorBodyBytes)) ?? ByteBuffer()
        let fields = UpstreamResponse.errorFields(status: Int(response.status.code), headers: response.headers, body: body)
        let error = GatewayError.upstream(
            status: Int(response.status.code), errorType: fields.type, message: fields.message,
            retryAfter: response.headers.first(name: "retry-after").flatMap { Int($0) }
        )
        var passed = GatewayError(
            status: HTTPResponse.Status(code: Int(response.status.code)), type: error.type, code: error.code,
            message: fields.message ?? error.message, bedrockType: fields.type ?? error.bedrockType, retryAfter: error.retryAfter
        )
        // Our own credentials being refused is not the caller's fault, nor something a retry fixes
        // with their credentials: report it as a gateway failure.
        if error.code == "upstream_auth_failed" {
            passed = GatewayError(status: .badGateway, type: error.type, code: error.code, message: error.message, bedrockType: "InternalServerException")
        }
        return passed.bedrockResponse()
    }

    /// The upstream's answer as it came, and the usage it reports: Bedrock's token-count headers
    /// (InvokeModel), else the body's `usage` object (Converse).
    static func passBodyThrough(_ response: HTTPClientResponse) async -> (Response, TokenUsage?) {
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        } catch {
            let failure = UpstreamResponse.describe(error)
            return (GatewayError.upstreamUnreachable(failure.message).bedrockResponse(), nil)
        }
        var headers: HTTPFields = [.contentType: response.headers.first(name: "content-type") ?? "application/json"]
        for (name, value) in response.headers where name.lowercased().hasPrefix("x-amzn-") {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        return (Response(status: .ok, headers: headers, body: .init(byteBuffer: body)), Self.usage(headers: response.headers, body: body))
    }

    static func usage(headers: HTTPHeaders, body: ByteBuffer) -> TokenUsage? {
        func count(_ name: String) -> Int? { headers.first(name: name).flatMap { Int($0) } }
        if let input = count("x-amzn-bedrock-input-token-count"), let output = count("x-amzn-bedrock-output-token-count") {
            return TokenUsage(
                inputTokens: input, outputTokens: output, cacheReadInputTokens: count("x-amzn-bedrock-cache-read-input-token-count") ?? 0,
                cacheWriteInputTokens: count("x-amzn-bedrock-cache-write-input-token-count") ?? 0
            )
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
            let usage = object["usage"] as? [String: Any]
        else { return nil }
        return TokenUsage(
            inputTokens: usage["inputTokens"] as? Int ?? 0, outputTokens: usage["outputTokens"] as? Int ?? 0,
            cacheReadInputTokens: usage["cacheReadInputTokens"] as? Int ?? 0, cacheWriteInputTokens: usage["cacheWriteInputTokens"] as? Int ?? 0
        )
    }

    // MARK: Control plane

    /// `ListInferenceProfiles`, answered from the models this gateway advertises.
    func listInferenceProfiles() -> Response {
        var body = ByteBuffer()
        body.writeStaticString("{\"inferenceProfileSummaries\":[")
        var first = true
        for id in self.access.settings.current.catalog.advertisedModelIDs where ModelCatalog.foundationModelID(id) != id {
            if !first { body.writeStaticString(",") }
            first = false
            self.writeProfile(id: id, into: &body)
        }
        body.writeStaticString("]}")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }

    /// `GetInferenceProfile` for a system profile id this gateway advertises.
    func inferenceProfile(id: String) -> Response {
        guard self.access.settings.current.catalog.advertisedModelIDs.contains(id), ModelCatalog.foundationModelID(id) != id else {
            return GatewayError.notFound("inference profile \(id) is not available through this gateway").bedrockResponse()
        }
        var body = ByteBuffer()
        self.writeProfile(id: id, into: &body)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }

    private func writeProfile(id: String, into body: inout ByteBuffer) {
        let region = self.upstream.region
        let foundation = ModelCatalog.foundationModelID(id)
        body.writeStaticString("{\"inferenceProfileName\":")
        body.writeJSONString(id)
        body.writeStaticString(",\"description\":\"Served by Sluice\",\"createdAt\":\"2025-01-01T00:00:00Z\",\"updatedAt\":\"2025-01-01T00:00:00Z\",\"inferenceProfileArn\":")
        body.writeJSONString("arn:aws:bedrock:\(region):000000000000:inference-profile/\(id)")
        body.writeStaticString(",\"models\":[{\"modelArn\":")
        body.writeJSONString("arn:aws:bedrock:\(region)::foundation-model/\(foundation)")
        body.writeStaticString("}],\"inferenceProfileId\":")
        body.writeJSONString(id)
        body.writeStaticString(",\"status\":\"ACTIVE\",\"type\":\"SYSTEM_DEFINED\"}")
    }
}
