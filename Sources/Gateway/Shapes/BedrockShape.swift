import Foundation
package import HTTPTypes
import Hummingbird
package import NIOCore
package import NIOHTTP1
import StreamCore

/// `POST /bedrock/model/{id}/{invoke,invoke-with-response-stream,converse,converse-stream,count-tokens}`:
/// Bedrock Runtime's own API, passed through for Claude Code, boto3 and the Anthropic SDK's Bedrock
/// client. Request bodies go upstream byte for byte; streamed answers are decoded and CRC-checked on
/// the way and forwarded as the original bytes (``PassthroughProcessor``).
package struct BedrockShape: APIShape {
    package struct Mapped: Sendable {
        /// The client's body, for the one retry without refused betas.
        var clientBody: ByteBuffer
    }

    package init() {}

    package var errors: ErrorShape { .bedrock }

    package func route(for head: HTTPRequest) -> String {
        if case .model(_, let operation) = BedrockTarget(path: head.path ?? "") { return "/bedrock/model/\(operation.name)" }
        return "/bedrock/model"
    }

    package func map(
        _ body: ByteBuffer, head: HTTPRequest, caller: Caller, settings: GatewaySettings
    ) throws(GatewayError) -> MappedRequest<Mapped> {
        guard case .model(let modelID, let operation) = BedrockTarget(path: head.path ?? "") else {
            throw GatewayError.notFound("no Bedrock operation at \(head.path ?? "/")")
        }
        let summary = BedrockRequestSummary(body: body)
        var request = MappedRequest(
            requestedModel: modelID, resolvedModel: settings.catalog.resolve(modelID), operation: operation, modelID: modelID, body: body,
            declared: DeclaredRequest(messageCount: summary.messageCount, bodyBytes: body.readableBytes, maxTokens: summary.maxTokens),
            mapped: Mapped(clientBody: body)
        )
        // The body stays byte for byte, except an `anthropic_beta` value the model does not take.
        if operation == .invoke || operation == .invokeWithResponseStream,
            case .repaired(let repaired, let filtered) = settings.betaPolicy.repairInvokeBody(body, modelID: request.resolvedModel)
        {
            request.body = repaired
            request.droppedBetas = filtered.dropped
        }
        request.countsAgainstLimits = operation != .countTokens
        // Cost allocation: Bedrock attributes the call to these tags in its own usage reports.
        request.headers = Self.forwardedHeaders(head.headerFields)
        request.headers.append((
            HTTPField.Name.bedrockRequestMetadata.canonicalName,
            RequestMetadata.json(for: caller, merging: head.headerFields[.bedrockRequestMetadata])
        ))
        return request
    }

    /// Bedrock refused a beta value (`400 invalid beta flag`) although the table took it for good:
    /// remembered for the model, and the request goes once more without it (Claude Code in Bedrock
    /// mode would retry by itself, at the cost of a round trip on every call).
    package func retry(_ request: MappedRequest<Mapped>, after error: GatewayError, settings: GatewaySettings) -> Retry<Mapped>? {
        guard BetaRepair.isInvalidBetaFlag(error), request.operation == .invoke || request.operation == .invokeWithResponseStream else { return nil }
        let sent = request.body.withUnsafeReadableBytes { try? JSONParser.parse($0, maximumNestingDepth: 256) }?.objectValue
        let betas = sent?.present("anthropic_beta")?.arrayValue?.compactMap(\.stringValue) ?? []
        guard !betas.isEmpty else { return nil }
        let remembered = settings.betaPolicy.refusals.remember(model: request.resolvedModel, refused: betas)
        guard case .repaired(let repaired, _) = settings.betaPolicy.repairInvokeBody(request.mapped.clientBody, modelID: request.resolvedModel)
        else { return nil }
        var retried = request
        retried.body = repaired
        return Retry(request: retried, droppedBetas: remembered)
    }

    /// Client headers that mean something to Bedrock and carry no client credential. The client's
    /// own request metadata is left out here: the gateway merges it with the caller's identity.
    static func forwardedHeaders(_ fields: HTTPFields) -> [(String, String)] {
        fields.compactMap { field in
            let name = field.name.canonicalName
            guard name.hasPrefix("x-amzn-bedrock-"), name != HTTPField.Name.bedrockRequestMetadata.canonicalName else { return nil }
            return (name, field.value)
        }
    }

    package func streamHead(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders) -> HTTPFields {
        var headers: HTTPFields = [.contentType: "application/vnd.amazon.eventstream"]
        headers[.bedrockContentType] = "application/json"
        if let requestID = upstreamHeaders.first(name: "x-amzn-requestid") {
            headers[.amazonRequestID] = requestID
        }
        return headers
    }

    package func makeProcessor(_ request: MappedRequest<Mapped>) -> PassthroughProcessor {
        PassthroughProcessor(operation: request.operation)
    }

    /// The client's body was kept for the one retry before the answer: a stream needs none of it.
    package func keptWhileStreaming(_ mapped: Mapped) -> Mapped {
        Mapped(clientBody: ByteBuffer())
    }

    /// The upstream's answer as it came, and the usage it reports: Bedrock's token-count headers
    /// (InvokeModel), else the body's `usage` object (Converse).
    package func complete(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders, body: ByteBuffer) -> Result<Completion, GatewayError> {
        var headers: HTTPFields = [.contentType: upstreamHeaders.first(name: "content-type") ?? "application/json"]
        for (name, value) in upstreamHeaders where name.lowercased().hasPrefix("x-amzn-") {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        let summary = BedrockResponseSummary(headers: upstreamHeaders, body: body)
        return .success(
            Completion(
                response: Response(status: .ok, headers: headers, body: .init(byteBuffer: body)), usage: summary.usage,
                finishReason: summary.stopReason
            )
        )
    }
}

/// What a `/bedrock` path asks for.
package enum BedrockTarget: Equatable, Sendable {
    case model(id: String, operation: BedrockOperation)
    case listInferenceProfiles
    case inferenceProfile(id: String)

    /// Parses the path after the route prefix. Claude Code sends `//` after the prefix when its base
    /// URL ends in `/`, and the model id as one segment with raw `:`, `%3A` or `%2F` (CLAUDE_CODE.md
    /// §2.3, §7). On the path's bytes: every `/bedrock` request parses it twice (its route label, its
    /// mapping), and `String`'s character-wise search cost more than the rest of the mapping.
    package init?(path: String) {
        var path = path
        guard let target = path.withUTF8({ Self.parse($0[...]) }) else { return nil }
        self = target
    }

    private static func parse(_ path: Slice<UnsafeBufferPointer<UInt8>>) -> BedrockTarget? {
        guard let prefixEnd = endOfFirst("/bedrock", in: path) else { return nil }
        var rest = path[prefixEnd...]
        if let query = rest.firstIndex(of: UInt8(ascii: "?")) { rest = rest[..<query] }
        while rest.first == UInt8(ascii: "/") { rest = rest.dropFirst() }
        /// `rest` after `prefix`, or `nil` when it does not start with it.
        func after(_ prefix: String) -> Slice<UnsafeBufferPointer<UInt8>>? {
            rest.starts(with: prefix.utf8) ? rest.dropFirst(prefix.utf8.count) : nil
        }
        if let tail = after("model/") {
            guard let slash = tail.lastIndex(of: UInt8(ascii: "/")),
                let operation = BedrockOperation(rawValue: String(decoding: tail[(slash + 1)...], as: UTF8.self)),
                let id = percentDecodePathSegment(tail[..<slash]), !id.isEmpty
            else { return nil }
            return .model(id: id, operation: operation)
        }
        if let tail = after("inference-profiles"), tail.isEmpty || tail.elementsEqual("/".utf8) {
            return .listInferenceProfiles
        }
        if let tail = after("inference-profiles/") {
            guard let id = percentDecodePathSegment(tail), !id.isEmpty else { return nil }
            return .inferenceProfile(id: id)
        }
        return nil
    }
}

/// The index just past the first occurrence of `needle` in `bytes`. A plain loop: the standard
/// library's `firstRange(of:)` on these slices runs unspecialized through `_StringProcessing`'s
/// Z-algorithm (arrays and type metadata built per call): ~6 % of a `/bedrock` request's task in a profile.
private func endOfFirst(_ needle: StaticString, in bytes: Slice<UnsafeBufferPointer<UInt8>>) -> Int? {
    needle.withUTF8Buffer { needle -> Int? in
        guard let first = needle.first, bytes.count >= needle.count else { return nil }
        var start = bytes.startIndex
        let last = bytes.endIndex - needle.count
        while start <= last {
            if bytes[start] == first, bytes[start..<(start + needle.count)].elementsEqual(needle) { return start + needle.count }
            start += 1
        }
        return nil
    }
}

/// Usage and stop reason of a whole InvokeModel or Converse answer: Bedrock's token-count headers
/// (InvokeModel), else the body's `usage` object (Converse) or Anthropic's (InvokeModel bodies).
struct BedrockResponseSummary {
    var usage: TokenUsage?
    var stopReason: String?

    init(headers: HTTPHeaders, body: ByteBuffer) {
        func count(_ name: String) -> Int? { headers.first(name: name).flatMap { Int($0) } }
        let object = body.withUnsafeReadableBytes { try? JSONParser.parse($0, maximumNestingDepth: 256) }?.objectValue
        self.stopReason = (object?.present("stopReason") ?? object?.present("stop_reason"))?.stringValue
        if let input = count("x-amzn-bedrock-input-token-count"), let output = count("x-amzn-bedrock-output-token-count") {
            self.usage = TokenUsage(
                inputTokens: input, outputTokens: output, cacheReadInputTokens: count("x-amzn-bedrock-cache-read-input-token-count") ?? 0,
                cacheWriteInputTokens: count("x-amzn-bedrock-cache-write-input-token-count") ?? 0
            )
            return
        }
        guard let usage = object?.present("usage")?.objectValue else { return }
        func value(_ keys: String...) -> Int {
            for key in keys { if let number = usage.present(key)?.intValue { return number } }
            return 0
        }
        self.usage = TokenUsage(
            inputTokens: value("inputTokens", "input_tokens"), outputTokens: value("outputTokens", "output_tokens"),
            cacheReadInputTokens: value("cacheReadInputTokens", "cache_read_input_tokens"),
            cacheWriteInputTokens: value("cacheWriteInputTokens", "cache_creation_input_tokens")
        )
    }
}
