import Foundation
package import HTTPTypes
import Hummingbird
package import NIOCore
package import NIOHTTP1
package import StreamCore

/// `POST /v1/chat/completions`: OpenAI chat in, Bedrock Converse / ConverseStream upstream, OpenAI
/// chunks out.
package struct OpenAIChatShape: APIShape {
    package static let route = "/v1/chat/completions"

    package struct Mapped: Sendable {
        var converse: ConverseRequest
        var id: String
        var created: Int
    }

    package init() {}

    package var errors: ErrorShape { .openAI }

    package func route(for head: HTTPRequest) -> String { Self.route }

    package func map(
        _ body: ByteBuffer, head: HTTPRequest, caller: Caller, settings: GatewaySettings
    ) throws(GatewayError) -> MappedRequest<Mapped> {
        let converse: ConverseRequest
        do {
            converse = try settings.mapper.map(body)
        } catch {
            throw GatewayError.badRequest(error.message, param: error.param, clientCode: error.code.description)
        }
        // Cost allocation: the caller's identity and group go upstream as Converse request metadata.
        var upstreamBody = converse.body
        RequestMetadata.add(for: caller, to: &upstreamBody)
        var request = MappedRequest(
            requestedModel: converse.requestedModel, resolvedModel: converse.modelID,
            operation: converse.isStreaming ? .converseStream : .converse, modelID: converse.modelID, body: upstreamBody,
            declared: DeclaredRequest(messageCount: converse.messageCount, bodyBytes: body.readableBytes, maxTokens: converse.maxTokens),
            mapped: Mapped(converse: converse, id: "chatcmpl-" + randomID(), created: Int(Date().timeIntervalSince1970))
        )
        request.affinity = converse.promptCacheKey ?? converse.user
        return request
    }

    package func streamHead(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders) -> HTTPFields {
        HTTPFields.eventStream
    }

    package func makeProcessor(_ request: MappedRequest<Mapped>) -> TranslatingProcessor<ChatChunkTranslator> {
        let converse = request.mapped.converse
        let options = ChatChunkTranslator.Options(
            id: request.mapped.id, created: request.mapped.created, model: converse.requestedModel, includeUsage: converse.includesUsage,
            responseFormatToolName: converse.usesResponseFormatTool ? String(describing: ChatRequestMapper.responseFormatToolName) : nil
        )
        return TranslatingProcessor(ChatChunkTranslator(options: options))
    }

    /// The Converse body was the call's: the stream's translator reads only the request's options.
    package func keptWhileStreaming(_ mapped: Mapped) -> Mapped {
        var kept = mapped
        kept.converse.body = ByteBuffer()
        return kept
    }

    package func complete(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders, body: ByteBuffer) -> Result<Completion, GatewayError> {
        do {
            let completion = try ChatResponseMapper.makeChatCompletion(
                converseResponse: body, id: request.mapped.id, created: request.mapped.created, for: request.mapped.converse
            )
            let usage = completion.usage
            return .success(
                Completion(
                    response: Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: completion.body)),
                    usage: TokenUsage(
                        inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, cacheReadInputTokens: usage.cacheReadInputTokens,
                        cacheWriteInputTokens: usage.cacheWriteInputTokens
                    ),
                    finishReason: String(describing: completion.finishReason.openAIValue)
                )
            )
        } catch {
            return .failure(GatewayError(.upstreamMalformedResponse, "upstream sent a malformed response"))
        }
    }
}

extension HTTPFields {
    /// The head of a server-sent-event stream; `X-Accel-Buffering: no` keeps nginx in front from
    /// holding chunks back.
    static let eventStream: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .accelBuffering: "no"]
}

/// 24 random characters from a URL-safe alphabet, for response ids.
///
/// Five characters come from each 64-bit draw (the five lowest base-62 digits of a uniform 64-bit
/// number: their bias is below 62⁵/2⁶⁴ ≈ 5·10⁻¹¹), so an id takes five draws, not 24.
package func randomID() -> String {
    let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    var generator = IdentifierRandom()
    return alphabet.withUTF8Buffer { alphabet in
        String(unsafeUninitializedCapacity: 24) { bytes in
            var count = 0
            while count < 24 {
                var word = generator.next()
                for _ in 0..<5 where count < 24 {
                    bytes[count] = alphabet[Int(word % UInt64(alphabet.count))]
                    word /= UInt64(alphabet.count)
                    count += 1
                }
            }
            return count
        }
    }
}
