/// Token counts a Bedrock stream reported, as the gateway meters them.
public struct TokenUsage: Hashable, Sendable {
    /// Input tokens not read from or written to the prompt cache (Bedrock's `inputTokens`).
    public var inputTokens: Int
    public var outputTokens: Int
    /// Input tokens read from the prompt cache.
    public var cacheReadInputTokens: Int
    /// Input tokens written to the prompt cache.
    public var cacheWriteInputTokens: Int

    public init(inputTokens: Int = 0, outputTokens: Int = 0, cacheReadInputTokens: Int = 0, cacheWriteInputTokens: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheReadInputTokens = cacheReadInputTokens
        self.cacheWriteInputTokens = cacheWriteInputTokens
    }

    /// Every input token, cached or not: OpenAI's `prompt_tokens`. Bedrock's `inputTokens` counts only
    /// the uncached ones, so cache reads and writes are added back (BEDROCK_API.md §2).
    public var promptTokens: Int { self.inputTokens + self.cacheReadInputTokens + self.cacheWriteInputTokens }

    /// OpenAI's `completion_tokens`.
    public var completionTokens: Int { self.outputTokens }

    public var totalTokens: Int { self.promptTokens + self.outputTokens }
}

extension TokenUsage {
    /// Reads Bedrock's `TokenUsage` object (`inputTokens`, `outputTokens`, `cacheReadInputTokens`,
    /// `cacheWriteInputTokens`; `totalTokens` and unknown members skipped) at the scanner's position.
    init(converseUsage scanner: inout JSONScanner) throws(JSONScanner.Failure) {
        var usage = TokenUsage()
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            if scanner.bytes(in: key, equal: "inputTokens") {
                usage.inputTokens = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "outputTokens") {
                usage.outputTokens = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "cacheReadInputTokens") {
                usage.cacheReadInputTokens = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "cacheWriteInputTokens") {
                usage.cacheWriteInputTokens = try scanner.readInteger()
            } else {
                try scanner.skipValue()
            }
        }
        self = usage
    }
}
