import Foundation
import NIOCore
import StreamCore

// libFuzzer entry point for the OpenAI request mapper (README: Fuzzing).
//
// The whole input is a `/v1/chat/completions` request body, as ChatCompletionsRoute hands it over
// after `collect(upTo:)`. Mapping must either succeed or throw an `OpenAIRequestError` (the typed
// throw makes anything else impossible to express); crashes, hangs and oversized allocations are
// caught by libFuzzer's own limits. Besides those, it traps when a property the gateway relies on
// breaks:
// - the same body maps to the same bytes every time, and automatic cache points never change whether
//   a body is accepted or the error it gets (aliases may: they change the model family, and some
//   checks are Anthropic-only, so the aliased mapping is held to the output checks alone);
// - a successful mapping is one JSON object (parsed by Foundation, independent of our writer) with
//   only Converse's top-level fields, so no OpenAI-only field (`stream_options`, `model`, …) leaks;
// - its messages start with a user turn and alternate, none is empty, no text block is blank and
//   every tool-use id matches Bedrock's `[a-zA-Z0-9_-]{1,64}` (MessageConversion's promises);
// - inference settings hold what Bedrock accepts (`maxTokens` ≥ 1 and above a thinking budget).
private let plainMapper = ChatRequestMapper()
private let cachingMapper = ChatRequestMapper(configuration: .init(addsAutomaticCachePoints: true))
private let aliasingMapper = ChatRequestMapper(
    configuration: .init(
        modelAliases: ["claude": "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "nova": "us.amazon.nova-pro-v1:0"],
        addsAutomaticCachePoints: true
    )
)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzChatRequestMapper(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let body = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    let plain = outcome(of: plainMapper, body)
    let again = outcome(of: plainMapper, body)
    let caching = outcome(of: cachingMapper, body)
    switch (plain, again, caching) {
    case (.success(let first), .success(let second), .success(let cached)):
        precondition(first.body == second.body, "mapping the same body twice gave different bytes")
        precondition(first.modelID == cached.modelID && first.isStreaming == cached.isStreaming,
            "automatic cache points changed what the client asked for")
        check(first)
        check(cached)
    case (.failure(let first), .failure(let second), .failure(let cached)):
        precondition(first == second, "mapping the same body twice gave different errors")
        precondition(first.code == cached.code && first.param == cached.param, "automatic cache points changed the error")
        precondition(!first.message.isEmpty, "an error without a message")
    default:
        preconditionFailure("the same body was accepted and refused")
    }
    if case .success(let aliased) = outcome(of: aliasingMapper, body) { check(aliased) }
    return 0
}

private func outcome(of mapper: ChatRequestMapper, _ body: ByteBuffer) -> Result<ConverseRequest, OpenAIRequestError> {
    do throws(OpenAIRequestError) {
        return .success(try mapper.map(body))
    } catch {
        return .failure(error)
    }
}

/// What Converse takes at the top level; everything else would be an OpenAI field leaking through.
private let converseFields: Set<String> = ["system", "messages", "inferenceConfig", "toolConfig", "additionalModelRequestFields"]
private let inferenceFields: Set<String> = ["maxTokens", "temperature", "topP", "stopSequences"]

private func check(_ request: ConverseRequest) {
    precondition(!request.modelID.isEmpty && !request.requestedModel.isEmpty, "an empty model id")
    let json: Any
    do {
        json = try JSONSerialization.jsonObject(with: Data(request.body.readableBytesView))
    } catch {
        preconditionFailure("the Converse body is not valid JSON: \(error)")
    }
    guard let root = json as? [String: Any] else { preconditionFailure("the Converse body is not an object") }
    precondition(Set(root.keys).isSubset(of: converseFields), "unexpected top-level fields \(root.keys.sorted())")

    guard let messages = root["messages"] as? [[String: Any]], !messages.isEmpty else {
        preconditionFailure("no messages")
    }
    for (index, message) in messages.enumerated() {
        precondition(message["role"] as? String == (index % 2 == 0 ? "user" : "assistant"), "turns do not alternate from user")
        guard let content = message["content"] as? [[String: Any]], !content.isEmpty else {
            preconditionFailure("message \(index) has no content")
        }
        precondition(content.contains { $0["cachePoint"] == nil }, "message \(index) holds only cache points")
        checkBlocks(content)
    }
    if let system = root["system"] as? [[String: Any]] { checkBlocks(system) }

    var thinkingBudget: Int?
    if let fields = root["additionalModelRequestFields"] as? [String: Any],
        let thinking = fields["thinking"] as? [String: Any]
    {
        thinkingBudget = thinking["budget_tokens"] as? Int
        precondition(thinkingBudget.map { $0 >= ChatRequestMapper.minimumThinkingBudget } == true, "a thinking budget below the minimum")
        precondition(request.isThinkingEnabled, "thinking sent but not flagged")
    }
    if let inference = root["inferenceConfig"] as? [String: Any] {
        precondition(Set(inference.keys).isSubset(of: inferenceFields), "unexpected inferenceConfig fields \(inference.keys.sorted())")
        if let maxTokens = inference["maxTokens"] {
            guard let maxTokens = maxTokens as? Int, maxTokens >= 1 else { preconditionFailure("maxTokens below 1") }
            if let thinkingBudget { precondition(maxTokens > thinkingBudget, "maxTokens does not exceed the thinking budget") }
        }
    } else {
        precondition(thinkingBudget == nil, "thinking without maxTokens")
    }
}

private func checkBlocks(_ blocks: [[String: Any]]) {
    for block in blocks {
        if let text = block["text"] as? String {
            // Blank as MessageConversion.isBlank defines it (ASCII whitespace): what Bedrock refuses.
            precondition(!text.utf8.allSatisfy { [0x20, 0x0A, 0x0D, 0x09].contains($0) }, "a blank text block")
        }
        if let toolUse = block["toolUse"] as? [String: Any] {
            precondition(isBedrockToolUseID(toolUse["toolUseId"]), "a tool-use id Bedrock refuses")
        }
        if let toolResult = block["toolResult"] as? [String: Any] {
            precondition(isBedrockToolUseID(toolResult["toolUseId"]), "a tool-result id Bedrock refuses")
            if let content = toolResult["content"] as? [[String: Any]] {
                precondition(!content.isEmpty, "an empty tool result")
                checkBlocks(content)
            }
        }
    }
}

private func isBedrockToolUseID(_ value: Any?) -> Bool {
    guard let id = value as? String else { return false }
    return (1...64).contains(id.utf8.count)
        && id.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
}

// SwiftPM links an executable target's entry point under `<module>_main` and aliases `main` to it,
// which would hide libFuzzer's own `main`. So that entry point hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("ChatRequestMapperFuzzer_main")
public func fuzzerMain(
    _ argc: CInt,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> CInt {
    var argc = argc
    var argv = argv
    return runFuzzerDriver(&argc, &argv) { data, size in fuzzChatRequestMapper(data, size) }
}
