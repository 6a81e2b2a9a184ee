/// One Converse content block, held between reading the OpenAI messages and writing the body,
/// because merging same-role turns and ordering tool results needs the whole conversation first.
enum ConverseBlock: Sendable, Equatable {
    case text(String)
    /// `format` is Bedrock's (`png`, `jpeg`, `gif`, `webp`); `base64` is canonical standard base64.
    case image(format: StaticString, base64: String)
    case toolUse(id: String, name: String, input: ParsedJSON)
    /// `content` holds only `.text` and `.image` blocks.
    case toolResult(id: String, content: [ConverseBlock])
    case reasoning(text: String, signature: String)
    /// Anthropic's encrypted `redacted_thinking.data`, forwarded unchanged.
    case redactedReasoning(String)
    case cachePoint

    static func == (lhs: ConverseBlock, rhs: ConverseBlock) -> Bool {
        switch (lhs, rhs) {
        case (.text(let a), .text(let b)): a == b
        case (.image(let f1, let b1), .image(let f2, let b2)): f1.description == f2.description && b1 == b2
        case (.toolUse(let i1, let n1, let v1), .toolUse(let i2, let n2, let v2)): i1 == i2 && n1 == n2 && v1 == v2
        case (.toolResult(let i1, let c1), .toolResult(let i2, let c2)): i1 == i2 && c1 == c2
        case (.reasoning(let t1, let s1), .reasoning(let t2, let s2)): t1 == t2 && s1 == s2
        case (.redactedReasoning(let a), .redactedReasoning(let b)): a == b
        case (.cachePoint, .cachePoint): true
        default: false
        }
    }

    var isToolResult: Bool {
        if case .toolResult = self { return true }
        return false
    }

    var isToolUse: Bool {
        if case .toolUse = self { return true }
        return false
    }

    /// A `reasoningContent` block, signed or redacted.
    var isReasoning: Bool {
        switch self {
        case .reasoning, .redactedReasoning: true
        default: false
        }
    }

    var isCachePoint: Bool {
        if case .cachePoint = self { return true }
        return false
    }

    /// Writes the block as a Converse `ContentBlock` JSON object.
    func write(to output: inout JSONOutput) {
        switch self {
        case .text(let text):
            output.raw("{\"text\":")
            output.string(text)
            output.raw("}")
        case .image(let format, let base64):
            output.raw("{\"image\":{\"format\":\"")
            output.raw(format)
            output.raw("\",\"source\":{\"bytes\":")
            output.string(base64)
            output.raw("}}}")
        case .toolUse(let id, let name, let input):
            output.raw("{\"toolUse\":{\"toolUseId\":")
            output.string(id)
            output.raw(",\"name\":")
            output.string(name)
            output.raw(",\"input\":")
            output.value(input)
            output.raw("}}")
        case .toolResult(let id, let content):
            output.raw("{\"toolResult\":{\"toolUseId\":")
            output.string(id)
            output.raw(",\"content\":[")
            for (index, block) in content.enumerated() {
                if index > 0 { output.raw(",") }
                block.write(to: &output)
            }
            output.raw("]}}")
        case .reasoning(let text, let signature):
            output.raw("{\"reasoningContent\":{\"reasoningText\":{\"text\":")
            output.string(text)
            output.raw(",\"signature\":")
            output.string(signature)
            output.raw("}}}")
        case .redactedReasoning(let data):
            output.raw("{\"reasoningContent\":{\"redactedContent\":")
            output.string(data)
            output.raw("}}")
        case .cachePoint:
            output.raw("{\"cachePoint\":{\"type\":\"default\"}}")
        }
    }
}

/// One Converse message: a run of same-role OpenAI messages merged into one turn.
struct ConverseTurn: Sendable, Equatable {
    var isUser: Bool
    var blocks: [ConverseBlock]
}
