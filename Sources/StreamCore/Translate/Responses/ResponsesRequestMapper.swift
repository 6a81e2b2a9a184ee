package import NIOCore

/// Translates an OpenAI Responses API request (`POST /v1/responses`) into a Bedrock Converse request.
///
/// Once per request, off the per-chunk path, like ``ChatRequestMapper``, whose request model it
/// shares (`RequestTranslation`): tool configuration, thinking, cache points, sampling and the
/// Converse body come out the same for both APIs. Anything Bedrock cannot do is refused with an
/// ``OpenAIRequestError`` naming the parameter, before any upstream call.
///
/// ```swift
/// let mapper = ResponsesRequestMapper(configuration: .init(chat: .init(modelAliases: aliases), opener: cipher))
/// let request = try mapper.map(body)
/// // POST /model/\(escaped request.modelID)/converse-stream with request.body
/// ```
///
/// ## Fields
/// | Field | Handling |
/// |---|---|
/// | `model` | alias lookup as for chat (``ChatRequestMapper/Configuration/modelAliases``) |
/// | `input` (string) | one user turn |
/// | `input` items | `message` (user/assistant/system/developer; `input_text`, `output_text`, `refusal`, `input_image` as a data URL), `function_call` → toolUse, `function_call_output` → toolResult, `reasoning` → reasoningContent (from `encrypted_content`; items without it are dropped, Bedrock cannot take unsigned reasoning back) |
/// | `instructions`, system/developer messages | Converse `system`, in order |
/// | `tools` | `function` tools; other types refused, naming the type |
/// | `tool_choice` | `auto`, `none`, `required`, `{"type":"function","name":…}` (as for chat) |
/// | `max_output_tokens`, `temperature`, `top_p` | `inferenceConfig` (as for chat) |
/// | `reasoning.effort` | Anthropic thinking budget: minimal/low 1,024, medium 4,096, high 16,384, xhigh 32,768 tokens; `none` off |
/// | `text.format` | `json_schema`/`json_object` → the forced tool ``ChatRequestMapper/responseFormatToolName`` |
/// | `include` | `reasoning.encrypted_content` seals reasoning; `message.output_text.logprobs` refused |
/// | `previous_response_id` | refused unless ``Configuration/isStoreEnabled`` |
/// | `background: true`, `conversation`, `prompt`, `top_logprobs` > 0 | refused |
/// | ``ignoredFields`` | accepted, no effect |
/// | anything else | refused as `unknown_parameter` |
///
/// The budgets are larger than chat's `reasoning_effort` ones because Responses clients (Codex)
/// default to `medium` for agentic coding, where 2,048 tokens of thinking is too little to plan a
/// change; `high` leaves 16k, Anthropic's suggested budget for hard problems.
package struct ResponsesRequestMapper: Sendable {
    /// Mapper settings, fixed at startup.
    ///
    /// ## Configuration keys
    /// - `chat` (``ChatRequestMapper/Configuration``): model aliases, automatic cache points and the
    ///   nesting bound, shared with the chat route; `maximumMessages` bounds `input` items.
    /// - `isStoreEnabled` (`Bool`, default `false`): a response store exists, so
    ///   `previous_response_id` is passed to the gateway instead of refused.
    /// - `opener` (default `nil`): opens reasoning items' `encrypted_content`; without one, an item
    ///   carrying it is refused.
    package struct Configuration: Sendable {
        package var chat: ChatRequestMapper.Configuration
        package var isStoreEnabled: Bool
        package var opener: (any ResponsesReasoningOpener)?

        package init(
            chat: ChatRequestMapper.Configuration = .init(),
            isStoreEnabled: Bool = false,
            opener: (any ResponsesReasoningOpener)? = nil
        ) {
            self.chat = chat
            self.isStoreEnabled = isStoreEnabled
            self.opener = opener
        }
    }

    /// Top-level fields accepted and ignored, and why ignoring them is safe:
    /// - `metadata`, `client_metadata`, `user`, `safety_identifier`: labels for the caller's records
    ///   (`user` reaches the audit log through ``ResponsesRequest/user``).
    /// - `service_tier`, `prompt_cache_retention`: OpenAI billing and cache-lifetime hints.
    /// - `truncation`: with `disabled` (the default) an overlong input fails, as on Bedrock; `auto`
    ///   would let OpenAI drop old items, which Sluice does not do: Bedrock then refuses an overlong
    ///   input, the same visible outcome as `disabled`.
    /// - `max_tool_calls`: bounds built-in tool calls, and built-in tools are refused.
    /// - `parallel_tool_calls`: Bedrock has no switch for it; Anthropic models call in parallel.
    /// - `stream_options`: only `include_obfuscation`, padding Sluice does not add.
    /// - `store`, `prompt_cache_key`: passed to the gateway in ``ResponsesRequest``.
    package static let ignoredFields: Set<String> = [
        "metadata", "client_metadata", "user", "safety_identifier", "service_tier", "prompt_cache_retention",
        "truncation", "max_tool_calls", "parallel_tool_calls", "stream_options", "store", "prompt_cache_key",
    ]

    /// Fields read by the mapper itself.
    static let handledFields: Set<String> = [
        "model", "input", "instructions", "stream", "max_output_tokens", "temperature", "top_p", "tools",
        "tool_choice", "reasoning", "text", "include", "previous_response_id", "background", "top_logprobs",
        "conversation", "prompt",
    ]

    /// `include` values: the one Sluice acts on, the one it refuses, and those that only concern
    /// built-in tools or echoed inputs (refused or absent anyway).
    static let knownIncludes: Set<String> = [
        "reasoning.encrypted_content", "message.output_text.logprobs", "file_search_call.results",
        "web_search_call.results", "web_search_call.action.sources", "message.input_image.image_url",
        "computer_call_output.output.image_url", "code_interpreter_call.outputs",
    ]

    package var configuration: Configuration

    package init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Thinking budget tokens for a `reasoning.effort`; nil for `none` (see the type's discussion).
    package static func thinkingBudget(effort: String) -> Int?? {
        switch effort {
        case "none": .some(nil)
        case "minimal", "low": 1024
        case "medium": 4096
        case "high": 16384
        case "xhigh": 32768
        default: nil
        }
    }

    /// Translates one request body.
    ///
    /// - Parameters:
    ///   - body: the complete Responses request JSON (collected with a size bound by the caller).
    ///   - allocator: allocates the Converse body.
    /// - Returns: the Converse request and the Responses-specific settings.
    ///   - history: with a response store, the items of the response `previous_response_id` names
    ///     (``ResponsesRequest/conversationItems`` of that request): a JSON array of input items that
    ///     comes before the body's `input`.
    /// - Throws: ``OpenAIRequestError`` (HTTP 400) for malformed, unknown or unsupported fields.
    package func map(
        _ body: ByteBuffer,
        history: ByteBuffer? = nil,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(OpenAIRequestError) -> ResponsesRequest {
        let maximumNestingDepth = configuration.chat.maximumNestingDepth
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
        var historyItems: [ParsedJSON] = []
        if let history {
            // Written by this gateway, so a failure here is a damaged store, not the client's input.
            let items = history.withUnsafeReadableBytes { try? JSONParser.parse($0, maximumNestingDepth: maximumNestingDepth) }
            guard let array = items?.arrayValue else {
                throw .value("previous_response_id", "the stored response cannot be read; send the conversation in 'input'.")
            }
            historyItems = array
        }
        return try map(root, history: historyItems, capacity: body.readableBytes + (history?.readableBytes ?? 0) + 512, allocator: allocator)
    }

    private func map(_ root: JSONObject, history: [ParsedJSON], capacity: Int, allocator: ByteBufferAllocator) throws(OpenAIRequestError) -> ResponsesRequest {
        for member in root.members where !Self.handledFields.contains(member.key) && !Self.ignoredFields.contains(member.key) {
            throw .unknown(member.key)
        }
        guard let modelValue = root.present("model") else { throw .missing("model") }
        guard let model = modelValue.stringValue, !model.isEmpty else { throw .type("model", expected: "a non-empty string") }
        let isStreaming = try Self.bool(root, "stream") ?? false
        let store = try Self.bool(root, "store") ?? true
        let user = try Self.string(root, "user")
        let promptCacheKey = try Self.string(root, "prompt_cache_key")
        _ = try Self.bool(root, "parallel_tool_calls")
        try Self.refuseStateful(root)

        var previousResponseID: String?
        if let id = try Self.string(root, "previous_response_id") {
            guard configuration.isStoreEnabled else {
                throw .unsupported(
                    "previous_response_id",
                    "this gateway keeps no responses; send the whole conversation in 'input' (with store: false, and include: [\"reasoning.encrypted_content\"] to keep reasoning across turns)."
                )
            }
            previousResponseID = id
        }
        let includesEncryptedReasoning = try Self.readInclude(root)

        // Conversation: instructions first, then the input items.
        var conversation = MessageConversion()
        let instructions = try Self.string(root, "instructions")
        if let instructions, !MessageConversion.isBlank(instructions) {
            conversation.appendSystem([.text(instructions)])
        }
        guard let input = root.present("input") else { throw .missing("input") }
        // The body's input as items (a string is one user message), for the history and the store.
        let inputItems: [ParsedJSON]
        switch input {
        case .string(let text):
            inputItems = [.object(JSONObject(members: [("type", .string("message")), ("role", .string("user")), ("content", .string(text))]))]
        case .array(let items):
            inputItems = items
        default:
            throw .type("input", expected: "a string or an array of input items")
        }
        let messageCount = history.count + inputItems.count
        guard messageCount <= configuration.chat.maximumMessages else {
            throw .value("input", "\(messageCount) items is more than this gateway accepts (\(configuration.chat.maximumMessages)).")
        }
        var converter = ResponsesInputConversion(opener: configuration.opener)
        for item in history {
            // Stored items were checked when they were new; an error here names the stored response.
            do {
                try converter.convert(item, at: 0, into: &conversation)
            } catch {
                throw .value("previous_response_id", "the stored response cannot be replayed: \(error.message)")
            }
        }
        for (index, item) in inputItems.enumerated() {
            try converter.convert(item, at: index, into: &conversation)
        }
        conversation.normalizeTurns()

        var translation = RequestTranslation(
            model: model,
            configuration: configuration.chat,
            isStreaming: isStreaming,
            user: user,
            conversation: conversation,
            messageCount: messageCount
        )
        try Self.readSampling(root, into: &translation)
        var namespaces = ToolNamespaces()
        try Self.readTools(root, into: &translation, namespaces: &namespaces)
        try Self.readTextFormat(root, into: &translation)
        if let budget = try Self.readReasoning(root) {
            try translation.applyThinking(budget: budget)
        }
        return ResponsesRequest(
            converse: translation.makeRequest(capacity: capacity, allocator: allocator),
            previousResponseID: previousResponseID,
            promptCacheKey: promptCacheKey,
            includesEncryptedReasoning: includesEncryptedReasoning,
            store: store,
            instructions: instructions,
            toolNamespaces: namespaces,
            conversationItems: configuration.isStoreEnabled && store ? Self.items(history + inputItems, allocator: allocator) : nil
        )
    }

    /// A JSON array of items, compact.
    private static func items(_ items: [ParsedJSON], allocator: ByteBufferAllocator) -> ByteBuffer {
        var output = JSONOutput(buffer: allocator.buffer(capacity: 1024))
        output.value(.array(items))
        return output.buffer
    }

    // MARK: Fields

    private static func bool(_ object: JSONObject, _ key: String, path: String? = nil) throws(OpenAIRequestError) -> Bool? {
        guard let value = object.present(key) else { return nil }
        guard let flag = value.boolValue else { throw .type(path ?? key, expected: "a boolean") }
        return flag
    }

    private static func string(_ object: JSONObject, _ key: String, path: String? = nil) throws(OpenAIRequestError) -> String? {
        guard let value = object.present(key) else { return nil }
        guard let text = value.stringValue else { throw .type(path ?? key, expected: "a string") }
        return text
    }

    /// Features that need server-side state or run in the background: a stateless gateway cannot
    /// honour them, and ignoring them would silently change what the client gets.
    private static func refuseStateful(_ root: JSONObject) throws(OpenAIRequestError) {
        if try bool(root, "background") == true {
            throw .unsupported("background", "background responses need a response store; this gateway answers in the request.")
        }
        if root.present("conversation") != nil {
            throw .unsupported("conversation", "this gateway keeps no conversations; send the whole conversation in 'input'.")
        }
        if root.present("prompt") != nil {
            throw .unsupported("prompt", "stored prompt templates are not available; send the prompt in 'instructions' and 'input'.")
        }
        if let value = root.present("top_logprobs") {
            guard let count = value.intValue else { throw .type("top_logprobs", expected: "an integer") }
            if count > 0 { throw .unsupported("top_logprobs", "Bedrock does not return log probabilities.") }
        }
    }

    /// Whether `include` asks for `reasoning.encrypted_content`.
    private static func readInclude(_ root: JSONObject) throws(OpenAIRequestError) -> Bool {
        guard let value = root.present("include") else { return false }
        guard let array = value.arrayValue else { throw .type("include", expected: "an array of strings") }
        var sealsReasoning = false
        for (index, element) in array.enumerated() {
            guard let name = element.stringValue else { throw .type("include[\(index)]", expected: "a string") }
            switch name {
            case "reasoning.encrypted_content":
                sealsReasoning = true
            case "message.output_text.logprobs":
                throw .unsupported("include[\(index)]", "Bedrock does not return log probabilities.")
            default:
                guard knownIncludes.contains(name) else {
                    throw .value("include[\(index)]", "'\(name)' is not a value this gateway knows.")
                }
            }
        }
        return sealsReasoning
    }

    private static func readSampling(_ root: JSONObject, into translation: inout RequestTranslation) throws(OpenAIRequestError) {
        if let value = root.present("max_output_tokens") {
            guard let tokens = value.intValue else { throw .type("max_output_tokens", expected: "an integer") }
            guard tokens > 0 else { throw .value("max_output_tokens", "must be at least 1.") }
            translation.maxTokens = tokens
        }
        if let value = root.present("temperature") {
            guard let number = value.doubleValue else { throw .type("temperature", expected: "a number") }
            guard number >= 0, number <= 2 else { throw .value("temperature", "must be between 0 and 2.") }
            // OpenAI's scale is 0…2, Anthropic's 0…1 (Bedrock refuses more); clamp as the chat route does.
            translation.temperature = translation.isAnthropic ? min(number, 1) : number
        }
        if let value = root.present("top_p") {
            guard let number = value.doubleValue else { throw .type("top_p", expected: "a number") }
            guard number >= 0, number <= 1 else { throw .value("top_p", "must be between 0 and 1.") }
            translation.topP = number
        }
    }

    private static func readTools(
        _ root: JSONObject, into translation: inout RequestTranslation, namespaces: inout ToolNamespaces
    ) throws(OpenAIRequestError) {
        if let value = root.present("tools") {
            guard let array = value.arrayValue else { throw .type("tools", expected: "an array") }
            var names: Set<String> = []
            for (index, element) in array.enumerated() {
                let path = "tools[\(index)]"
                guard let tool = element.objectValue else { throw .type(path, expected: "an object") }
                if tool.present("type")?.stringValue == "namespace" {
                    for spec in try namespaceSpecs(tool, path: path, into: &namespaces) {
                        guard names.insert(spec.name).inserted else {
                            throw .value("\(path).tools", "'\(spec.name)' names a tool twice (a namespace's tools go to Bedrock as <namespace>__<name>).")
                        }
                        translation.tools.append(spec)
                    }
                    continue
                }
                let spec = try toolSpec(tool, path: path)
                guard names.insert(spec.name).inserted else {
                    throw .value("\(path).name", "tool names must be unique.")
                }
                translation.tools.append(spec)
            }
        }
        let expected = "expected 'auto', 'none', 'required' or {\"type\":\"function\",\"name\":…}."
        switch root.present("tool_choice") {
        case nil:
            break
        case .string("auto")?:
            translation.toolChoice = .auto
        case .string("none")?:
            translation.toolChoice = .none
        case .string("required")?:
            translation.toolChoice = .required
        case .object(let object)?:
            guard let type = object.present("type")?.stringValue else { throw .missing("tool_choice.type") }
            guard type == "function" else {
                throw .unsupported("tool_choice.type", "only function tools can be chosen; '\(type)' is not available on Bedrock.")
            }
            guard let name = object.present("name")?.stringValue else { throw .missing("tool_choice.name") }
            guard translation.tools.contains(where: { $0.name == name }) else {
                throw .value("tool_choice.name", "no tool named '\(name)' is in 'tools'.")
            }
            translation.toolChoice = .named(name)
        default:
            throw .value("tool_choice", expected)
        }
        if translation.toolChoice == .required, translation.tools.isEmpty {
            throw .value("tool_choice", "'required' needs at least one tool in 'tools'.")
        }
    }

    /// A Responses function tool (flat: `{"type":"function","name","description","parameters","strict"}`).
    private static func toolSpec(_ tool: JSONObject, path: String) throws(OpenAIRequestError) -> ConverseToolSpec {
        guard let typeValue = tool.present("type") else { throw .missing("\(path).type") }
        guard let type = typeValue.stringValue else { throw .type("\(path).type", expected: "a string") }
        guard type == "function" else {
            var hint = ""
            if type == "web_search" || type == "web_search_preview" {
                // Codex CLI sends web_search unless its config turns it off.
                hint = " (Codex CLI: set web_search = \"disabled\" in config.toml)"
            }
            throw .unsupported(
                "\(path).type",
                "tools of type '\(type)' are not supported; Bedrock runs only function tools, which the client executes\(hint)."
            )
        }
        guard let nameValue = tool.present("name") else { throw .missing("\(path).name") }
        guard let name = nameValue.stringValue, ToolName.isValid(name) else {
            throw .value("\(path).name", "tool names must match ^[a-zA-Z0-9_-]{1,64}$.")
        }
        var description: String?
        if let value = tool.present("description") {
            guard let text = value.stringValue else { throw .type("\(path).description", expected: "a string") }
            description = MessageConversion.isBlank(text) ? nil : text
        }
        // `strict` asks OpenAI to constrain decoding to the schema; Bedrock has no such switch, so
        // it is accepted (the schema still guides the model) but must be a boolean.
        _ = try bool(tool, "strict", path: "\(path).strict")
        let schema: ParsedJSON
        switch tool.present("parameters") {
        case nil:
            schema = ToolName.emptyParametersSchema
        case .object(let object)?:
            schema = .object(object)
        default:
            throw .type("\(path).parameters", expected: "a JSON Schema object")
        }
        return ConverseToolSpec(name: name, description: description, schema: schema, isCached: false)
    }

    /// A `namespace` tool (`{"type":"namespace","name","description","tools":[function tools]}`): its
    /// function tools, each under its flat Bedrock name (``ToolNamespaces``), the namespace's
    /// description before the tool's own.
    private static func namespaceSpecs(
        _ tool: JSONObject, path: String, into namespaces: inout ToolNamespaces
    ) throws(OpenAIRequestError) -> [ConverseToolSpec] {
        guard let nameValue = tool.present("name") else { throw .missing("\(path).name") }
        guard let namespace = nameValue.stringValue, ToolName.isValid(namespace) else {
            throw .value("\(path).name", "namespace names must match ^[a-zA-Z0-9_-]{1,64}$.")
        }
        let namespaceDescription = try string(tool, "description", path: "\(path).description").flatMap {
            MessageConversion.isBlank($0) ? nil : $0
        }
        guard let members = tool.present("tools") else { throw .missing("\(path).tools") }
        guard let array = members.arrayValue else { throw .type("\(path).tools", expected: "an array") }
        var specs: [ConverseToolSpec] = []
        for (index, element) in array.enumerated() {
            let memberPath = "\(path).tools[\(index)]"
            guard let member = element.objectValue else { throw .type(memberPath, expected: "an object") }
            var spec = try toolSpec(member, path: memberPath)
            let flat = ToolNamespaces.flatName(namespace: namespace, name: spec.name)
            guard ToolName.isValid(flat) else {
                throw .value("\(memberPath).name", "'\(flat)' (namespace and name) is longer than Bedrock's 64 characters.")
            }
            spec.name = namespaces.add(namespace: namespace, name: spec.name)
            if let namespaceDescription {
                spec.description = spec.description.map { "\(namespaceDescription)\n\n\($0)" } ?? namespaceDescription
            }
            specs.append(spec)
        }
        return specs
    }

    /// `text.format` (flat in the Responses API: `{"type":"json_schema","name","schema","description","strict"}`);
    /// `text.verbosity` has no Bedrock equivalent and is ignored.
    private static func readTextFormat(_ root: JSONObject, into translation: inout RequestTranslation) throws(OpenAIRequestError) {
        guard let value = root.present("text") else { return }
        guard let text = value.objectValue else { throw .type("text", expected: "an object") }
        guard let formatValue = text.present("format") else { return }
        guard let format = formatValue.objectValue else { throw .type("text.format", expected: "an object") }
        switch format.present("type")?.stringValue {
        case "text":
            return
        case "json_object":
            translation.responseFormatSchema = .object(JSONObject(members: [("type", .string("object"))]))
        case "json_schema":
            switch format.present("schema") {
            case nil:
                throw .missing("text.format.schema")
            case .object(let schema)?:
                if let type = schema.present("type"), type.stringValue != "object" {
                    // Tool input is always an object; OpenAI's structured outputs demand the same root.
                    throw .value("text.format.schema", "the root schema must be of type 'object'.")
                }
                translation.responseFormatSchema = .object(schema)
            default:
                throw .type("text.format.schema", expected: "a JSON Schema object")
            }
            let name = format.present("name")?.stringValue
            let detail = format.present("description")?.stringValue
            translation.responseFormatDescription = [name.map { "Schema: \($0)." }, detail].compactMap { $0 }.joined(separator: " ")
        default:
            throw .value("text.format.type", "expected 'text', 'json_object' or 'json_schema'.")
        }
        if translation.tools.contains(where: { $0.name == ChatRequestMapper.responseFormatToolName.description }) {
            throw .value("tools", "the tool name '\(ChatRequestMapper.responseFormatToolName)' is reserved when text.format asks for JSON.")
        }
    }

    /// The thinking budget `reasoning.effort` asks for; nil for none.
    private static func readReasoning(_ root: JSONObject) throws(OpenAIRequestError) -> Int? {
        guard let value = root.present("reasoning") else { return nil }
        guard let reasoning = value.objectValue else { throw .type("reasoning", expected: "an object") }
        // `summary` (auto/concise/detailed) and the deprecated `generate_summary` choose how OpenAI
        // summarises; Bedrock returns the thinking itself, which Sluice streams as the summary.
        guard let effortValue = reasoning.present("effort") else { return nil }
        guard let effort = effortValue.stringValue else { throw .type("reasoning.effort", expected: "a string") }
        guard let budget = thinkingBudget(effort: effort) else {
            throw .value("reasoning.effort", "expected 'none', 'minimal', 'low', 'medium', 'high' or 'xhigh'.")
        }
        return budget
    }
}
