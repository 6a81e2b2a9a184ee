import AsyncHTTPClient
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
    }

    let seal: ReasoningSeal

    package init(seal: ReasoningSeal) {
        self.seal = seal
    }

    package var errors: ErrorShape { .openAI }

    package func route(for head: HTTPRequest) -> String { Self.route }

    package func map(
        _ body: ByteBuffer, head: HTTPRequest, caller: Caller, settings: GatewaySettings
    ) throws(GatewayError) -> MappedRequest<Mapped> {
        let request: ResponsesRequest
        do {
            request = try settings.responsesMapper.map(body)
        } catch {
            throw GatewayError.badRequest(error.message, param: error.param, clientCode: error.code.description)
        }
        if request.previousResponseID != nil {
            // Sluice keeps no responses (stateless, `store` is not on): say so, naming the field.
            throw GatewayError.badRequest(
                "previous_response_id is not supported: this gateway keeps no responses; send the conversation in `input` "
                    + "(with reasoning items' encrypted_content, `include: [\"reasoning.encrypted_content\"]`)",
                param: "previous_response_id", clientCode: "unsupported_parameter"
            )
        }
        var upstreamBody = request.body
        RequestMetadata.add(for: caller, to: &upstreamBody)
        return MappedRequest(
            requestedModel: request.requestedModel, resolvedModel: request.modelID,
            operation: request.isStreaming ? .converseStream : .converse, modelID: request.modelID, body: upstreamBody,
            declared: DeclaredRequest(messageCount: request.messageCount, bodyBytes: body.readableBytes, maxTokens: request.maxTokens),
            mapped: Mapped(request: request, id: "resp_" + randomID(), createdAt: Int(Date().timeIntervalSince1970))
        )
    }

    package func streamHead(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders) -> HTTPFields {
        HTTPFields.eventStream
    }

    package func makeProcessor(_ request: MappedRequest<Mapped>) -> TranslatingProcessor<ResponsesStreamTranslator> {
        let mapped = request.mapped
        let options = ResponsesStreamTranslator.Options(
            id: mapped.id, createdAt: mapped.createdAt, request: mapped.request, sealer: mapped.request.includesEncryptedReasoning ? self.seal : nil
        )
        return TranslatingProcessor(ResponsesStreamTranslator(options: options))
    }

    package func complete(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders, body: ByteBuffer) -> Result<Completion, GatewayError> {
        do {
            let response = try ResponsesResponseMapper.makeResponse(
                converseResponse: body, id: request.mapped.id, createdAt: request.mapped.createdAt, for: request.mapped.request, sealer: self.seal
            )
            return .success(
                Completion(
                    response: Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: response.body)),
                    usage: response.usage, finishReason: String(describing: response.finishReason.openAIValue)
                )
            )
        } catch {
            return .failure(GatewayError(.upstreamMalformedResponse, "upstream sent a malformed response"))
        }
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
