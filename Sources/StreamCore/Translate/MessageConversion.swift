/// OpenAI `messages` → Converse `system` + alternating `messages`.
///
/// Rules (BEDROCK_API.md §2 "Request constraints", plus the decisions noted inline):
/// - `system`/`developer` messages, wherever they appear, become top-level `system` blocks in order.
/// - `tool` messages become `toolResult` blocks in a user turn.
/// - Consecutive same-role turns merge; within a user turn the `toolResult` blocks move to the front
///   (Anthropic rejects text before the results that answer the previous turn's tool calls).
/// - Blank text is dropped (Bedrock rejects blank text blocks); a message left with no blocks adds
///   no turn.
/// - The conversation must start with a user turn: if it does not (or has no turns at all), a user
///   turn with the text "." goes first, as LiteLLM does.
/// - A final assistant turn (prefill) loses trailing whitespace, which Anthropic rejects.
struct MessageConversion {
    /// Text a synthetic user turn carries; Bedrock refuses empty and blank text.
    static let placeholderUserText = "."
    /// What a tool result with no content says; an empty text block would be refused.
    static let emptyToolResultText = "(empty)"

    private(set) var system: [ConverseBlock] = []
    private(set) var turns: [ConverseTurn] = []
    /// Tool names used by `toolUse` blocks in the history, first use first.
    private(set) var historyToolNames: [String] = []
    private var seenHistoryToolNames: Set<String> = []
    /// History holds `toolUse` or `toolResult` blocks, so Bedrock needs a `toolConfig`.
    private(set) var hasToolBlocks = false
    /// Cache points written so far (client `cache_control` markers).
    private(set) var cachePointCount = 0

    init(messages: [ParsedJSON]) throws(OpenAIRequestError) {
        for (index, message) in messages.enumerated() {
            try convert(message, at: index)
        }
        normalizeTurns()
    }

    /// An empty conversation for another API's input (the Responses API's `input` items): its
    /// converter appends blocks with ``appendSystem(_:)``, ``append(_:isUser:)`` and the
    /// `note…` methods, then calls ``normalizeTurns()``, so both APIs merge and normalize alike.
    init() {}

    /// Appends top-level `system` blocks, in order.
    mutating func appendSystem(_ blocks: [ConverseBlock]) {
        system.append(contentsOf: blocks)
    }

    /// Records a `toolUse` block appended by another converter: Bedrock then needs a `toolConfig`
    /// naming `name`.
    mutating func noteToolUse(name: String) {
        hasToolBlocks = true
        if seenHistoryToolNames.insert(name).inserted { historyToolNames.append(name) }
    }

    /// Records a `toolResult` block appended by another converter.
    mutating func noteToolResult() {
        hasToolBlocks = true
    }

    private mutating func convert(_ message: ParsedJSON, at index: Int) throws(OpenAIRequestError) {
        guard let object = message.objectValue else { throw .type("messages[\(index)]", expected: "an object") }
        guard let roleValue = object.present("role") else { throw .missing("messages[\(index)].role") }
        guard let role = roleValue.stringValue else { throw .type("messages[\(index)].role", expected: "a string") }
        var blocks: [ConverseBlock] = []
        let isUser: Bool
        switch role {
        case "system", "developer":
            try appendContent(object, messageIndex: index, kind: .system, to: &blocks)
            appendCachePointIfMarked(object, to: &blocks)
            system.append(contentsOf: blocks)
            return
        case "user":
            isUser = true
            try appendContent(object, messageIndex: index, kind: .user, to: &blocks)
        case "assistant":
            isUser = false
            try appendThinkingBlocks(object, messageIndex: index, to: &blocks)
            try appendContent(object, messageIndex: index, kind: .assistant, to: &blocks)
            try appendToolCalls(object, messageIndex: index, to: &blocks)
        case "tool":
            isUser = true
            try appendToolResult(object, messageIndex: index, to: &blocks)
        case "function":
            throw .unsupported(
                "messages[\(index)].role",
                "the deprecated 'function' role is not supported; send tool results with role 'tool'."
            )
        default:
            throw .value(
                "messages[\(index)].role",
                "the role must be one of 'system', 'developer', 'user', 'assistant' or 'tool'."
            )
        }
        appendCachePointIfMarked(object, to: &blocks)
        append(blocks, isUser: isUser)
    }

    /// Appends a turn's blocks, merging them into the previous turn when it has the same role.
    mutating func append(_ blocks: [ConverseBlock], isUser: Bool) {
        guard !blocks.isEmpty else { return }
        if let last = turns.indices.last, turns[last].isUser == isUser {
            turns[last].blocks.append(contentsOf: blocks)
        } else {
            turns.append(ConverseTurn(isUser: isUser, blocks: blocks))
        }
    }

    // MARK: Content

    enum ContentKind {
        case system, user, assistant, tool

        var roleName: String {
            switch self {
            case .system: "system"
            case .user: "user"
            case .assistant: "assistant"
            case .tool: "tool"
            }
        }
    }

    /// Appends the blocks for `content` (a string, an array of parts, or null/absent).
    private mutating func appendContent(
        _ message: JSONObject,
        messageIndex: Int,
        kind: ContentKind,
        to blocks: inout [ConverseBlock]
    ) throws(OpenAIRequestError) {
        guard let content = message.present("content") else {
            // Assistant turns with only tool calls carry null content; any other role needs content.
            if kind == .assistant || kind == .tool { return }
            throw .missing("messages[\(messageIndex)].content")
        }
        switch content {
        case .string(let text):
            if !Self.isBlank(text) { blocks.append(.text(text)) }
        case .array(let parts):
            for (partIndex, part) in parts.enumerated() {
                try appendPart(part, path: "messages[\(messageIndex)].content[\(partIndex)]", kind: kind, to: &blocks)
            }
        default:
            throw .type("messages[\(messageIndex)].content", expected: "a string or an array of content parts")
        }
    }

    private mutating func appendPart(
        _ part: ParsedJSON,
        path: @autoclosure () -> String,
        kind: ContentKind,
        to blocks: inout [ConverseBlock]
    ) throws(OpenAIRequestError) {
        guard let object = part.objectValue else { throw .type(path(), expected: "a content part object") }
        guard let typeValue = object.present("type") else { throw .missing("\(path()).type") }
        guard let type = typeValue.stringValue else { throw .type("\(path()).type", expected: "a string") }
        let countBefore = blocks.count
        switch (type, kind) {
        case ("text", _):
            guard let textValue = object.present("text") else { throw .missing("\(path()).text") }
            guard let text = textValue.stringValue else { throw .type("\(path()).text", expected: "a string") }
            if !Self.isBlank(text) { blocks.append(.text(text)) }
        case ("refusal", .assistant):
            guard let text = object.present("refusal")?.stringValue else {
                throw .type("\(path()).refusal", expected: "a string")
            }
            if !Self.isBlank(text) { blocks.append(.text(text)) }
        case ("image_url", .user), ("image_url", .tool):
            blocks.append(try Self.imageBlock(object, path: "\(path()).image_url"))
        case ("thinking", .assistant), ("redacted_thinking", .assistant):
            // Anthropic-style clients put thinking blocks in the content array instead of `thinking_blocks`.
            if let block = try Self.reasoningBlock(object, path: path()) { blocks.append(block) }
        default:
            throw .unsupported(
                "\(path()).type",
                "content parts of type '\(type)' are not supported in \(kind.roleName) messages."
            )
        }
        if blocks.count > countBefore { appendCachePointIfMarked(object, to: &blocks) }
    }

    private static func imageBlock(_ part: JSONObject, path: @autoclosure () -> String) throws(OpenAIRequestError) -> ConverseBlock {
        let url: String
        switch part.present("image_url") {
        case .string(let direct)?:
            url = direct  // some clients send the URL string itself
        case .object(let object)?:
            guard let value = object.present("url")?.stringValue else { throw .missing("\(path()).url") }
            url = value
        case nil:
            throw .missing(path())
        default:
            throw .type(path(), expected: "an object with a 'url'")
        }
        do throws(ImageDataURL.Failure) {
            let image = try ImageDataURL(url: url)
            return .image(format: image.format, base64: image.base64)
        } catch {
            if case .notDataURL = error { throw .unsupported(path(), error.reason) }
            throw .value(path(), error.reason)
        }
    }

    // MARK: Assistant

    /// Replays `thinking_blocks` (LiteLLM/Envoy shape) as `reasoningContent` before the text.
    private mutating func appendThinkingBlocks(
        _ message: JSONObject,
        messageIndex: Int,
        to blocks: inout [ConverseBlock]
    ) throws(OpenAIRequestError) {
        guard let value = message.present("thinking_blocks") else { return }
        guard let array = value.arrayValue else {
            throw .type("messages[\(messageIndex)].thinking_blocks", expected: "an array")
        }
        for (blockIndex, element) in array.enumerated() {
            let path = "messages[\(messageIndex)].thinking_blocks[\(blockIndex)]"
            guard let object = element.objectValue else { throw .type(path, expected: "an object") }
            // A cache_control marker here is ignored: Anthropic refuses cache markers on thinking.
            if let block = try Self.reasoningBlock(object, path: path) { blocks.append(block) }
        }
    }

    /// A `thinking` or `redacted_thinking` block; nil for thinking without a signature, which
    /// Bedrock cannot verify and refuses ("thinking.signature: Field required"), so it is dropped.
    private static func reasoningBlock(_ object: JSONObject, path: @autoclosure () -> String) throws(OpenAIRequestError) -> ConverseBlock? {
        switch object.present("type")?.stringValue {
        case "thinking":
            guard let text = object.present("thinking")?.stringValue else {
                throw .type("\(path()).thinking", expected: "a string")
            }
            guard let signature = object.present("signature")?.stringValue, !signature.isEmpty else { return nil }
            return .reasoning(text: text, signature: signature)
        case "redacted_thinking":
            guard let data = object.present("data")?.stringValue else {
                throw .type("\(path()).data", expected: "a string")
            }
            return .redactedReasoning(data)
        default:
            throw .value("\(path()).type", "the type must be 'thinking' or 'redacted_thinking'.")
        }
    }

    private mutating func appendToolCalls(
        _ message: JSONObject,
        messageIndex: Int,
        to blocks: inout [ConverseBlock]
    ) throws(OpenAIRequestError) {
        guard let value = message.present("tool_calls") else { return }
        guard let calls = value.arrayValue else {
            throw .type("messages[\(messageIndex)].tool_calls", expected: "an array")
        }
        for (callIndex, call) in calls.enumerated() {
            let path = "messages[\(messageIndex)].tool_calls[\(callIndex)]"
            guard let object = call.objectValue else { throw .type(path, expected: "an object") }
            if let type = object.present("type"), type.stringValue != "function" {
                throw .unsupported("\(path).type", "only tool calls of type 'function' are supported.")
            }
            guard let idValue = object.present("id") else { throw .missing("\(path).id") }
            guard let id = idValue.stringValue, !id.isEmpty else { throw .type("\(path).id", expected: "a non-empty string") }
            guard let function = object.present("function")?.objectValue else { throw .missing("\(path).function") }
            guard let name = function.present("name")?.stringValue, !name.isEmpty else {
                throw .missing("\(path).function.name")
            }
            let input: ParsedJSON
            switch function.present("arguments") {
            case nil:
                input = .object(JSONObject())
            case .string(let arguments)?:
                if Self.isBlank(arguments) {
                    input = .object(JSONObject())  // tools without parameters often get ""
                } else {
                    do throws(JSONParseError) {
                        input = try JSONParser.parse(arguments, maximumNestingDepth: ChatRequestMapper.maximumArgumentsNestingDepth)
                    } catch {
                        throw .value("\(path).function.arguments", "the arguments are not valid JSON (\(error.reason)).")
                    }
                }
            case .object(let object)?:
                input = .object(object)  // lenient: a few clients send the object itself
            default:
                throw .type("\(path).function.arguments", expected: "a JSON string")
            }
            blocks.append(.toolUse(id: ToolUseID.sanitize(id), name: name, input: input))
            hasToolBlocks = true
            if seenHistoryToolNames.insert(name).inserted { historyToolNames.append(name) }
        }
    }

    // MARK: Tool results

    private mutating func appendToolResult(
        _ message: JSONObject,
        messageIndex: Int,
        to blocks: inout [ConverseBlock]
    ) throws(OpenAIRequestError) {
        guard let idValue = message.present("tool_call_id") else { throw .missing("messages[\(messageIndex)].tool_call_id") }
        guard let id = idValue.stringValue, !id.isEmpty else {
            throw .type("messages[\(messageIndex)].tool_call_id", expected: "a non-empty string")
        }
        var content: [ConverseBlock] = []
        try appendContent(message, messageIndex: messageIndex, kind: .tool, to: &content)
        // Cache markers inside a tool result cannot be expressed (toolResult content has no
        // cachePoint); the message-level marker after the whole result still applies.
        let countWithMarkers = content.count
        content.removeAll { $0.isCachePoint }
        cachePointCount -= countWithMarkers - content.count
        if content.isEmpty { content = [.text(Self.emptyToolResultText)] }
        blocks.append(.toolResult(id: ToolUseID.sanitize(id), content: content))
        hasToolBlocks = true
    }

    // MARK: Cache points

    /// `cache_control` (Anthropic's marker, as LiteLLM and OpenRouter clients send it) on a
    /// message or part → a cache point after what it marks. Never after a thinking block:
    /// Anthropic refuses cache markers there.
    private mutating func appendCachePointIfMarked(_ object: JSONObject, to blocks: inout [ConverseBlock]) {
        guard object.present("cache_control") != nil, let last = blocks.last, !last.isCachePoint, !last.isReasoning
        else { return }
        blocks.append(.cachePoint)
        cachePointCount += 1
    }

    // MARK: Normalization

    /// Tool results first in user turns, a leading user turn, no trailing whitespace in a prefill.
    mutating func normalizeTurns() {
        for index in turns.indices where turns[index].isUser {
            Self.moveToolResultsFirst(&turns[index].blocks)
        }
        if turns.first?.isUser != true {
            turns.insert(ConverseTurn(isUser: true, blocks: [.text(Self.placeholderUserText)]), at: 0)
        }
        if let last = turns.indices.last, !turns[last].isUser {
            Self.trimTrailingWhitespace(&turns[last].blocks)
            if turns[last].blocks.allSatisfy(\.isCachePoint) { turns.removeLast() }
        }
    }

    /// Stable partition: tool results (each with a cache point that follows it) first.
    private static func moveToolResultsFirst(_ blocks: inout [ConverseBlock]) {
        guard let firstOther = blocks.firstIndex(where: { !$0.isToolResult && !$0.isCachePoint }),
            blocks[firstOther...].contains(where: \.isToolResult)
        else { return }
        var results: [ConverseBlock] = []
        var others: [ConverseBlock] = []
        var lastWentToResults = false
        for block in blocks {
            if block.isToolResult || (block.isCachePoint && lastWentToResults) {
                results.append(block)
                lastWentToResults = true
            } else {
                others.append(block)
                lastWentToResults = false
            }
        }
        blocks = results + others
    }

    private static func trimTrailingWhitespace(_ blocks: inout [ConverseBlock]) {
        guard let index = blocks.lastIndex(where: { !$0.isCachePoint }), case .text(var text) = blocks[index] else { return }
        while let last = text.unicodeScalars.last, last.properties.isWhitespace {
            text.unicodeScalars.removeLast()
        }
        if text.isEmpty {
            blocks.remove(at: index)
            // A cache point now following nothing of this turn would mark the previous block twice.
            if index < blocks.count, blocks[index].isCachePoint, index == 0 || blocks[index - 1].isCachePoint {
                blocks.remove(at: index)
            }
        } else {
            blocks[index] = .text(text)
        }
    }

    /// Empty or only ASCII whitespace; checked on bytes so a long text stops at its first letter.
    static func isBlank(_ text: String) -> Bool {
        text.utf8.allSatisfy { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
    }
}

/// Tool-use ids as Bedrock accepts them: `[a-zA-Z0-9_-]{1,64}`.
///
/// Conversations that started on another provider carry ids like `functions.read:0` or long
/// UUID-based ones. The same function runs over `tool_calls[].id` and `tool_call_id`, so a call
/// and its result still match after the change.
enum ToolUseID {
    static let maximumLength = 64

    static func sanitize(_ id: String) -> String {
        let utf8 = id.utf8
        if utf8.count <= maximumLength, utf8.allSatisfy(isAllowed) { return id }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(min(utf8.count, maximumLength))
        for byte in utf8.prefix(maximumLength) {
            bytes.append(isAllowed(byte) ? byte : UInt8(ascii: "_"))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }
}
