import Foundation
package import HTTPTypes
import Hummingbird
package import NIOCore
package import NIOHTTP1
package import StreamCore

/// `POST /v1/responses`: the OpenAI Responses API (Codex CLI with `wire_api = "responses"`, newer
/// `openai` SDK code) → Bedrock Converse / ConverseStream → Responses events.
package struct ResponsesShape: APIShape {
    package static let route = "/v1/responses"

    package struct Mapped: Sendable {
        var request: ResponsesRequest
        var id: String
        var createdAt: Int
        /// Whose response it is and how long it is kept, when the store keeps it.
        var keep: (identity: String, retentionDays: Int)?
    }

    let seal: ReasoningSeal
    /// Kept responses, for `previous_response_id` (used when `responses.store` is on).
    let memory: ResponseMemory

    package init(seal: ReasoningSeal, memory: ResponseMemory) {
        self.seal = seal
        self.memory = memory
    }

    package var errors: ErrorShape { .openAI }

    package func route(for head: HTTPRequest) -> String { Self.route }

    package func map(
        _ body: ByteBuffer, head: HTTPRequest, caller: Caller, settings: GatewaySettings
    ) throws(GatewayError) -> MappedRequest<Mapped> {
        // Without a store the mapper refuses `previous_response_id`, naming it.
        try Self.mapped(
            Self.translate { () throws(OpenAIRequestError) in try settings.responsesMapper.map(body) }, body: body, caller: caller, settings: settings
        )
    }

    /// With a store: a request that continues a kept response is mapped again with that response's
    /// conversation before its own input.
    package func resolve(
        _ request: MappedRequest<Mapped>, body: ByteBuffer, caller: Caller, settings: GatewaySettings
    ) async throws(GatewayError) -> MappedRequest<Mapped> {
        guard let previous = request.mapped.request.previousResponseID else { return request }
        let history: ByteBuffer?
        do {
            history = try await self.memory.load(id: previous, identity: caller.identity)
        } catch {
            throw GatewayError(.upstreamUnavailable, "the response store cannot be read now; try again")
        }
        guard let history else {
            // Another identity's response, an expired one, or none: the same answer, so ids cannot be probed.
            throw GatewayError(.notFound, "Previous response with id '\(previous)' not found.", param: "previous_response_id")
        }
        return try Self.mapped(
            Self.translate { () throws(OpenAIRequestError) in try settings.responsesMapper.map(body, history: history) },
            body: body, caller: caller, settings: settings
        )
    }

    private static func translate(_ map: () throws(OpenAIRequestError) -> ResponsesRequest) throws(GatewayError) -> ResponsesRequest {
        do {
            return try map()
        } catch {
            throw GatewayError.badRequest(error.message, param: error.param, clientCode: error.code.description)
        }
    }

    private static func mapped(_ request: ResponsesRequest, body: ByteBuffer, caller: Caller, settings: GatewaySettings) -> MappedRequest<Mapped> {
        var upstreamBody = request.body
        RequestMetadata.add(for: caller, to: &upstreamBody)
        var mapped = MappedRequest(
            requestedModel: request.requestedModel, resolvedModel: request.modelID,
            operation: request.isStreaming ? .converseStream : .converse, modelID: request.modelID, body: upstreamBody,
            declared: DeclaredRequest(messageCount: request.messageCount, bodyBytes: body.readableBytes, maxTokens: request.maxTokens),
            mapped: Mapped(
                request: request, id: "resp_" + randomID(), createdAt: Int(Date().timeIntervalSince1970),
                keep: request.conversationItems == nil ? nil : (caller.identity, settings.responsesRetentionDays)
            )
        )
        mapped.affinity = request.promptCacheKey ?? request.user
        return mapped
    }

    package func streamHead(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders) -> HTTPFields {
        HTTPFields.eventStream
    }

    package func makeProcessor(_ request: MappedRequest<Mapped>) -> TranslatingProcessor<ResponsesStreamTranslator> {
        let mapped = request.mapped
        // Before the first byte names the id: a continuation of it waits until it is kept.
        if mapped.request.conversationItems != nil { self.memory.begin(id: mapped.id) }
        let options = ResponsesStreamTranslator.Options(
            id: mapped.id, createdAt: mapped.createdAt, request: mapped.request, sealer: mapped.request.includesEncryptedReasoning ? self.seal : nil
        )
        return TranslatingProcessor(ResponsesStreamTranslator(options: options))
    }

    /// The Converse body was the call's; the conversation's items stay (the response is kept with
    /// them once the stream ended).
    package func keptWhileStreaming(_ mapped: Mapped) -> Mapped {
        var kept = mapped
        kept.request.converse.body = ByteBuffer()
        return kept
    }

    package func complete(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders, body: ByteBuffer) -> Result<Completion, GatewayError> {
        do {
            let response = try ResponsesResponseMapper.makeResponse(
                converseResponse: body, id: request.mapped.id, createdAt: request.mapped.createdAt, for: request.mapped.request, sealer: self.seal
            )
            var completion = Completion(
                response: Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: response.body)),
                usage: response.usage, finishReason: String(describing: response.finishReason.openAIValue)
            )
            if let conversation = request.mapped.request.conversationItems, let keep = request.mapped.keep {
                let items = Self.conversation(conversation, then: response.outputItems)
                let memory = self.memory
                let id = request.mapped.id
                completion.beforeAnswering = {
                    // A response the store could not keep is still answered; continuing it will say not found.
                    try? await memory.save(id: id, identity: keep.identity, items: items, retentionDays: keep.retentionDays)
                }
            }
            return .success(completion)
        } catch {
            return .failure(GatewayError(.upstreamMalformedResponse, "upstream sent a malformed response"))
        }
    }
}

extension ResponsesShape {
    /// A kept response is saved once its stream completed; a failed or cut one is not kept.
    package func streamEnded(_ processor: TranslatingProcessor<ResponsesStreamTranslator>, request: MappedRequest<Mapped>, outcome: StreamOutcome) async {
        guard let conversation = request.mapped.request.conversationItems, let keep = request.mapped.keep else { return }
        let translator = processor.translator
        guard !outcome.disconnected, case .completed? = translator.ending else {
            self.memory.abandon(id: request.mapped.id)
            return
        }
        let items = Self.conversation(conversation, then: translator.completedItems)
        try? await self.memory.save(id: request.mapped.id, identity: keep.identity, items: items, retentionDays: keep.retentionDays)
    }

    /// The conversation items (a JSON array) followed by the output items (comma-separated): one array.
    static func conversation(_ items: ByteBuffer, then output: ByteBuffer) -> ByteBuffer {
        var all = items
        guard output.readableBytes > 0, all.readableBytes >= 2 else { return all }
        all.moveWriterIndex(to: all.writerIndex - 1)  // drop `]`
        if all.readableBytes > 1 { all.writeStaticString(",") }
        all.writeImmutableBuffer(output)
        all.writeStaticString("]")
        return all
    }
}

extension ResponsesStreamTranslator: FrameTranslator {
    package var failureCode: String? {
        if case .failed(let code) = self.ending { return code }
        return nil
    }
    package var isEnded: Bool { self.ending != nil }
    package var isUsageComplete: Bool { self.usage != nil }
    package var finishReasonLabel: String? { self.finishReason.map { String(describing: $0.openAIValue) } }
}
