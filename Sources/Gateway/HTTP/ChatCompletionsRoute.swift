import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import StreamCore

/// `POST /v1/chat/completions`: OpenAI in, Bedrock Converse/ConverseStream upstream, OpenAI out.
struct ChatCompletionsRoute: Sendable {
    let upstream: UpstreamClient
    let maxBodyBytes: Int
    /// How long a client may take to send its body.
    let bodyTimeout: Duration
    let requestTimeout: Duration
    let access: GatewayAccess

    static let route = "/v1/chat/completions"

    func respond(to request: Request, context: some RequestContext, caller: Caller) async throws -> Response {
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: self.maxBodyBytes, timeout: self.bodyTimeout)
        } catch {
            let refusal = error.gatewayError(limit: self.maxBodyBytes, timeout: self.bodyTimeout)
            await self.access.recordRejected(
                caller, route: Self.route, requested: "", status: Int(refusal.status.code), reason: error.code, requestID: context.requestID
            )
            return refusal.openAIResponse()
        }
        let converse: ConverseRequest
        do {
            converse = try self.access.settings.current.mapper.map(body)
        } catch {
            MemoryRelief.afterRequest(bodyBytes: body.readableBytes)
            await self.access.recordRejected(
                caller, route: Self.route, requested: "", status: 400, reason: error.code.description, requestID: context.requestID
            )
            return GatewayError.badRequest(error.message, param: error.param, code: error.code.description).openAIResponse()
        }
        let account: RequestAccount
        let declared = DeclaredRequest(messageCount: converse.messageCount, bodyBytes: body.readableBytes, maxTokens: converse.maxTokens)
        switch await self.access.admit(
            caller, route: Self.route, requested: converse.requestedModel, resolved: converse.modelID, declared: declared,
            isStream: converse.isStreaming, requestID: context.requestID
        ) {
        case .success(let admitted): account = admitted
        case .failure(let refusal): return refusal.openAIResponse()
        }
        // Cost allocation: the caller's identity and group go upstream as Converse request metadata.
        var upstreamBody = converse.body
        GatewayAccess.addRequestMetadata(for: caller, to: &upstreamBody)
        let operation: BedrockOperation = converse.isStreaming ? .converseStream : .converse
        let started = ContinuousClock.now
        let response: HTTPClientResponse
        do {
            response = try await self.upstream.execute(operation: operation, modelID: converse.modelID, body: upstreamBody, logger: context.logger)
        } catch {
            let failure = UpstreamResponse.describe(error)
            context.logger.info("upstream request failed", metadata: ["upstream.error": "\(failure.code)"])
            self.access.metrics.upstreamError(failure.code)
            let status: HTTPResponse.Status = failure.code.hasSuffix("timeout") ? .gatewayTimeout : .badGateway
            await account.finish(status: status.code, finishReason: failure.code, usage: nil)
            return GatewayError(status: status, type: "api_error", code: failure.code, message: failure.message, bedrockType: "InternalServerException")
                .openAIResponse()
        }
        guard response.status == .ok else {
            let error = await UpstreamResponse.error(from: response)
            self.access.metrics.upstreamError(error.bedrockType)
            await account.finish(status: error.status.code, finishReason: error.code, usage: nil)
            return error.openAIResponse()
        }
        let id = "chatcmpl-" + Self.randomID()
        let created = Int(Date().timeIntervalSince1970)
        guard converse.isStreaming else {
            return await self.completion(response, id: id, created: created, converse: converse, account: account)
        }
        let options = ChatChunkTranslator.Options(
            id: id, created: created, model: converse.requestedModel, includeUsage: converse.includesUsage,
            responseFormatToolName: converse.usesResponseFormatTool ? String(describing: ChatRequestMapper.responseFormatToolName) : nil
        )
        let deadline = started + self.requestTimeout
        let logger = context.logger
        let observer = StreamObserver(metrics: self.access.metrics, lifecycle: self.access.lifecycle, route: Self.route)
        let headers: HTTPFields = [
            .contentType: "text/event-stream",
            .cacheControl: "no-cache",
            .accelBuffering: "no",
        ]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await Self.stream(
                upstream: response.body, options: options, deadline: deadline, writer: &writer, logger: logger, observer: observer
            ) { outcome in
                await account.finish(status: 200, finishReason: outcome.finishReason, usage: account.usage(of: outcome), firstByte: outcome.firstByte)
            }
        })
    }

    /// The pull loop of DESIGN.md: read upstream → decode → translate → one write per read. Each
    /// `await writer.write` is the backpressure: while the client is slow, nothing is read upstream.
    ///
    /// `onEnd` runs exactly once, however the stream ends (completed, upstream error, client gone),
    /// after the last chunk is written and before the response ends: the usage ledger's row is
    /// durable before the client sees the end of the body.
    static func stream(
        upstream body: some AsyncSequence<ByteBuffer, any Error>,
        options: ChatChunkTranslator.Options,
        deadline: ContinuousClock.Instant,
        writer: inout any ResponseBodyWriter,
        logger: Logger,
        observer: StreamObserver? = nil,
        onEnd: @Sendable (StreamOutcome) async -> Void = { _ in }
    ) async throws {
        var decoder = EventStreamDecoder()
        var translator = ChatChunkTranslator(options: options)
        var out = ByteBuffer()
        var firstByte: ContinuousClock.Instant?
        var disconnected = false
        do {
            for try await read in body {
                let arrived = ContinuousClock.now
                try decoder.feed(read)
                while let message = try decoder.next() {
                    translator.translate(message, into: &out)
                }
                if arrived > deadline, translator.ending == nil {
                    translator.fail(code: "request_timeout", message: "the request exceeded the gateway's time limit", into: &out)
                }
                if out.readableBytes > 0 {
                    let handed = ContinuousClock.now
                    if firstByte == nil { firstByte = handed }
                    observer?.chunkProcessed(handed - arrived)
                    try await Self.write(&out, to: &writer)
                }
                if translator.ending != nil { break }
            }
            if translator.ending == nil {
                try decoder.finish()
                translator.finish(into: &out)
            }
        } catch is ClientDisconnected {
            logger.debug("client disconnected mid-stream")
            disconnected = true
        } catch let error as EventStreamError {
            logger.info("corrupt upstream stream", metadata: ["decoder.error": "\(error.code)"])
            observer?.metrics.decoderError("\(error.code)")
            translator.fail(code: "upstream_corrupt_stream", message: "upstream sent a corrupt event stream (\(error.code))", into: &out)
        } catch is CancellationError {
            disconnected = true
        } catch {
            if observer?.lifecycle.isDrainExpired == true {
                translator.fail(code: "server_shutting_down", message: "the gateway is shutting down; this stream was cut at the end of its drain time", into: &out)
            } else {
                let failure = UpstreamResponse.describe(error, duringBody: true)
                logger.info("upstream stream failed", metadata: ["upstream.error": "\(failure.code)"])
                translator.fail(code: failure.code, message: failure.message, into: &out)
            }
        }
        if !disconnected, out.readableBytes > 0 {
            if firstByte == nil { firstByte = .now }
            do {
                try await Self.write(&out, to: &writer)
            } catch {
                disconnected = true
            }
        }
        let finishReason: String?
        if disconnected {
            finishReason = "client_disconnected"
        } else if case .failed(let code) = translator.ending {
            finishReason = code
            if code != "server_shutting_down" { observer?.metrics.upstreamError(code) }
        } else {
            finishReason = translator.finishReason.map { String(describing: $0.openAIValue) }
        }
        await onEnd(
            StreamOutcome(
                usage: translator.usage, isUsageComplete: translator.usage != nil, producedBytes: translator.producedBytes, finishReason: finishReason,
                firstByte: firstByte
            )
        )
        if disconnected { throw CancellationError() }
        try await writer.finish(nil)
    }

    private static func write(_ out: inout ByteBuffer, to writer: inout any ResponseBodyWriter) async throws {
        let chunk = out
        // A fresh buffer per write: the connection usually still holds the last one when `write`
        // returns (it is queued for the event loop), so clearing it would allocate anyway, and an idle
        // stream then holds no buffer at all.
        out = ByteBuffer()
        do {
            try await writer.write(chunk)
        } catch {
            throw ClientDisconnected()
        }
    }

    private func completion(
        _ response: HTTPClientResponse, id: String, created: Int, converse: ConverseRequest, account: RequestAccount
    ) async -> Response {
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        } catch {
            let failure = UpstreamResponse.describe(error)
            await account.finish(status: 502, finishReason: failure.code, usage: nil)
            return GatewayError(status: .badGateway, type: "api_error", code: failure.code, message: failure.message, bedrockType: "InternalServerException")
                .openAIResponse()
        }
        do {
            let completion = try ChatResponseMapper.makeChatCompletion(converseResponse: body, id: id, created: created, for: converse)
            let usage = completion.usage
            await account.finish(
                status: 200, finishReason: String(describing: completion.finishReason.openAIValue),
                usage: TokenUsage(
                    inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, cacheReadInputTokens: usage.cacheReadInputTokens,
                    cacheWriteInputTokens: usage.cacheWriteInputTokens
                )
            )
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: completion.body))
        } catch {
            await account.finish(status: 502, finishReason: "upstream_malformed_response", usage: nil)
            return GatewayError(status: .badGateway, type: "api_error", code: "upstream_malformed_response", message: "upstream sent a malformed response", bedrockType: "InternalServerException")
                .openAIResponse()
        }
    }

    /// 24 random characters from a URL-safe alphabet.
    static func randomID() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<24).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
    }
}

/// How a stream ended, for the usage ledger and the limits.
struct StreamOutcome: Sendable {
    /// What the upstream reported; `nil` when the stream ended before its usage event.
    var usage: TokenUsage?
    /// Whether `usage` is the stream's final count (it may be partial: input only, from `message_start`).
    var isUsageComplete: Bool
    /// Bytes of generated content the client received, for an estimate when the usage is not complete.
    var producedBytes: Int
    /// The finish reason, an error code, or `client_disconnected`.
    var finishReason: String?
    /// When the first bytes were written to the client.
    var firstByte: ContinuousClock.Instant?
}
