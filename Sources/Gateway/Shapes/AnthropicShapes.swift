import Foundation
package import HTTPTypes
import Hummingbird
package import NIOCore
package import NIOHTTP1
package import StreamCore

/// `POST /v1/messages`: the Anthropic Messages API (Claude Code's gateway mode, the Anthropic SDKs)
/// → Bedrock InvokeModel / InvokeModelWithResponseStream. The body goes upstream as the client wrote
/// it but for `model` and `stream` (gone), `anthropic_version` (added) and `anthropic_beta` (the
/// header's values the target model takes: ``AnthropicBetaPolicy``); the answer's events are
/// Anthropic's own, decoded from Bedrock's `chunk` frames and written as SSE.
package struct AnthropicMessagesShape: APIShape {
    package static let route = "/v1/messages"

    package struct Mapped: Sendable {
        var invoke: AnthropicInvokeRequest
        /// The client's body, for the one retry without refused betas.
        var clientBody: ByteBuffer
        var betaHeaders: [String]
    }

    /// The upstream's region, for the cross-region profile prefix of model names.
    let region: String

    package init(region: String) {
        self.region = region
    }

    package var errors: ErrorShape { .anthropic }

    package func route(for head: HTTPRequest) -> String { Self.route }

    package func map(
        _ body: ByteBuffer, head: HTTPRequest, caller: Caller, settings: GatewaySettings
    ) throws(GatewayError) -> MappedRequest<Mapped> {
        let betaHeaders = head.headerFields[values: .anthropicBeta]
        let invoke = try Self.invoke(body, betaHeaders: betaHeaders, region: self.region, settings: settings)
        var request = MappedRequest(
            requestedModel: invoke.requestedModel, resolvedModel: invoke.modelID,
            operation: invoke.isStreaming ? .invokeWithResponseStream : .invoke, modelID: invoke.modelID, body: invoke.body,
            declared: DeclaredRequest(messageCount: invoke.messageCount, bodyBytes: body.readableBytes, maxTokens: invoke.maxTokens),
            mapped: Mapped(invoke: invoke, clientBody: body, betaHeaders: betaHeaders)
        )
        request.headers = [(HTTPField.Name.bedrockRequestMetadata.canonicalName, RequestMetadata.json(for: caller))]
        request.droppedBetas = invoke.droppedBetas
        request.affinity = invoke.metadataUserID
        return request
    }

    static func invoke(_ body: ByteBuffer, betaHeaders: [String], region: String, settings: GatewaySettings) throws(GatewayError) -> AnthropicInvokeRequest {
        do {
            return try settings.anthropicMapper.map(body, betaHeaders: betaHeaders, region: region)
        } catch {
            throw GatewayError.badRequest(error.message, param: error.param, clientCode: error.code.description)
        }
    }

    /// Bedrock refused a beta value the table took for good (`400 invalid beta flag`): the model's
    /// answer is remembered for the process and the request goes once more without what it refused.
    package func retry(_ request: MappedRequest<Mapped>, after error: GatewayError, settings: GatewaySettings) -> Retry<Mapped>? {
        guard BetaRepair.isInvalidBetaFlag(error), !request.mapped.invoke.betas.isEmpty else { return nil }
        let remembered = settings.betaPolicy.refusals.remember(model: request.modelID, refused: request.mapped.invoke.betas)
        guard let invoke = try? Self.invoke(request.mapped.clientBody, betaHeaders: request.mapped.betaHeaders, region: self.region, settings: settings)
        else { return nil }
        var retried = request
        retried.body = invoke.body
        retried.mapped.invoke = invoke
        return Retry(request: retried, droppedBetas: remembered)
    }

    package func streamHead(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders) -> HTTPFields {
        HTTPFields.eventStream
    }

    package func makeProcessor(_ request: MappedRequest<Mapped>) -> TranslatingProcessor<AnthropicStreamTranslator> {
        TranslatingProcessor(AnthropicStreamTranslator())
    }

    /// The client's body (for the one retry) and the Invoke body were the call's: a stream needs
    /// neither.
    package func keptWhileStreaming(_ mapped: Mapped) -> Mapped {
        var kept = mapped
        kept.clientBody = ByteBuffer()
        kept.invoke.body = ByteBuffer()
        return kept
    }

    /// InvokeModel's answer for an Anthropic model is a Messages response already.
    package func complete(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders, body: ByteBuffer) -> Result<Completion, GatewayError> {
        let summary = BedrockResponseSummary(headers: upstreamHeaders, body: body)
        return .success(
            Completion(
                response: Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body)),
                usage: summary.usage, finishReason: summary.stopReason
            )
        )
    }
}

extension AnthropicStreamTranslator: FrameTranslator {
    package var failureCode: String? {
        if case .failed(let code) = self.ending { return code }
        return nil
    }
    package var isEnded: Bool { self.ending != nil }
    package var isUsageComplete: Bool { self.ending == .completed && self.usage != nil }
    package var finishReasonLabel: String? { self.finishReason }
}

/// `POST /v1/messages/count_tokens` → Bedrock CountTokens for the model. The answer is Bedrock's
/// count; when Bedrock cannot count, the error goes to the client (Claude Code then estimates
/// locally, which is right: a made-up 0 would silently turn its auto-compaction off).
package struct AnthropicCountTokensShape: APIShape {
    package static let route = "/v1/messages/count_tokens"

    package struct Mapped: Sendable {}

    let region: String

    package init(region: String) {
        self.region = region
    }

    package var errors: ErrorShape { .anthropic }

    package func route(for head: HTTPRequest) -> String { Self.route }

    package func map(
        _ body: ByteBuffer, head: HTTPRequest, caller: Caller, settings: GatewaySettings
    ) throws(GatewayError) -> MappedRequest<Mapped> {
        // A count_tokens body has no `max_tokens`, which an InvokeModel body needs: one is added for
        // the mapping (it changes no token of the input).
        let withMaximum = JSONObjectEdit.addingMember(#""max_tokens":1"#, ifAbsent: "max_tokens", to: body)
        let invoke = try AnthropicMessagesShape.invoke(
            withMaximum, betaHeaders: head.headerFields[values: .anthropicBeta], region: self.region, settings: settings
        )
        var upstream = ByteBuffer()
        upstream.writeStaticString("{\"input\":{\"invokeModel\":{\"body\":\"")
        upstream.writeString(Data(invoke.body.readableBytesView).base64EncodedString())
        upstream.writeStaticString("\"}}}")
        var request = MappedRequest(
            requestedModel: invoke.requestedModel, resolvedModel: invoke.modelID, operation: .countTokens, modelID: invoke.modelID, body: upstream,
            declared: DeclaredRequest(messageCount: invoke.messageCount, bodyBytes: body.readableBytes), mapped: Mapped()
        )
        request.countsAgainstLimits = false
        request.affinity = invoke.metadataUserID
        return request
    }

    package func streamHead(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders) -> HTTPFields { [:] }

    package func makeProcessor(_ request: MappedRequest<Mapped>) -> PassthroughProcessor {
        PassthroughProcessor(operation: request.operation)
    }

    /// Bedrock's `{"inputTokens":N}` as Anthropic's `{"input_tokens":N}`.
    package func complete(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders, body: ByteBuffer) -> Result<Completion, GatewayError> {
        let parsed = body.withUnsafeReadableBytes { try? JSONParser.parse($0, maximumNestingDepth: 8) }
        guard let count = parsed?.objectValue?.present("inputTokens")?.intValue, count >= 0 else {
            return .failure(GatewayError(.upstreamMalformedResponse, "upstream sent a malformed CountTokens answer"))
        }
        var out = ByteBuffer()
        out.writeStaticString("{\"input_tokens\":")
        out.writeString(String(count))
        out.writeStaticString("}")
        return .success(
            Completion(response: Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: out)), usage: nil, finishReason: nil)
        )
    }
}

/// The beta-flag repair shared by `/v1/messages` and the `/bedrock` invoke routes.
enum BetaRepair {
    /// Bedrock's answer to an `anthropic_beta` value the model does not take.
    static func isInvalidBetaFlag(_ error: GatewayError) -> Bool {
        error.upstream?.status == 400 && error.message.lowercased().contains("invalid beta flag")
    }
}

/// Small edits of a JSON object body a mapper has not parsed.
enum JSONObjectEdit {
    /// `body` with `member` (`"key":value`) added before its closing brace, unless the object already
    /// has a member named `key` at its top level (or is not an object: then unchanged).
    static func addingMember(_ member: String, ifAbsent key: String, to body: ByteBuffer) -> ByteBuffer {
        let parsed = body.withUnsafeReadableBytes { try? JSONParser.parse($0, maximumNestingDepth: 256) }
        guard let object = parsed?.objectValue, object.present(key) == nil else { return body }
        var view = body.readableBytesView
        while let last = view.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") || last == UInt8(ascii: "\t") {
            view = view.dropLast()
        }
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + member.utf8.count + 1)
        out.writeBytes(view.dropLast())
        if !object.members.isEmpty { out.writeStaticString(",") }
        out.writeString(member)
        out.writeStaticString("}")
        return out
    }
}
