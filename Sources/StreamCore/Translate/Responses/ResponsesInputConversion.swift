/// Responses API `input` items → Converse blocks, appended to a ``MessageConversion`` so turns merge
/// and normalize exactly as chat messages do (see `MessageConversion` for the rules).
///
/// | Item | Converse |
/// |---|---|
/// | `message`, role `system`/`developer` | `system` text blocks |
/// | `message`, role `user` | user turn: text, images (data URLs only) |
/// | `message`, role `assistant` | assistant turn: text (`output_text`, `refusal`) |
/// | `function_call` | assistant `toolUse` (id = `call_id`, rewritten to Bedrock's alphabet as for chat) |
/// | `function_call_output` | user `toolResult` (text or text and image parts; `(empty)` when empty) |
/// | `reasoning` with `encrypted_content` | assistant `reasoningContent`, opened by the gateway's opener |
/// | `reasoning` without it | dropped: unsigned reasoning cannot go back to Bedrock |
/// | `item_reference`, built-in tool calls, anything else | refused, naming `input[i].type` |
struct ResponsesInputConversion {
    let opener: (any ResponsesReasoningOpener)?

    init(opener: (any ResponsesReasoningOpener)?) {
        self.opener = opener
    }

    mutating func convert(_ item: ParsedJSON, at index: Int, into conversation: inout MessageConversion) throws(OpenAIRequestError) {
        let path = "input[\(index)]"
        guard let object = item.objectValue else { throw .type(path, expected: "an input item object") }
        let type: String
        if let typeValue = object.present("type") {
            guard let name = typeValue.stringValue else { throw .type("\(path).type", expected: "a string") }
            type = name
        } else if object.present("role") != nil {
            type = "message"  // EasyInputMessage: `{"role","content"}` without a type
        } else {
            throw .missing("\(path).type")
        }
        switch type {
        case "message":
            try convertMessage(object, path: path, into: &conversation)
        case "function_call":
            let callID = try Self.requiredString(object, "call_id", path: path)
            var name = try Self.requiredString(object, "name", path: path)
            switch object.present("namespace") {
            case nil, .null?:
                break
            case .string(let namespace)?:
                // Bedrock knows the call by the flat name its tool was sent under (ToolNamespaces).
                name = ToolNamespaces.flatName(namespace: namespace, name: name)
            default:
                throw .type("\(path).namespace", expected: "a string")
            }
            let input = try Self.arguments(object, path: path)
            conversation.append([.toolUse(id: ToolUseID.sanitize(callID), name: name, input: input)], isUser: false)
            conversation.noteToolUse(name: name)
        case "function_call_output":
            let callID = try Self.requiredString(object, "call_id", path: path)
            var content: [ConverseBlock] = []
            switch object.present("output") {
            case .string(let text)?:
                if !MessageConversion.isBlank(text) { content.append(.text(text)) }
            case .array(let parts)?:
                for (partIndex, part) in parts.enumerated() {
                    try appendPart(part, path: "\(path).output[\(partIndex)]", allowsImages: true, to: &content)
                }
            case nil:
                throw .missing("\(path).output")
            default:
                throw .type("\(path).output", expected: "a string or an array of content parts")
            }
            if content.isEmpty { content = [.text(MessageConversion.emptyToolResultText)] }
            conversation.append([.toolResult(id: ToolUseID.sanitize(callID), content: content)], isUser: true)
            conversation.noteToolResult()
        case "reasoning":
            guard let sealedValue = object.present("encrypted_content") else { return }
            guard let sealed = sealedValue.stringValue else { throw .type("\(path).encrypted_content", expected: "a string") }
            guard let reasoning = opener?.open(sealed) else {
                throw .value(
                    "\(path).encrypted_content",
                    "this reasoning item was not produced by this gateway (or was altered) and cannot be replayed."
                )
            }
            conversation.append([reasoning.block], isUser: false)
        case "item_reference":
            throw .unsupported("\(path).type", "item references need a response store; send the items themselves.")
        default:
            throw .unsupported("\(path).type", "input items of type '\(type)' are not supported; Bedrock runs only function tools.")
        }
    }

    private func convertMessage(_ object: JSONObject, path: String, into conversation: inout MessageConversion) throws(OpenAIRequestError) {
        guard let roleValue = object.present("role") else { throw .missing("\(path).role") }
        guard let role = roleValue.stringValue else { throw .type("\(path).role", expected: "a string") }
        let isSystem: Bool
        let isUser: Bool
        switch role {
        case "system", "developer": (isSystem, isUser) = (true, false)
        case "user": (isSystem, isUser) = (false, true)
        case "assistant": (isSystem, isUser) = (false, false)
        default:
            throw .value("\(path).role", "the role must be one of 'system', 'developer', 'user' or 'assistant'.")
        }
        var blocks: [ConverseBlock] = []
        switch object.present("content") {
        case .string(let text)?:
            if !MessageConversion.isBlank(text) { blocks.append(.text(text)) }
        case .array(let parts)?:
            for (partIndex, part) in parts.enumerated() {
                try appendPart(part, path: "\(path).content[\(partIndex)]", allowsImages: isUser, to: &blocks)
            }
        case nil:
            throw .missing("\(path).content")
        default:
            throw .type("\(path).content", expected: "a string or an array of content parts")
        }
        if isSystem {
            conversation.appendSystem(blocks)
        } else {
            conversation.append(blocks, isUser: isUser)
        }
    }

    /// A content part: `input_text`/`output_text` (text), `refusal`, `input_image` (a data URL).
    private func appendPart(
        _ part: ParsedJSON,
        path: String,
        allowsImages: Bool,
        to blocks: inout [ConverseBlock]
    ) throws(OpenAIRequestError) {
        guard let object = part.objectValue else { throw .type(path, expected: "a content part object") }
        guard let typeValue = object.present("type") else { throw .missing("\(path).type") }
        guard let type = typeValue.stringValue else { throw .type("\(path).type", expected: "a string") }
        switch type {
        case "input_text", "output_text", "text":
            let text = try Self.requiredString(object, "text", path: path)
            if !MessageConversion.isBlank(text) { blocks.append(.text(text)) }
        case "refusal":
            let text = try Self.requiredString(object, "refusal", path: path)
            if !MessageConversion.isBlank(text) { blocks.append(.text(text)) }
        case "input_image" where allowsImages:
            if object.present("file_id") != nil, object.present("image_url") == nil {
                throw .unsupported("\(path).file_id", "uploaded files are not available; send the image as a data: URL in 'image_url'.")
            }
            let url = try Self.requiredString(object, "image_url", path: path)
            do throws(ImageDataURL.Failure) {
                let image = try ImageDataURL(url: url)
                blocks.append(.image(format: image.format, base64: image.base64))
            } catch {
                if case .notDataURL = error { throw .unsupported("\(path).image_url", error.reason) }
                throw .value("\(path).image_url", error.reason)
            }
        default:
            throw .unsupported("\(path).type", "content parts of type '\(type)' are not supported here.")
        }
    }

    private static func requiredString(_ object: JSONObject, _ key: String, path: String) throws(OpenAIRequestError) -> String {
        guard let value = object.present(key) else { throw .missing("\(path).\(key)") }
        guard let text = value.stringValue else { throw .type("\(path).\(key)", expected: "a string") }
        return text
    }

    /// `arguments`: a JSON string (blank means no arguments, as tools without parameters often get).
    private static func arguments(_ object: JSONObject, path: String) throws(OpenAIRequestError) -> ParsedJSON {
        switch object.present("arguments") {
        case nil:
            return .object(JSONObject())
        case .string(let arguments)?:
            if MessageConversion.isBlank(arguments) { return .object(JSONObject()) }
            let input: ParsedJSON
            do throws(JSONParseError) {
                input = try JSONParser.parse(arguments, maximumNestingDepth: ChatRequestMapper.maximumArgumentsNestingDepth)
            } catch {
                throw .value("\(path).arguments", "the arguments are not valid JSON (\(error.reason)).")
            }
            // Converse tool input is an object; a model never produces anything else for a function.
            guard input.objectValue != nil else { throw .value("\(path).arguments", "the arguments must be a JSON object.") }
            return input
        default:
            throw .type("\(path).arguments", expected: "a JSON string")
        }
    }
}
