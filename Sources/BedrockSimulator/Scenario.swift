internal import StreamCore

/// How the simulator answers one request: content shape, timing, and the faults to inject.
///
/// A request's scenario is built in three layers, later layers overriding earlier ones key by key:
/// 1. ``SimulatorConfiguration/defaultScenario``;
/// 2. every `[[sim key=value key=value]]` directive found anywhere in the request body bytes, in order
///    (it sits in prompt text, so it survives the gateway's OpenAI → Converse translation; `\"` and
///    `\\` inside a directive are read as `"` and `\`, since the directive lives in a JSON string);
/// 3. the header `x-sluice-sim-scenario: key=value,key=value`.
///
/// Pairs are separated by commas or whitespace. An unknown key or a bad value is answered with
/// 400 `ValidationException` whose message starts with `[sim]`, so a typo never silently runs the
/// default scenario.
///
/// ## Keys
/// | key | values (default) | effect |
/// |---|---|---|
/// | `chunks` | 0…1,000,000 (8) | number of text deltas; 0 = no text block |
/// | `chunk_size` | 1…4,096 (12) | characters (grapheme clusters) per text delta. The text is a fixed corpus with quotes, backslashes, tabs, newlines and non-ASCII (é, ✓, 日本語, 🚀), started at an offset derived from the request body, so the same body always gets the same text |
/// | `gap_ms` | 0…60,000 (0) | pause before every frame after the first |
/// | `first_byte_ms` | 0…600,000 (0) | pause before the response head (errors included) |
/// | `reasoning` | 0/1/`auto` (0) | a thinking block first: 3 reasoning deltas, then a signature delta. `auto`: only when the request enables thinking (Anthropic `thinking.type` `enabled` or `adaptive`; Converse `additionalModelRequestFields.thinking`), as a real model does |
/// | `accept_betas` | comma-separated beta values, `*` for all, empty for none (all) | the `anthropic_beta` values the model takes (Anthropic `anthropic_beta`, Converse `additionalModelRequestFields.anthropic_beta`); any other value is answered 400 `ValidationException` `{"message":"invalid beta flag"}`, as Bedrock does. Overrides ``SimulatorConfiguration/acceptedBetas`` |
/// | `tools` | 0…64 (0) | tool calls after the text. Names come from the request's tools in turn (Converse `toolConfig.tools[].toolSpec.name`, Anthropic `tools[].name`), else `get_weather`. Input is streamed in 4 pieces; the stop reason becomes `tool_use` |
/// | `tool_input` | a JSON object | the tool input to use instead of `{"location":"Zürich, \"CH\"","unit":"celsius","days":3}`; may contain commas and spaces |
/// | `stop` | `end_turn`, `max_tokens`, `stop_sequence`, `guardrail_intervened`, `content_filtered` | the stop reason (otherwise `end_turn`, or `tool_use` with tools); Anthropic answers carry the same string. With `stop_sequence` the answer names the request's first stop sequence (Converse `inferenceConfig.stopSequences`, Anthropic `stop_sequences`), else `STOP` |
/// | `status` | 400, 403, 404, 408, 424, 429, 500, 503 | answer this HTTP error instead (ValidationException, AccessDeniedException, ResourceNotFoundException, ModelTimeoutException, ModelErrorException, ThrottlingException, InternalServerException, ServiceUnavailableException) |
/// | `retry_after` | 0…3,600 seconds | adds `Retry-After` to a `status` error |
/// | `exception_after` | frames ≥ 0 | after this many frames send an in-stream exception frame and end the body cleanly |
/// | `exception` | `throttlingException`, `modelStreamErrorException` (default; its payload adds `originalStatusCode`, `originalMessage`), `internalServerException`, `validationException`, `serviceUnavailableException`, `modelTimeoutException` | which exception; alone it means `exception_after=0` |
/// | `corrupt_after` | frames ≥ 0 | after this many good frames send one frame whose message CRC is wrong, then end the body |
/// | `drop_after` | frames ≥ 0 | after this many frames close the connection without ending the body (chunked encoding never terminated) |
/// | `stamps` | 0/1 (0) | prefix every text delta with `⟦t=<CLOCK_MONOTONIC ns>⟧`, read right before that frame is written (non-streaming answers get one stamp at the start of the text) |
/// | `cache_read` / `cache_write` | tokens ≥ 0 | report these cache token counts |
/// | `echo` | 0/1 (0) | the answer text is the last user text (with any `[[sim …]]` directive removed), cut into `chunk_size` pieces; `chunks` is then ignored |
///
/// Frame counts for the `*_after` keys count every frame of the response, `messageStart` /
/// `message_start` being frame 0. A count past the end of the stream acts after the last frame
/// (`corrupt_after` then corrupts the last frame). When several apply at the same frame,
/// `exception_after` wins over `corrupt_after`, which wins over `drop_after`. These four keys only
/// affect the streaming routes, so a client that falls back from a broken stream to `/invoke` with the
/// same body (as Claude Code does, CLAUDE_CODE.md §5) gets a normal answer. Exception frames carry
/// `{"message":…}` and no `"p"` padding; event frames always carry `"p"`.
///
/// ## Conversation rules
/// - When the last message carries a tool result (Converse `toolResult`, Anthropic `tool_result`),
///   the answer is text only (`tools` is ignored, stop reason `end_turn` unless `stop` says
///   otherwise), so a client's tool loop ends.
///
/// ## Usage, so tests can predict it
/// - `inputTokens` = request body bytes / 4, at least 1 (count-tokens: the decoded `invokeModel` body,
///   or the compact `converse` object, / 4, at least 1).
/// - `outputTokens` = the number of deltas that carry content: text deltas + reasoning text deltas
///   + tool input deltas (signature deltas do not count). Non-streaming answers report the count the
///   stream would have had.
/// - `totalTokens` = input + output + cache read + cache write.
/// - Anthropic `message_start` reports `output_tokens: 1`, as Anthropic does; `message_delta` carries
///   the final count.
///
/// ```
/// x-sluice-sim-scenario: chunks=40,gap_ms=5,stamps=1
/// "content": "Plan the trip [[sim tools=2 reasoning=1 tool_input={\"city\":\"Oslo\"}]]"
/// ```
package struct Scenario: Sendable, Hashable {
    package var chunks = 8
    package var chunkSize = 12
    package var gap: Duration = .zero
    package var firstByteDelay: Duration = .zero
    package var reasoning = false
    /// `reasoning=auto`: a thinking block only when the request enables thinking.
    package var reasoningFollowsThinking = false
    /// `accept_betas=…`: the beta values the model takes; `nil` leaves it to the configuration.
    package var acceptedBetas: BetaAcceptance?
    package var tools = 0
    /// Compact JSON text of an object.
    package var toolInput: String?
    package var stop: String?
    package var status: Int?
    package var retryAfterSeconds: Int?
    package var exceptionAfter: Int?
    package var exception: String?
    package var corruptAfter: Int?
    package var dropAfter: Int?
    package var stamps = false
    package var cacheReadInputTokens: Int?
    package var cacheWriteInputTokens: Int?
    package var echo = false

    package init() {}

    /// This scenario with the pairs in `text` applied.
    package init(parsing text: some StringProtocol, over base: Scenario = Scenario()) throws(ScenarioError) {
        self = base
        try self.apply(text)
    }

    /// The header that selects a scenario per request.
    package static let headerName = "x-sluice-sim-scenario"

    package static let stopReasons: Set<String> = [
        "end_turn", "max_tokens", "stop_sequence", "guardrail_intervened", "content_filtered",
    ]
    package static let errorStatuses: Set<Int> = [400, 403, 404, 408, 424, 429, 500, 503]
    package static let exceptions: Set<String> = [
        "throttlingException", "modelStreamErrorException", "internalServerException", "validationException",
        "serviceUnavailableException", "modelTimeoutException",
    ]

    /// The in-stream exception to send, and after how many frames, if any.
    var effectiveException: (type: String, afterFrames: Int)? {
        switch (self.exception, self.exceptionAfter) {
        case (nil, nil): nil
        case (let type?, nil): (type, 0)
        case (let type, let after?): (type ?? "modelStreamErrorException", after)
        }
    }

    /// Applies `key=value` pairs separated by commas or whitespace.
    package mutating func apply(_ text: some StringProtocol) throws(ScenarioError) {
        var tokenizer = PairTokenizer(Array(text.utf8))
        while let pair = try tokenizer.next() {
            try self.set(pair.key, to: pair.value)
        }
    }

    private mutating func set(_ key: String, to value: String) throws(ScenarioError) {
        func integer(_ range: ClosedRange<Int>) throws(ScenarioError) -> Int {
            guard let number = Int(value), range.contains(number) else {
                throw ScenarioError("\(key) must be an integer in \(range.lowerBound)...\(range.upperBound), not '\(value)'")
            }
            return number
        }
        func flag() throws(ScenarioError) -> Bool {
            switch value {
            case "1", "true": return true
            case "0", "false": return false
            default: throw ScenarioError("\(key) must be 0 or 1, not '\(value)'")
            }
        }
        let frames = 0...10_000_000
        switch key {
        case "chunks": self.chunks = try integer(0...1_000_000)
        case "chunk_size": self.chunkSize = try integer(1...4096)
        case "gap_ms": self.gap = .milliseconds(try integer(0...60_000))
        case "first_byte_ms": self.firstByteDelay = .milliseconds(try integer(0...600_000))
        case "reasoning":
            if value == "auto" {
                (self.reasoning, self.reasoningFollowsThinking) = (false, true)
            } else {
                self.reasoning = try flag()
                self.reasoningFollowsThinking = false
            }
        case "accept_betas": self.acceptedBetas = BetaAcceptance(list: value)
        case "tools": self.tools = try integer(0...64)
        case "tool_input":
            guard let parsed = try? ParsedJSON.parse(value), parsed.isObject else {
                throw ScenarioError("tool_input must be a JSON object, not '\(value)'")
            }
            self.toolInput = parsed.compactText
        case "stop":
            guard Self.stopReasons.contains(value) else {
                throw ScenarioError("stop must be one of \(Self.stopReasons.sorted().joined(separator: ", ")), not '\(value)'")
            }
            self.stop = value
        case "status":
            let status = try integer(100...599)
            guard Self.errorStatuses.contains(status) else {
                throw ScenarioError("status must be one of \(Self.errorStatuses.sorted().map(String.init).joined(separator: ", "))")
            }
            self.status = status
        case "retry_after": self.retryAfterSeconds = try integer(0...3600)
        case "exception_after": self.exceptionAfter = try integer(frames)
        case "exception":
            guard Self.exceptions.contains(value) else {
                throw ScenarioError("exception must be one of \(Self.exceptions.sorted().joined(separator: ", ")), not '\(value)'")
            }
            self.exception = value
        case "corrupt_after": self.corruptAfter = try integer(frames)
        case "drop_after": self.dropAfter = try integer(frames)
        case "stamps": self.stamps = try flag()
        case "cache_read": self.cacheReadInputTokens = try integer(0...100_000_000)
        case "cache_write": self.cacheWriteInputTokens = try integer(0...100_000_000)
        case "echo": self.echo = try flag()
        default: throw ScenarioError("unknown scenario key '\(key)'")
        }
    }
}

/// Which `anthropic_beta` values a simulated model takes.
package enum BetaAcceptance: Sendable, Hashable {
    /// Every value (Bedrock's behaviour for values a model knows; the simulator's default).
    case all
    /// Only these.
    case only(Set<String>)

    /// `*` → all; otherwise the comma-separated values (an empty list accepts none).
    package init(list: String) {
        let values = list.split(separator: ",").map { String($0) }.filter { !$0.isEmpty }
        self = values == ["*"] ? .all : .only(Set(values))
    }

    /// The first requested value the model does not take, if any.
    package func firstRefused(in requested: [String]) -> String? {
        guard case .only(let accepted) = self else { return nil }
        return requested.first { !accepted.contains($0) }
    }
}

/// A scenario that cannot be parsed; answered as 400 ValidationException.
package struct ScenarioError: Error, Hashable, Sendable, CustomStringConvertible {
    package var description: String

    init(_ description: String) {
        self.description = "[sim] " + description
    }
}

extension Scenario {
    /// Every `[[sim …]]` directive in `body`, applied in order.
    ///
    /// The body is JSON, so the directive sits inside a JSON string: `\"` and `\\` are unescaped
    /// first, which lets `tool_input={\"a\":1}` in a prompt mean `{"a":1}`.
    mutating func applyDirectives(in body: [UInt8]) throws(ScenarioError) {
        for directive in Self.directives(in: body) {
            try self.apply(String(decoding: Self.unescapeJSON(directive), as: UTF8.self))
        }
    }

    static let directiveOpen: [UInt8] = Array("[[sim".utf8)
    static let directiveClose: [UInt8] = Array("]]".utf8)

    /// The inner bytes of each `[[sim …]]` in `bytes`.
    static func directives(in bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var found: [ArraySlice<UInt8>] = []
        var index = 0
        while let open = Self.firstIndex(of: Self.directiveOpen, in: bytes, from: index) {
            let start = open + Self.directiveOpen.count
            // `[[simulate` is not a directive: the marker must be followed by a space or the end.
            guard start < bytes.count, bytes[start] == UInt8(ascii: " ") || bytes[start] == UInt8(ascii: "]") else {
                index = start
                continue
            }
            guard let close = Self.firstIndex(of: Self.directiveClose, in: bytes, from: start) else { break }
            found.append(bytes[start..<close])
            index = close + Self.directiveClose.count
        }
        return found
    }

    /// `text` without its `[[sim …]]` directives and surrounding whitespace: what `echo=1` repeats.
    static func removingDirectives(from text: String) -> String {
        let bytes = Array(text.utf8)
        var output: [UInt8] = []
        var index = 0
        while let open = Self.firstIndex(of: Self.directiveOpen, in: bytes, from: index),
            let close = Self.firstIndex(of: Self.directiveClose, in: bytes, from: open + Self.directiveOpen.count)
        {
            output.append(contentsOf: bytes[index..<open])
            index = close + Self.directiveClose.count
        }
        output.append(contentsOf: bytes[index...])
        var result = String(decoding: output, as: UTF8.self)
        while result.last?.isWhitespace == true { result.removeLast() }
        while result.first?.isWhitespace == true { result.removeFirst() }
        return result
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard needle.count <= haystack.count, start <= haystack.count - needle.count else { return nil }
        var index = start
        while index <= haystack.count - needle.count {
            if haystack[index] == needle[0], haystack[index..<index + needle.count].elementsEqual(needle) {
                return index
            }
            index += 1
        }
        return nil
    }

    private static func unescapeJSON(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\"), index + 1 < bytes.endIndex {
                let next = bytes[index + 1]
                switch next {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"):
                    output.append(next)
                    index += 2
                    continue
                case UInt8(ascii: "n"), UInt8(ascii: "t"), UInt8(ascii: "r"):
                    output.append(UInt8(ascii: " "))
                    index += 2
                    continue
                default:
                    break
                }
            }
            output.append(byte)
            index += 1
        }
        return output
    }
}

/// Splits `key=value` pairs; a value starting with `{` or `[` runs to its matching bracket, so JSON
/// values may contain commas and spaces.
private struct PairTokenizer {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    private static func isSeparator(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: ",") || byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
            || byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r")
    }

    mutating func next() throws(ScenarioError) -> (key: String, value: String)? {
        while self.index < self.bytes.count, Self.isSeparator(self.bytes[self.index]) { self.index += 1 }
        guard self.index < self.bytes.count else { return nil }
        let keyStart = self.index
        while self.index < self.bytes.count, self.bytes[self.index] != UInt8(ascii: "="),
            !Self.isSeparator(self.bytes[self.index])
        {
            self.index += 1
        }
        let key = String(decoding: self.bytes[keyStart..<self.index], as: UTF8.self)
        guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "=") else {
            throw ScenarioError("expected key=value, found '\(key)'")
        }
        self.index += 1
        let valueStart = self.index
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "{") || self.bytes[self.index] == UInt8(ascii: "[") {
            try self.skipBracketed()
        } else {
            while self.index < self.bytes.count, !Self.isSeparator(self.bytes[self.index]) { self.index += 1 }
            // A list value (`accept_betas=a,b`) runs on over commas while what follows is not itself
            // a `key=value` pair, so `accept_betas=a,b,chunks=3` still reads `chunks`.
            while self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ",") {
                var end = self.index + 1
                var hasEquals = false
                while end < self.bytes.count, !Self.isSeparator(self.bytes[end]) {
                    if self.bytes[end] == UInt8(ascii: "=") { hasEquals = true }
                    end += 1
                }
                guard end > self.index + 1, !hasEquals else { break }
                self.index = end
            }
        }
        return (key, String(decoding: self.bytes[valueStart..<self.index], as: UTF8.self))
    }

    private mutating func skipBracketed() throws(ScenarioError) {
        var depth = 0
        var inString = false
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            self.index += 1
            if inString {
                if byte == UInt8(ascii: "\\") {
                    self.index += 1
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return }
            default: break
            }
        }
        throw ScenarioError("unterminated JSON value")
    }
}
