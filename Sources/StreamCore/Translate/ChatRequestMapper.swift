package import NIOCore

/// Translates an OpenAI `/v1/chat/completions` request body into a Bedrock Converse request.
///
/// Once per request, off the per-chunk path: the body is parsed into an order-preserving JSON tree,
/// checked, and written out as Converse JSON. Anything the client asked for that Bedrock cannot do
/// is refused with an ``OpenAIRequestError`` naming the parameter, before any upstream call.
///
/// ```swift
/// let mapper = ChatRequestMapper(configuration: .init(modelAliases: ["claude": "us.anthropic.claude-sonnet-4-5-20250929-v1:0"]))
/// let request = try mapper.map(body)   // body: the collected request ByteBuffer
/// // POST /model/\(escaped request.modelID)/converse-stream with request.body
/// ```
///
/// What is not forwarded: `stream_options`, `n` (1), `logprobs` (false), `parallel_tool_calls`,
/// `seed`, `frequency_penalty`, `presence_penalty`, `user`, `metadata`, `store`, `service_tier`,
/// assistant `reasoning_content` (unsigned, so Bedrock cannot take it back) and any field this
/// mapper does not know. What is refused: `n` > 1, `logprobs: true`, `top_logprobs` > 0, unknown
/// roles and part types, remote image URLs, malformed values.
///
/// ## Decisions where Bedrock and OpenAI differ
/// - **Messages**: see `MessageConversion` (system anywhere → `system`; merging; tool results
///   first in a user turn; blank text dropped; "." user turn when the conversation would not start
///   with one; `(empty)` for empty tool results; tool-use ids rewritten to `[a-zA-Z0-9_-]{1,64}`).
/// - **`tool_choice: "none"`**: Bedrock has no "none", so the request's tools are withheld. If the
///   history holds tool blocks, Bedrock still needs a `toolConfig`: it gets specs for the tools the
///   history used, described as unavailable, and no `toolChoice`.
/// - **History without `tools`**: the same synthesized specs (`{"type":"object"}` schema), so
///   Bedrock accepts the toolUse/toolResult blocks.
/// - **`response_format`** `json_object`/`json_schema`: a tool named ``responseFormatToolName``
///   with the schema as input schema, forced with `toolChoice.tool`; with user tools present the
///   choice is `any` (answer through the JSON tool or call a tool, never plain text).
/// - **Thinking** (Anthropic models only): `reasoning_effort` minimal/low → 1,024, medium → 2,048,
///   high → 4,096 budget tokens (LiteLLM's values); `thinking.budget_tokens` wins and is raised to
///   1,024. `maxTokens` must exceed the budget: if the client's max leaves no room, maxTokens =
///   budget + client max; without a client max, budget + ``defaultAnswerTokens``. `temperature`
///   and `topP` are dropped; a forced tool choice becomes `auto`; and thinking is skipped when the
///   tool-call turn being answered has no thinking block (Anthropic would refuse the request).
/// - **Sampling**: Anthropic temperature is clamped to 1 (OpenAI allows 2); with both temperature
///   and top_p, Anthropic models get temperature only. Blank stop sequences are dropped.
/// - **Prompt caching**: `cache_control` on a message, content part or tool puts a `cachePoint`
///   after it (inside a tool result it cannot be expressed, and on thinking blocks Anthropic refuses
///   it, so those markers are ignored; a message-level marker still applies). With `addsAutomaticCachePoints`, a cache point follows the system prompt
///   (Anthropic and Nova) and the tool list (Anthropic), only while the request stays within
///   Bedrock's ``maximumCachePoints``, system first. Client markers are never removed.
/// - **Model families** are told apart by the resolved id: `anthropic.` anywhere in it means an
///   Anthropic model (so `us.anthropic.…` profiles count). Application-inference-profile ARNs hide
///   the model, so they get none of the Anthropic-only behaviour (a known limit).
package struct ChatRequestMapper: Sendable {
    /// Mapper settings, fixed at startup.
    ///
    /// ## Configuration keys
    /// - `modelAliases` (`[String: String]`, default empty): client model name → Bedrock model id.
    ///   Names without an alias are sent as written (they may already be Bedrock ids).
    /// - `addsAutomaticCachePoints` (`Bool`, default `false`): add a cache point after the system
    ///   prompt and after the tool list (see ``ChatRequestMapper`` "Prompt caching").
    /// - `maximumNestingDepth` (`Int`, default 128): deepest JSON nesting accepted in the body.
    /// - `maximumMessages` (`Int`, default 10,000): most entries accepted in `messages`.
    package struct Configuration: Sendable {
        package var modelAliases: [String: String]
        package var addsAutomaticCachePoints: Bool
        /// 128 levels fit any real tool schema; the bound keeps a hostile body from exhausting the
        /// stack of the recursive parser and writer.
        package var maximumNestingDepth: Int
        /// The longest agent sessions hold a few thousand turns; far beyond that is a hostile or
        /// broken client, refused before the conversation is converted.
        package var maximumMessages: Int

        package init(
            modelAliases: [String: String] = [:],
            addsAutomaticCachePoints: Bool = false,
            maximumNestingDepth: Int = 128,
            maximumMessages: Int = 10_000
        ) {
            self.modelAliases = modelAliases
            self.addsAutomaticCachePoints = addsAutomaticCachePoints
            self.maximumNestingDepth = maximumNestingDepth
            self.maximumMessages = maximumMessages
        }
    }

    /// Name of the forced tool that emulates `response_format` JSON. Its input is the answer:
    /// response translators turn that tool call into message `content` with finish reason `stop`.
    package static let responseFormatToolName: StaticString = "respond_with_json"
    /// Anthropic beta that makes Bedrock stream tool input as it is generated instead of buffering
    /// it (minutes-long silent gaps on large tool calls otherwise; BEDROCK_API.md §2).
    package static let fineGrainedToolStreamingBeta: StaticString = "fine-grained-tool-streaming-2025-05-14"
    /// Anthropic's smallest thinking budget.
    package static let minimumThinkingBudget = 1024
    /// Answer room added above the thinking budget when the client's `max_tokens` leaves none.
    package static let defaultAnswerTokens = 4096
    /// Bedrock's limit on cache points per request.
    package static let maximumCachePoints = 4
    /// Depth bound for tool-call `arguments` strings, parsed apart from the body.
    static let maximumArgumentsNestingDepth = 128

    package var configuration: Configuration

    package init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Translates one request body.
    ///
    /// - Parameters:
    ///   - body: the complete OpenAI request JSON (collected with a size bound by the caller).
    ///   - allocator: allocates the Converse body.
    /// - Returns: the Bedrock model id, flags and Converse JSON body.
    /// - Throws: ``OpenAIRequestError`` (HTTP 400) for malformed or unsupported requests.
    package func map(
        _ body: ByteBuffer,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(OpenAIRequestError) -> ConverseRequest {
        let maximumNestingDepth = configuration.maximumNestingDepth
        let parsed: ParsedJSON
        do throws(JSONParseError) {
            parsed = try body.withUnsafeReadableBytes { bytes throws(JSONParseError) in
                try JSONParser.parse(bytes, maximumNestingDepth: maximumNestingDepth)
            }
        } catch {
            throw OpenAIRequestError(
                code: .invalidJSON,
                param: nil,
                message: "We could not parse the JSON body of your request: \(error.reason) at byte \(error.offset)."
            )
        }
        guard let root = parsed.objectValue else {
            throw OpenAIRequestError(code: .invalidJSON, param: nil, message: "The request body must be a JSON object.")
        }
        let translation = try RequestTranslation(root: root, configuration: configuration)
        return translation.makeRequest(capacity: body.readableBytes + 512, allocator: allocator)
    }
}

/// The parsed, checked request, ready to be written as Converse JSON.
///
/// Shared by the chat-completions and Responses mappers: each reads its API's fields into one of
/// these, so tool configuration, thinking, cache points and the body layout stay the same for both.
struct RequestTranslation {
    enum ToolChoice: Equatable {
        case unspecified, auto, none, required
        case named(String)
    }

    let requestedModel: String
    let modelID: String
    let isAnthropic: Bool
    let isStreaming: Bool
    let includesUsage: Bool
    let user: String?
    /// `prompt_cache_key` (chat): routing affinity only.
    var promptCacheKey: String?
    var maxTokens: Int?
    var temperature: Double?
    var topP: Double?
    var stopSequences: [String] = []
    var thinkingBudget: Int?
    var conversation: MessageConversion
    var messageCount: Int
    var tools: [ConverseToolSpec] = []
    var toolChoice: ToolChoice = .unspecified
    var responseFormatSchema: ParsedJSON?
    var responseFormatDescription: String?
    let addsAutomaticCachePoints: Bool

    /// A request from the parts every API's reader produces. The Responses mapper then sets
    /// sampling, tools, response format and thinking (``applyThinking(budget:)``) itself before
    /// ``makeRequest(capacity:allocator:)``; the chat initializer below reads them from its JSON.
    init(
        model: String,
        configuration: ChatRequestMapper.Configuration,
        isStreaming: Bool,
        includesUsage: Bool = false,
        user: String?,
        conversation: MessageConversion,
        messageCount: Int
    ) {
        requestedModel = model
        modelID = configuration.modelAliases[model] ?? model
        isAnthropic = modelID.contains("anthropic.")
        addsAutomaticCachePoints =
            configuration.addsAutomaticCachePoints && (isAnthropic || modelID.contains("amazon.nova"))
        self.isStreaming = isStreaming
        self.includesUsage = includesUsage
        self.user = user
        self.conversation = conversation
        self.messageCount = messageCount
    }

    init(root: JSONObject, configuration: ChatRequestMapper.Configuration) throws(OpenAIRequestError) {
        guard let modelValue = root.present("model") else { throw .missing("model") }
        guard let model = modelValue.stringValue, !model.isEmpty else { throw .type("model", expected: "a non-empty string") }

        let isStreaming = try Self.bool(root, "stream") ?? false
        let includesUsage: Bool
        if let options = root.present("stream_options") {
            guard let object = options.objectValue else { throw .type("stream_options", expected: "an object") }
            includesUsage = try Self.bool(object, "include_usage", path: "stream_options.include_usage") ?? false
        } else {
            includesUsage = false
        }
        let user: String?
        if let userValue = root.present("user") {
            guard let value = userValue.stringValue else { throw .type("user", expected: "a string") }
            user = value
        } else {
            user = nil
        }

        try Self.refuseUnsupported(root)

        guard let messagesValue = root.present("messages") else { throw .missing("messages") }
        guard let messages = messagesValue.arrayValue else { throw .type("messages", expected: "an array") }
        guard !messages.isEmpty else { throw .value("messages", "at least one message is required.") }
        guard messages.count <= configuration.maximumMessages else {
            throw .value("messages", "\(messages.count) messages is more than this gateway accepts (\(configuration.maximumMessages)).")
        }
        self.init(
            model: model,
            configuration: configuration,
            isStreaming: isStreaming,
            includesUsage: includesUsage,
            user: user,
            conversation: try MessageConversion(messages: messages),
            messageCount: messages.count
        )

        if let key = root.present("prompt_cache_key") {
            guard let value = key.stringValue else { throw .type("prompt_cache_key", expected: "a string") }
            promptCacheKey = value
        }
        try readSampling(root)
        try readTools(root)
        try readResponseFormat(root)
        try readThinking(root)
    }

    // MARK: Reading

    private static func bool(_ object: JSONObject, _ key: String, path: String? = nil) throws(OpenAIRequestError) -> Bool? {
        guard let value = object.present(key) else { return nil }
        guard let flag = value.boolValue else { throw .type(path ?? key, expected: "a boolean") }
        return flag
    }

    private static func refuseUnsupported(_ root: JSONObject) throws(OpenAIRequestError) {
        if let value = root.present("n") {
            guard let count = value.intValue else { throw .type("n", expected: "an integer") }
            guard count == 1 else {
                throw .unsupported("n", "Bedrock returns one choice per request; n must be 1.")
            }
        }
        if try bool(root, "logprobs") == true {
            throw .unsupported("logprobs", "Bedrock does not return log probabilities.")
        }
        if let value = root.present("top_logprobs") {
            guard let count = value.intValue else { throw .type("top_logprobs", expected: "an integer") }
            if count > 0 { throw .unsupported("top_logprobs", "Bedrock does not return log probabilities.") }
        }
    }

    private mutating func readSampling(_ root: JSONObject) throws(OpenAIRequestError) {
        // `max_completion_tokens` is the current name; `max_tokens` the deprecated one. The newer wins.
        for key in ["max_tokens", "max_completion_tokens"] {
            guard let value = root.present(key) else { continue }
            guard let tokens = value.intValue else { throw .type(key, expected: "an integer") }
            guard tokens > 0 else { throw .value(key, "must be at least 1.") }
            maxTokens = tokens
        }
        if let value = root.present("temperature") {
            guard let number = value.doubleValue else { throw .type("temperature", expected: "a number") }
            guard number >= 0, number <= 2 else { throw .value("temperature", "must be between 0 and 2.") }
            // OpenAI's scale is 0…2, Anthropic's 0…1 (Bedrock refuses more); clamp, don't refuse.
            temperature = isAnthropic ? min(number, 1) : number
        }
        if let value = root.present("top_p") {
            guard let number = value.doubleValue else { throw .type("top_p", expected: "a number") }
            guard number >= 0, number <= 1 else { throw .value("top_p", "must be between 0 and 1.") }
            topP = number
        }
        switch root.present("stop") {
        case nil:
            break
        case .string(let stop)?:
            stopSequences = [stop]
        case .array(let elements)?:
            for (index, element) in elements.enumerated() {
                guard let stop = element.stringValue else { throw .type("stop[\(index)]", expected: "a string") }
                stopSequences.append(stop)
            }
        default:
            throw .type("stop", expected: "a string or an array of strings")
        }
        // Anthropic refuses blank stop sequences; they could never match anything useful anyway.
        stopSequences.removeAll(where: MessageConversion.isBlank)
    }

    private mutating func readTools(_ root: JSONObject) throws(OpenAIRequestError) {
        if let value = root.present("tools") {
            guard let array = value.arrayValue else { throw .type("tools", expected: "an array") }
            var names: Set<String> = []
            for (index, element) in array.enumerated() {
                let spec = try Self.toolSpec(element, index: index)
                guard names.insert(spec.name).inserted else {
                    throw .value("tools[\(index)].function.name", "tool names must be unique.")
                }
                tools.append(spec)
            }
        }
        switch root.present("tool_choice") {
        case nil:
            break
        case .string("auto")?:
            toolChoice = .auto
        case .string("none")?:
            toolChoice = .none
        case .string("required")?:
            toolChoice = .required
        case .object(let object)?:
            guard object.present("type")?.stringValue == "function",
                let name = object.present("function")?.objectValue?.present("name")?.stringValue
            else {
                throw .value("tool_choice", "expected 'auto', 'none', 'required' or {\"type\":\"function\",\"function\":{\"name\":…}}.")
            }
            guard tools.contains(where: { $0.name == name }) else {
                throw .value("tool_choice.function.name", "no tool named '\(name)' is in 'tools'.")
            }
            toolChoice = .named(name)
        default:
            throw .value("tool_choice", "expected 'auto', 'none', 'required' or {\"type\":\"function\",\"function\":{\"name\":…}}.")
        }
        if toolChoice == .required, tools.isEmpty {
            throw .value("tool_choice", "'required' needs at least one tool in 'tools'.")
        }
    }

    private static func toolSpec(_ element: ParsedJSON, index: Int) throws(OpenAIRequestError) -> ConverseToolSpec {
        guard let tool = element.objectValue else { throw .type("tools[\(index)]", expected: "an object") }
        if let type = tool.present("type"), type.stringValue != "function" {
            throw .unsupported("tools[\(index)].type", "only tools of type 'function' are supported.")
        }
        guard let function = tool.present("function")?.objectValue else { throw .missing("tools[\(index)].function") }
        guard let nameValue = function.present("name") else { throw .missing("tools[\(index)].function.name") }
        guard let name = nameValue.stringValue, ToolName.isValid(name) else {
            throw .value("tools[\(index)].function.name", "tool names must match ^[a-zA-Z0-9_-]{1,64}$.")
        }
        var description: String?
        if let value = function.present("description") {
            guard let text = value.stringValue else {
                throw .type("tools[\(index)].function.description", expected: "a string")
            }
            description = MessageConversion.isBlank(text) ? nil : text
        }
        let schema: ParsedJSON
        switch function.present("parameters") {
        case nil:
            schema = ToolName.emptyParametersSchema
        case .object(let object)?:
            schema = .object(object)
        default:
            throw .type("tools[\(index)].function.parameters", expected: "a JSON Schema object")
        }
        // Clients put the marker on the tool (LiteLLM) or inside `function`; either marks this tool.
        let isCached = tool.present("cache_control") != nil || function.present("cache_control") != nil
        return ConverseToolSpec(name: name, description: description, schema: schema, isCached: isCached)
    }

    private mutating func readResponseFormat(_ root: JSONObject) throws(OpenAIRequestError) {
        guard let value = root.present("response_format") else { return }
        guard let format = value.objectValue else { throw .type("response_format", expected: "an object") }
        switch format.present("type")?.stringValue {
        case "text":
            return
        case "json_object":
            responseFormatSchema = .object(JSONObject(members: [("type", .string("object"))]))
        case "json_schema":
            let jsonSchema = format.present("json_schema")?.objectValue
            guard format.present("json_schema") == nil || jsonSchema != nil else {
                throw .type("response_format.json_schema", expected: "an object")
            }
            switch jsonSchema?.present("schema") {
            case nil:
                responseFormatSchema = .object(JSONObject(members: [("type", .string("object"))]))
            case .object(let schema)?:
                if let type = schema.present("type"), type.stringValue != "object" {
                    // Tool input is always an object; OpenAI's structured outputs demand the same root.
                    throw .value("response_format.json_schema.schema", "the root schema must be of type 'object'.")
                }
                responseFormatSchema = .object(schema)
            default:
                throw .type("response_format.json_schema.schema", expected: "a JSON Schema object")
            }
            let name = jsonSchema?.present("name")?.stringValue
            let detail = jsonSchema?.present("description")?.stringValue
            responseFormatDescription = [name.map { "Schema: \($0)." }, detail].compactMap { $0 }.joined(separator: " ")
        default:
            throw .value("response_format.type", "expected 'text', 'json_object' or 'json_schema'.")
        }
        if tools.contains(where: { $0.name == ChatRequestMapper.responseFormatToolName.description }) {
            throw .value(
                "tools",
                "the tool name '\(ChatRequestMapper.responseFormatToolName)' is reserved when response_format asks for JSON."
            )
        }
    }

    private mutating func readThinking(_ root: JSONObject) throws(OpenAIRequestError) {
        var budget: Int?
        if let value = root.present("reasoning_effort") {
            // LiteLLM's budgets, so clients moving from it see the same behaviour.
            switch value.stringValue {
            case "none": budget = nil
            case "minimal", "low": budget = 1024
            case "medium": budget = 2048
            case "high": budget = 4096
            default: throw .value("reasoning_effort", "expected 'none', 'minimal', 'low', 'medium' or 'high'.")
            }
        }
        if let value = root.present("thinking") {
            guard let thinking = value.objectValue else { throw .type("thinking", expected: "an object") }
            switch thinking.present("type")?.stringValue {
            case "enabled":
                guard let tokensValue = thinking.present("budget_tokens") else { throw .missing("thinking.budget_tokens") }
                guard let tokens = tokensValue.intValue, tokens > 0 else {
                    throw .value("thinking.budget_tokens", "must be a positive integer.")
                }
                budget = tokens
            case "disabled":
                budget = nil
            default:
                throw .value("thinking.type", "expected 'enabled' or 'disabled'.")
            }
        }
        guard let budget else { return }
        try applyThinking(budget: budget)
    }

    /// Turns on extended thinking with `requested` budget tokens, for Anthropic models only (other
    /// families ignore the request for reasoning), and adjusts maxTokens, sampling and the
    /// conditions Anthropic puts on thinking (below).
    mutating func applyThinking(budget requested: Int) throws(OpenAIRequestError) {
        guard isAnthropic else { return }
        // With thinking on, Anthropic wants the assistant turn whose tool calls are being answered
        // to start with its (signed) thinking block. Most OpenAI clients never send thinking_blocks
        // back, so such a request would be refused; it runs without thinking instead (Anthropic
        // allows a turn without thinking), as LiteLLM does.
        if let lastAssistant = conversation.turns.last(where: { !$0.isUser }),
            lastAssistant.blocks.contains(where: \.isToolUse),
            lastAssistant.blocks.first?.isReasoning != true
        {
            return
        }
        let effective = max(requested, ChatRequestMapper.minimumThinkingBudget)
        thinkingBudget = effective
        // The budget must stay below maxTokens. A client's max_tokens counts the whole completion
        // (reasoning included, as for OpenAI's reasoning models); when it leaves no room above the
        // budget, the answer keeps the room the client asked for: maxTokens = budget + max_tokens.
        if let requestedMax = maxTokens {
            if requestedMax <= effective { maxTokens = try Self.answerRoom(above: effective, answer: requestedMax) }
        } else {
            maxTokens = try Self.answerRoom(above: effective, answer: ChatRequestMapper.defaultAnswerTokens)
        }
        // Anthropic refuses temperature ≠ 1 and top_p < 0.95 with thinking; dropping both is the
        // only choice that works for every value.
        temperature = nil
        topP = nil
    }

    /// `budget + answer`. A client-chosen budget near `Int.max` would overflow the sum (a trap,
    /// reproduced by ChatRequestMapperFuzzer); no model takes such a budget, so it is refused like any bad value.
    private static func answerRoom(above budget: Int, answer: Int) throws(OpenAIRequestError) -> Int {
        let (sum, overflow) = budget.addingReportingOverflow(answer)
        guard !overflow else { throw .value("thinking.budget_tokens", "is too large.") }
        return sum
    }

    // MARK: Writing

    /// The tool list actually sent, in order; nil when the request sends no `toolConfig`.
    private func effectiveTools() -> (specs: [ConverseToolSpec], choice: StaticString?, forcedName: String?)? {
        // tool_choice "none": Bedrock has no such choice, so the tools are withheld. If history
        // still holds tool blocks, Bedrock needs a toolConfig: it gets the history's tool names
        // with a "not available" description and no choice (see the synthesis below).
        var specs = toolChoice == .none ? [] : tools
        let userToolCount = specs.count
        if let schema = responseFormatSchema {
            var description = "Give the final answer by calling this tool; its input is the answer, as JSON."
            if let extra = responseFormatDescription, !extra.isEmpty { description += " " + extra }
            specs.append(
                ConverseToolSpec(
                    name: ChatRequestMapper.responseFormatToolName.description,
                    description: description,
                    schema: schema,
                    isCached: false
                )
            )
        }
        if conversation.hasToolBlocks {
            // "The toolConfig field must be defined when using toolUse and toolResult content blocks".
            for name in conversation.historyToolNames where !specs.contains(where: { $0.name == name }) {
                specs.append(ToolName.historySpec(name: name))
            }
            if specs.isEmpty { specs.append(ToolName.historySpec(name: ToolName.placeholderName)) }
        }
        guard !specs.isEmpty else { return nil }

        var choice: StaticString?
        var forcedName: String?
        switch toolChoice {
        case .unspecified, .auto:
            if responseFormatSchema != nil {
                if userToolCount > 0 {
                    choice = "any"  // answer through the JSON tool or call a user tool, never plain text
                } else {
                    choice = "tool"
                    forcedName = ChatRequestMapper.responseFormatToolName.description
                }
            } else if toolChoice == .auto {
                choice = "auto"
            }
        case .none:
            if responseFormatSchema != nil {
                choice = "tool"
                forcedName = ChatRequestMapper.responseFormatToolName.description
            }
        case .required:
            choice = "any"
        case .named(let name):
            choice = "tool"
            forcedName = name
        }
        // Anthropic refuses forced tool use with thinking; thinking wins and the model chooses
        // (`auto`), as LiteLLM does. A JSON answer then usually still arrives through the tool.
        if thinkingBudget != nil, choice != nil, forcedName != nil || choice?.description == "any" {
            choice = "auto"
            forcedName = nil
        }
        return (specs, choice, forcedName)
    }

    func makeRequest(capacity: Int, allocator: ByteBufferAllocator) -> ConverseRequest {
        let toolConfig = effectiveTools()
        var output = JSONOutput(buffer: allocator.buffer(capacity: capacity))
        var cachePoints = conversation.cachePointCount + (toolConfig?.specs.filter(\.isCached).count ?? 0)

        // Automatic cache points: after system first (a breakpoint there caches tools + system,
        // Bedrock's prefix order being tools → system → messages), then after the tools, while
        // the request stays within Bedrock's four. Tool caching is Anthropic-only.
        var systemBlocks = conversation.system
        var cacheAfterTools = false
        if addsAutomaticCachePoints {
            if !systemBlocks.isEmpty, systemBlocks.last?.isCachePoint == false, cachePoints < ChatRequestMapper.maximumCachePoints {
                systemBlocks.append(.cachePoint)
                cachePoints += 1
            }
            if isAnthropic, let specs = toolConfig?.specs, specs.last?.isCached == false,
                cachePoints < ChatRequestMapper.maximumCachePoints
            {
                cacheAfterTools = true
                cachePoints += 1
            }
        }

        output.raw("{")
        if !systemBlocks.isEmpty {
            output.key("system")
            writeBlocks(systemBlocks, to: &output)
            output.raw(",")
        }
        output.key("messages")
        output.raw("[")
        for (index, turn) in conversation.turns.enumerated() {
            if index > 0 { output.raw(",") }
            output.raw(turn.isUser ? "{\"role\":\"user\",\"content\":" : "{\"role\":\"assistant\",\"content\":")
            writeBlocks(turn.blocks, to: &output)
            output.raw("}")
        }
        output.raw("]")

        if maxTokens != nil || temperature != nil || topP != nil || !stopSequences.isEmpty {
            output.raw(",\"inferenceConfig\":{")
            var separator = false
            if let maxTokens {
                output.key("maxTokens")
                output.int(maxTokens)
                separator = true
            }
            if let temperature {
                if separator { output.raw(",") }
                output.key("temperature")
                output.double(temperature)
                separator = true
            }
            // Claude Sonnet/Opus 4.5+ and Haiku 4.5 refuse temperature and topP together; BAG drops
            // topP, and so do we for every Anthropic model (temperature is what clients tune).
            if let topP, !(isAnthropic && temperature != nil) {
                if separator { output.raw(",") }
                output.key("topP")
                output.double(topP)
                separator = true
            }
            if !stopSequences.isEmpty {
                if separator { output.raw(",") }
                output.key("stopSequences")
                output.raw("[")
                for (index, stop) in stopSequences.enumerated() {
                    if index > 0 { output.raw(",") }
                    output.string(stop)
                }
                output.raw("]")
            }
            output.raw("}")
        }

        if let toolConfig {
            output.raw(",\"toolConfig\":{\"tools\":[")
            for (index, spec) in toolConfig.specs.enumerated() {
                if index > 0 { output.raw(",") }
                output.raw("{\"toolSpec\":{\"name\":")
                output.string(spec.name)
                if let description = spec.description {
                    output.raw(",\"description\":")
                    output.string(description)
                }
                output.raw(",\"inputSchema\":{\"json\":")
                output.value(spec.schema)
                output.raw("}}}")
                if spec.isCached || (cacheAfterTools && index == toolConfig.specs.count - 1) {
                    output.raw(",{\"cachePoint\":{\"type\":\"default\"}}")
                }
            }
            output.raw("]")
            if let choice = toolConfig.choice {
                output.raw(",\"toolChoice\":{\"")
                output.raw(choice)
                if let name = toolConfig.forcedName {
                    output.raw("\":{\"name\":")
                    output.string(name)
                    output.raw("}}")
                } else {
                    output.raw("\":{}}")
                }
            }
            output.raw("}")
        }

        let addsBeta = isAnthropic && toolConfig != nil
        if thinkingBudget != nil || addsBeta {
            output.raw(",\"additionalModelRequestFields\":{")
            if let thinkingBudget {
                output.raw("\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":")
                output.int(thinkingBudget)
                output.raw("}")
                if addsBeta { output.raw(",") }
            }
            if addsBeta {
                output.raw("\"anthropic_beta\":[\"")
                output.raw(ChatRequestMapper.fineGrainedToolStreamingBeta)
                output.raw("\"]")
            }
            output.raw("}")
        }
        output.raw("}")

        return ConverseRequest(
            modelID: modelID,
            requestedModel: requestedModel,
            isStreaming: isStreaming,
            includesUsage: includesUsage,
            user: user,
            promptCacheKey: promptCacheKey,
            usesResponseFormatTool: responseFormatSchema != nil,
            isThinkingEnabled: thinkingBudget != nil,
            messageCount: messageCount,
            maxTokens: maxTokens,
            body: output.buffer
        )
    }

    private func writeBlocks(_ blocks: [ConverseBlock], to output: inout JSONOutput) {
        output.raw("[")
        for (index, block) in blocks.enumerated() {
            if index > 0 { output.raw(",") }
            block.write(to: &output)
        }
        output.raw("]")
    }
}

/// One `toolConfig.tools[].toolSpec`, plus whether a cache point follows it.
struct ConverseToolSpec {
    var name: String
    var description: String?
    var schema: ParsedJSON
    var isCached: Bool
}

/// Tool names and the specs made up for tools Bedrock must know about but the request lacks.
enum ToolName {
    /// Used when history has tool results but no tool calls to name a tool after.
    static let placeholderName = "unavailable_tool"

    /// `{"type":"object","properties":{}}`: what a function without `parameters` takes.
    static let emptyParametersSchema = ParsedJSON.object(
        JSONObject(members: [("type", .string("object")), ("properties", .object(JSONObject()))])
    )

    /// A spec for a tool used in history: any object input, described as unavailable so the model
    /// does not call it now.
    static func historySpec(name: String) -> ConverseToolSpec {
        ConverseToolSpec(
            name: name,
            description: "Used earlier in this conversation; not available now. Do not call it.",
            schema: .object(JSONObject(members: [("type", .string("object"))])),
            isCached: false
        )
    }

    static func isValid(_ name: String) -> Bool {
        let utf8 = name.utf8
        guard !utf8.isEmpty, utf8.count <= 64 else { return false }
        return utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
    }
}
