package import NIOCore

/// Turns an Anthropic Messages request (`POST /v1/messages`) into a Bedrock InvokeModel request.
///
/// Bedrock's InvokeModel body for Claude *is* the Messages body, with three differences: no `model`
/// (it is in the path), no `stream` (it is the operation), and `anthropic_version:
/// "bedrock-2023-05-31"` plus the betas as an `anthropic_beta` array instead of headers. So the
/// mapper checks the few fields it must read, then splices every other member exactly as the client
/// wrote it (system, tools, tool_choice, thinking, cache_control, metadata, images, documents,
/// sampling, unknown future fields): no re-serialization, so key order, number spelling and escapes
/// stay byte-identical and prompt caching sees the same prefix the client sent.
///
/// ```swift
/// let mapper = AnthropicRequestMapper(configuration: .init(betas: policy))
/// let request = try mapper.map(body, betaHeaders: request.headers[values: "anthropic-beta"], region: "eu-west-1")
/// // POST /model/\(escaped request.modelID)/invoke-with-response-stream (or /invoke) with request.body
/// ```
///
/// Betas: the `anthropic-beta` header values (comma-separated, trimmed) and any `anthropic_beta`
/// array in the body are merged (header first, duplicates removed), `context-1m-2025-08-07` is added
/// for a `[1m]` model name whose model takes it, then ``AnthropicBetaPolicy`` filters them for the
/// target model and the fields of dropped betas are removed.
package struct AnthropicRequestMapper: Sendable {
    /// Mapper settings, fixed at startup.
    ///
    /// ## Configuration keys
    /// - `modelAliases` (`[String: String]`, default empty): `models.aliases`, client name → Bedrock
    ///   id; wins over the built-in ``AnthropicModelTable``.
    /// - `betas` (``AnthropicBetaPolicy``, default: filter with the built-in table): `models.betas`
    ///   and `SLUICE_BETAS=passthrough`.
    /// - `maximumNestingDepth` (`Int`, default 64, at most 64): deepest JSON nesting accepted.
    /// - `maximumMessages` (`Int`, default 10,000): most entries accepted in `messages`.
    package struct Configuration: Sendable {
        package var modelAliases: [String: String]
        package var betas: AnthropicBetaPolicy
        /// Real bodies nest a dozen levels (tool schemas); the bound keeps a hostile body from
        /// exhausting the stack of the recursive parser. The splice walks members with
        /// `JSONScanner`, which follows 64 levels below a member, so larger values are clamped.
        package var maximumNestingDepth: Int
        /// The longest agent sessions hold a few thousand turns; far beyond that is a hostile or
        /// broken client, refused before the call.
        package var maximumMessages: Int

        package init(
            modelAliases: [String: String] = [:],
            betas: AnthropicBetaPolicy = AnthropicBetaPolicy(),
            maximumNestingDepth: Int = 64,
            maximumMessages: Int = 10_000
        ) {
            self.modelAliases = modelAliases
            self.betas = betas
            self.maximumNestingDepth = maximumNestingDepth
            self.maximumMessages = maximumMessages
        }
    }

    /// The only value Bedrock takes for `anthropic_version`.
    package static let bedrockAnthropicVersion: StaticString = "bedrock-2023-05-31"

    package var configuration: Configuration

    package init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Splits `anthropic-beta` header values on commas and trims them (`a, b` and two headers `a`,
    /// `b` are the same); empty items are dropped.
    package static func betaValues(fromHeaders headers: some Sequence<String>) -> [String] {
        headers.flatMap { $0.split(separator: ",") }
            .map { $0.trimmingASCIIWhitespace() }
            .filter { !$0.isEmpty }
    }

    /// Maps one request body.
    ///
    /// - Parameters:
    ///   - body: the complete `/v1/messages` JSON (collected with a size bound by the caller).
    ///   - betaHeaders: the `anthropic-beta` header values as received (split here).
    ///   - region: the upstream's AWS region, for the cross-region profile prefix.
    ///   - allocator: allocates the Bedrock body.
    /// - Throws: ``AnthropicRequestError`` (HTTP 400, `invalid_request_error`).
    package func map(
        _ body: ByteBuffer,
        betaHeaders: [String] = [],
        region: String?,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(AnthropicRequestError) -> AnthropicInvokeRequest {
        let depth = min(max(self.configuration.maximumNestingDepth, 1), JSONScanner.maximumSkipDepth)
        let result = body.withUnsafeReadableBytes { bytes in
            Result { () throws(AnthropicRequestError) -> AnthropicInvokeRequest in
                try self.map(bytes, betaHeaders: betaHeaders, region: region, maximumNestingDepth: depth, allocator: allocator)
            }
        }
        return try result.get()
    }

    private func map(
        _ bytes: UnsafeRawBufferPointer,
        betaHeaders: [String],
        region: String?,
        maximumNestingDepth: Int,
        allocator: ByteBufferAllocator
    ) throws(AnthropicRequestError) -> AnthropicInvokeRequest {
        let parsed: ParsedJSON
        do throws(JSONParseError) {
            parsed = try JSONParser.parse(bytes, maximumNestingDepth: maximumNestingDepth)
        } catch {
            if error.reason.hasPrefix("nesting deeper") {
                throw AnthropicRequestError(
                    code: .nestingTooDeep, param: nil,
                    message: "The request body nests deeper than \(maximumNestingDepth) levels (at byte \(error.offset))."
                )
            }
            throw AnthropicRequestError(
                code: .invalidJSON, param: nil,
                message: "The request body is not valid JSON: \(error.reason) at byte \(error.offset)."
            )
        }
        guard let root = parsed.objectValue else {
            throw AnthropicRequestError(code: .invalidJSON, param: nil, message: "The request body must be a JSON object.")
        }

        guard let modelValue = root.present("model") else { throw .missing("model") }
        guard let model = modelValue.stringValue, !model.isEmpty else { throw .invalid("model", "Input should be a non-empty string") }
        guard let messagesValue = root.present("messages") else { throw .missing("messages") }
        guard let messages = messagesValue.arrayValue else { throw .invalid("messages", "Input should be a valid list") }
        guard !messages.isEmpty else { throw .invalid("messages", "List should have at least 1 item") }
        guard messages.count <= self.configuration.maximumMessages else {
            throw AnthropicRequestError(
                code: .tooManyMessages, param: "messages",
                message: "messages: \(messages.count) messages is more than this gateway accepts (\(self.configuration.maximumMessages))"
            )
        }
        guard let maxTokensValue = root.present("max_tokens") else { throw .missing("max_tokens") }
        guard let maxTokens = maxTokensValue.intValue, maxTokens > 0 else {
            throw .invalid("max_tokens", "Input should be a positive integer")
        }
        var isStreaming = false
        if let streamValue = root.present("stream") {
            guard let flag = streamValue.boolValue else { throw .invalid("stream", "Input should be a valid boolean") }
            isStreaming = flag
        }
        var userID: String?
        if let metadataValue = root.present("metadata") {
            guard let metadata = metadataValue.objectValue else { throw .invalid("metadata", "Input should be a valid dictionary") }
            if let userValue = metadata.present("user_id") {
                guard let value = userValue.stringValue else { throw .invalid("metadata.user_id", "Input should be a valid string") }
                userID = value
            }
        }
        var bodyBetas: [String] = []
        if let betaValue = root.present("anthropic_beta") {
            guard let array = betaValue.arrayValue else { throw .invalid("anthropic_beta", "Input should be a valid list") }
            for (index, element) in array.enumerated() {
                guard let value = element.stringValue else { throw .invalid("anthropic_beta.\(index)", "Input should be a valid string") }
                bodyBetas.append(value)
            }
        }

        let resolution = AnthropicModelResolution(name: model, aliases: self.configuration.modelAliases, region: region)
        var requested = Self.betaValues(fromHeaders: betaHeaders) + bodyBetas
        if resolution.requestsLongContext, resolution.entry?.supportsLongContext == true {
            requested.append(AnthropicModelTable.longContextBeta)
        }
        let filtered = self.configuration.betas.filter(requested, modelID: resolution.modelID)

        let layout: JSONMemberLayout
        do throws(JSONScanner.Failure) {
            layout = try JSONMemberLayout(objectIn: bytes, range: 0..<bytes.count)
        } catch {
            // The parser accepted the document, so only the scanner's depth bound can fail here.
            throw AnthropicRequestError(
                code: .nestingTooDeep, param: nil, message: "The request body nests deeper than \(maximumNestingDepth) levels."
            )
        }
        let fields = BetaFields(dropped: filtered.dropped, kept: filtered.kept)
        var out = allocator.buffer(capacity: bytes.count + 128)
        out.writeStaticString("{")
        var first = true
        for member in layout.members {
            let key = member.key
            if JSONMemberLayout.key(key, in: bytes, equals: "model") || JSONMemberLayout.key(key, in: bytes, equals: "stream")
                || JSONMemberLayout.key(key, in: bytes, equals: "anthropic_version")
                || JSONMemberLayout.key(key, in: bytes, equals: "anthropic_beta")
            {
                continue
            }
            fields.write(member, from: bytes, separator: &first, into: &out)
        }
        if !filtered.kept.isEmpty {
            AnthropicBetaPolicy.separate(&first, &out)
            out.writeStaticString("\"anthropic_beta\":")
            AnthropicBetaPolicy.writeStringArray(filtered.kept, into: &out)
        }
        AnthropicBetaPolicy.separate(&first, &out)
        out.writeStaticString("\"anthropic_version\":\"")
        out.writeStaticString(Self.bedrockAnthropicVersion)
        out.writeStaticString("\"}")

        return AnthropicInvokeRequest(
            requestedModel: model,
            modelID: resolution.modelID,
            model: resolution,
            isStreaming: isStreaming,
            messageCount: messages.count,
            maxTokens: maxTokens,
            metadataUserID: userID,
            betas: filtered.kept,
            droppedBetas: filtered.dropped,
            body: out
        )
    }
}

/// An Anthropic Messages request translated for Bedrock InvokeModel.
///
/// Made by ``AnthropicRequestMapper/map(_:betaHeaders:region:allocator:)``. Send ``body`` to
/// `POST /model/{modelID}/invoke-with-response-stream` when ``isStreaming`` (else `/invoke`),
/// path-escaping ``modelID`` (it may be an ARN with `:` and `/`).
package struct AnthropicInvokeRequest: Sendable {
    /// The `model` the client wrote (`[1m]` included); responses and audit lines use it.
    package var requestedModel: String
    /// The Bedrock model id, inference-profile id or ARN to call.
    package var modelID: String
    /// How the name resolved (table entry, `[1m]`, configured alias).
    package var model: AnthropicModelResolution
    /// `stream: true`.
    package var isStreaming: Bool
    /// Entries in `messages` (for the audit line and the limits' reservation).
    package var messageCount: Int
    /// `max_tokens` as the client asked.
    package var maxTokens: Int
    /// `metadata.user_id` as written (Claude Code puts a JSON string with `session_id` there): for
    /// routing affinity; it is also forwarded to Bedrock inside `metadata`, untouched.
    package var metadataUserID: String?
    /// The `anthropic_beta` values sent to Bedrock.
    package var betas: [String]
    /// The values removed by the beta policy (log them, count `sluice_betas_dropped_total{beta}`).
    package var droppedBetas: [String]
    /// The InvokeModel JSON body.
    package var body: ByteBuffer
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    fileprivate func trimmingASCIIWhitespace() -> String {
        var slice = self
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
