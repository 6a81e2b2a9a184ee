internal import NIOCore
internal import StreamCore

/// Which request dialect a body is in.
enum RequestDialect {
    /// Converse / ConverseStream JSON.
    case converse
    /// Anthropic Messages JSON (InvokeModel with an Anthropic model).
    case anthropic
}

/// What the simulator reads from a request body.
struct RequestFacts {
    var toolNames: [String] = []
    var lastMessageHasToolResult = false
    var lastUserText: String?
    var stopSequence: String?
    /// The request turns extended thinking on (`thinking.type` `enabled` or `adaptive`).
    var requestsThinking = false
    /// `anthropic_beta` (Anthropic) or `additionalModelRequestFields.anthropic_beta` (Converse).
    var betas: [String] = []
    var inputTokens = 1
    /// FNV-1a of the body bytes: makes every generated detail deterministic per request.
    var seed: UInt64 = 0xcbf2_9ce4_8422_2325

    init() {}

    /// Reads `body` (already validated as a JSON object) in `dialect`.
    init(body: ByteBuffer, json: ParsedJSON, dialect: RequestDialect) {
        self.inputTokens = max(1, body.readableBytes / 4)
        self.seed = body.withUnsafeReadableBytes { bytes in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            }
            return hash
        }
        let messages = json["messages"]?.arrayValue ?? []
        switch dialect {
        case .converse:
            let additional = json["additionalModelRequestFields"]
            self.requestsThinking = Self.enablesThinking(additional?["thinking"])
            self.betas = additional?["anthropic_beta"]?.arrayValue?.compactMap(\.stringValue) ?? []
            self.toolNames = (json["toolConfig"]?["tools"]?.arrayValue ?? []).compactMap { $0["toolSpec"]?["name"]?.stringValue }
            self.stopSequence = json["inferenceConfig"]?["stopSequences"]?.arrayValue?.first?.stringValue
            if let content = messages.last?["content"]?.arrayValue {
                self.lastMessageHasToolResult = content.contains { $0["toolResult"] != nil }
            }
            let lastUser = messages.last { $0["role"]?.stringValue == "user" }
            self.lastUserText = lastUser?["content"]?.arrayValue?.compactMap { $0["text"]?.stringValue }.last
        case .anthropic:
            self.requestsThinking = Self.enablesThinking(json["thinking"])
            self.betas = json["anthropic_beta"]?.arrayValue?.compactMap(\.stringValue) ?? []
            self.toolNames = (json["tools"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
            self.stopSequence = json["stop_sequences"]?.arrayValue?.first?.stringValue
            if let content = messages.last?["content"]?.arrayValue {
                self.lastMessageHasToolResult = content.contains { $0["type"]?.stringValue == "tool_result" }
            }
            let lastUser = messages.last { $0["role"]?.stringValue == "user" }
            if let text = lastUser?["content"]?.stringValue {
                self.lastUserText = text
            } else {
                self.lastUserText = lastUser?["content"]?.arrayValue?
                    .filter { $0["type"]?.stringValue == "text" }
                    .compactMap { $0["text"]?.stringValue }.last
            }
        }
    }
}

extension RequestFacts {
    private static func enablesThinking(_ thinking: ParsedJSON?) -> Bool {
        switch thinking?["type"]?.stringValue {
        case "enabled", "adaptive": true
        default: false
        }
    }
}

/// The content of one answer, fixed before the first byte so the streaming and non-streaming routes
/// agree, and generated piece by piece so a million-delta stream holds no more than one piece.
struct ResponsePlan: Sendable {
    struct ToolCall: Sendable {
        /// Random-looking, deterministic: prefixed `tooluse_` (Converse) or `toolu_bdrk_01` (Anthropic).
        var idSuffix: String
        var name: String
        /// Compact JSON object text.
        var input: String
        /// `input` cut into the pieces that are streamed.
        var pieces: [String]
    }

    static let reasoningPieces = [
        "The user wants a \"simulated\" answer; ",
        "I will think in three steps \\ plan, draft, check —\n",
        "then reply. ✓",
    ]

    /// Printable text with everything a JSON writer must escape or pass through: quotes, backslashes,
    /// a tab, newlines, and 2-, 3- and 4-byte UTF-8.
    static let corpus: [Character] = Array(
        "The \"sluice\" gate opens — water flows past C:\\gates\\main; naïve café ✓ 日本語 🚀 {json: [1, 2]} <tag> & 'single'\tquotes.\nNext line: back\\slash, \"quoted\", ünïcödé, ∑ ≠ ∞.\n"
    )

    static let defaultToolInput = #"{"location":"Zürich, \"CH\"","unit":"celsius","days":3}"#
    static let defaultToolName = "get_weather"
    static let toolInputPieceCount = 4

    var reasoning: Bool
    var signature: String
    /// Number of text deltas.
    var textDeltaCount: Int
    var chunkSize: Int
    var corpusOffset: Int
    /// For `echo=1`: the text to repeat.
    var echoText: [Character]?
    var toolCalls: [ToolCall]
    var stopReason: String
    var stopSequence: String?
    var stamps: Bool
    var inputTokens: Int
    var cacheReadInputTokens: Int?
    var cacheWriteInputTokens: Int?
    var seed: UInt64

    init(scenario: Scenario, facts: RequestFacts) {
        self.seed = facts.seed
        self.reasoning = scenario.reasoning || (scenario.reasoningFollowsThinking && facts.requestsThinking)
        self.signature = Self.token(seed: facts.seed ^ 0x5167, length: 88)
        self.chunkSize = scenario.chunkSize
        self.corpusOffset = Int(facts.seed % UInt64(Self.corpus.count))
        if scenario.echo {
            let echo = Array(Scenario.removingDirectives(from: facts.lastUserText ?? ""))
            self.echoText = echo
            self.textDeltaCount = (echo.count + scenario.chunkSize - 1) / scenario.chunkSize
        } else {
            self.echoText = nil
            self.textDeltaCount = scenario.chunks
        }
        let toolCount = facts.lastMessageHasToolResult ? 0 : scenario.tools
        let input = scenario.toolInput ?? Self.defaultToolInput
        self.toolCalls = (0..<toolCount).map { index in
            let name = facts.toolNames.isEmpty ? Self.defaultToolName : facts.toolNames[index % facts.toolNames.count]
            return ToolCall(
                idSuffix: Self.token(seed: facts.seed &+ UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15, length: 22),
                name: name,
                input: input,
                pieces: Self.split(input, into: Self.toolInputPieceCount)
            )
        }
        self.stopReason = scenario.stop ?? (toolCount > 0 ? "tool_use" : "end_turn")
        self.stopSequence = self.stopReason == "stop_sequence" ? (facts.stopSequence ?? "STOP") : nil
        self.stamps = scenario.stamps
        self.inputTokens = facts.inputTokens
        self.cacheReadInputTokens = scenario.cacheReadInputTokens
        self.cacheWriteInputTokens = scenario.cacheWriteInputTokens
    }

    /// Deltas that carry content: what `outputTokens` reports.
    var outputTokens: Int {
        (self.reasoning ? Self.reasoningPieces.count : 0) + self.textDeltaCount
            + self.toolCalls.reduce(0) { $0 + $1.pieces.count }
    }

    var totalTokens: Int {
        self.inputTokens + self.outputTokens + (self.cacheReadInputTokens ?? 0) + (self.cacheWriteInputTokens ?? 0)
    }

    var hasText: Bool { self.textDeltaCount > 0 }

    /// Content block indices: reasoning, then text, then one per tool call.
    var textBlockIndex: Int { self.reasoning ? 1 : 0 }

    func toolBlockIndex(_ tool: Int) -> Int {
        (self.reasoning ? 1 : 0) + (self.hasText ? 1 : 0) + tool
    }

    /// Text delta `index` (without a stamp).
    func textPiece(_ index: Int) -> String {
        if let echoText {
            let start = index * self.chunkSize
            return String(echoText[start..<min(start + self.chunkSize, echoText.count)])
        }
        var piece = ""
        let corpus = Self.corpus
        var position = (self.corpusOffset + index * self.chunkSize) % corpus.count
        for _ in 0..<self.chunkSize {
            piece.append(corpus[position])
            position += 1
            if position == corpus.count { position = 0 }
        }
        return piece
    }

    /// The corpus as escaped JSON string contents, twice over, with the byte offset of every
    /// character: a text delta is then one copy of a byte range, not a `String` built and escaped per
    /// delta (the load generator asks for hundreds of thousands of them).
    private static let escapedCorpus: (bytes: [UInt8], offsets: [Int]) = {
        var buffer = ByteBuffer()
        var offsets: [Int] = []
        for _ in 0..<2 {
            for character in Self.corpus {
                offsets.append(buffer.readableBytes)
                buffer.writeJSONStringContents(String(character))
            }
        }
        offsets.append(buffer.readableBytes)
        return (Array(buffer.readableBytesView), offsets)
    }()

    /// Writes text delta `index` as escaped JSON string contents (no quotes, no stamp).
    func writeEscapedTextPiece(_ index: Int, into buffer: inout ByteBuffer) {
        guard self.echoText == nil else {
            buffer.writeJSONStringContents(self.textPiece(index))
            return
        }
        let (bytes, offsets) = Self.escapedCorpus
        let count = Self.corpus.count
        var position = (self.corpusOffset + index * self.chunkSize) % count
        var remaining = self.chunkSize
        while remaining > 0 {
            // At most one corpus length per copy; the doubled corpus makes any start position work.
            let take = min(remaining, count)
            buffer.writeBytes(bytes[offsets[position]..<offsets[position + take]])
            position = (position + take) % count
            remaining -= take
        }
    }

    /// All text of the answer, for the non-streaming routes.
    var fullText: String {
        var text = self.stamps ? Self.stamp() : ""
        for index in 0..<self.textDeltaCount {
            text += self.textPiece(index)
        }
        return text
    }

    /// `⟦t=<CLOCK_MONOTONIC ns>⟧`, read now.
    static func stamp() -> String {
        "⟦t=\(MonotonicClock.nanoseconds())⟧"
    }

    /// `text` cut into `count` pieces of whole characters (fewer when it is shorter).
    static func split(_ text: String, into count: Int) -> [String] {
        let characters = Array(text)
        guard !characters.isEmpty else { return [""] }
        let size = (characters.count + count - 1) / count
        return stride(from: 0, to: characters.count, by: size).map { start in
            String(characters[start..<min(start + size, characters.count)])
        }
    }

    private static let tokenAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

    /// A deterministic alphanumeric token (ids, signatures) from `seed`.
    static func token(seed: UInt64, length: Int) -> String {
        var state = seed | 1
        var token = ""
        for _ in 0..<length {
            // xorshift64: cheap and good enough for ids that only need to look random.
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            token.append(Self.tokenAlphabet[Int(state % UInt64(Self.tokenAlphabet.count))])
        }
        return token
    }
}
