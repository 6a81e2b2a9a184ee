public import NIOCore

/// Turns one Bedrock ConverseStream into OpenAI `chat.completion.chunk` server-sent events, frame by
/// frame, as the frames arrive.
///
/// One value per stream: it holds the chunk id, creation time, the model name the client asked for,
/// and the map from Bedrock content blocks to OpenAI tool-call indexes. Each decoded message is
/// translated into bytes appended to a caller-owned buffer, so one upstream read becomes one
/// downstream write.
///
/// ```swift
/// var translator = ChatChunkTranslator(options: .init(id: "chatcmpl-…", created: now, model: "claude-sonnet"))
/// var out = ByteBuffer()
/// while let message = try decoder.next() { translator.translate(message, into: &out) }
/// // at the end of the upstream body:
/// translator.finish(into: &out)
/// ```
///
/// The hot path (text, argument and reasoning deltas) copies the escaped JSON string bytes from the
/// frame straight into the output: no `String`, no Foundation JSON, no allocation per chunk.
///
/// Mapping (DESIGN.md, "Wire contracts"): `messageStart` → a first chunk with `role`; text →
/// `delta.content`; a tool-use block start → `delta.tool_calls[{index,id,type,function:{name,arguments:""}}]`
/// and its input deltas → argument fragments under the same `index`, a dense counter of tool blocks in
/// the order they start (never derived from `contentBlockIndex`); reasoning text →
/// `delta.reasoning_content`; signatures and redacted reasoning → `delta.thinking_blocks`;
/// `messageStop` → `finish_reason`; `metadata` → the usage chunk when asked for; then `[DONE]`. An
/// exception or error frame becomes `data: {"error":{…}}` and the stream ends without `[DONE]`.
public struct ChatChunkTranslator {
    public struct Options: Sendable {
        /// The chunk id, the same on every chunk (`chatcmpl-…`).
        public var id: String
        /// Unix seconds, the same on every chunk.
        public var created: Int
        /// The model name as the client wrote it.
        public var model: String
        /// Whether the client set `stream_options.include_usage`.
        public var includeUsage: Bool
        /// The forced tool that emulates `response_format`: its input streams out as `content`.
        public var responseFormatToolName: String?

        public init(id: String, created: Int, model: String, includeUsage: Bool = false, responseFormatToolName: String? = nil) {
            self.id = id
            self.created = created
            self.model = model
            self.includeUsage = includeUsage
            self.responseFormatToolName = responseFormatToolName
        }
    }

    /// How the stream ended, once it has.
    public enum Ending: Hashable, Sendable {
        /// `messageStop` arrived and `[DONE]` was written.
        case completed
        /// An exception or error frame, a malformed event, or a failure reported with ``fail(_:into:)``:
        /// an error event was written.
        case failed(code: String)
    }

    /// The usage the `metadata` event reported, if it came.
    public private(set) var usage: TokenUsage?
    /// Bytes of generated text, reasoning and tool arguments so far (escaped as they arrived): what
    /// the output is estimated from when a stream ends before its usage event.
    public private(set) var producedBytes = 0
    /// Bedrock's stop reason mapped to OpenAI's `finish_reason`, once `messageStop` came.
    package private(set) var finishReason: FinishReason?
    /// Set once the stream has ended; later input is ignored.
    public private(set) var ending: Ending?
    /// Whether any chunk has been written yet.
    public private(set) var hasWrittenChunk = false

    private let options: Options
    /// `data: {"id":"…","object":"chat.completion.chunk","created":…,"model":"…"`, built once.
    private let head: [UInt8]
    private let responseFormatToolName: ByteBuffer?
    /// (contentBlockIndex, tool-call index) for every tool block started so far; `-1` marks the
    /// response-format tool, whose input goes to `content`. A handful per stream: linear search.
    private var toolBlocks: [(block: Int, tool: Int)] = []
    private var nextToolIndex = 0
    private var dispatch = FrameDispatch<ConverseStreamEvent>()

    public init(options: Options) {
        self.options = options
        var head = ByteBuffer()
        head.reserveCapacity(96 + options.id.utf8.count + options.model.utf8.count)
        head.writeStaticString("data: {\"id\":")
        head.writeJSONString(options.id)
        head.writeStaticString(",\"object\":\"chat.completion.chunk\",\"created\":")
        head.writeDecimal(options.created)
        head.writeStaticString(",\"model\":")
        head.writeJSONString(options.model)
        self.head = Array(head.readableBytesView)
        self.responseFormatToolName = options.responseFormatToolName.map { ByteBuffer(string: $0) }
        self.toolBlocks.reserveCapacity(4)
    }

    // MARK: Translating

    /// Translates one decoded message, appending zero or more SSE events to `out`.
    public mutating func translate(_ message: EventStreamMessage, into out: inout ByteBuffer) {
        guard self.ending == nil else { return }
        let (messageType, event) = self.dispatch.kind(of: message)
        switch messageType {
        case .event?, nil:
            break
        case .exception?:
            self.writeException(message, into: &out)
            return
        case .error?:
            self.writeUnmodeledError(message, into: &out)
            return
        case .unknown?:
            self.writeError(code: "upstream_protocol_error", message: "upstream sent a message of unknown type", into: &out)
            return
        }
        guard let event else {
            self.writeError(code: "upstream_protocol_error", message: "upstream sent an event without :event-type", into: &out)
            return
        }
        let handled: Bool = message.withUnsafePayload { payload in
            var scanner = JSONScanner(payload)
            do {
                switch event {
                case .contentBlockDelta: try self.contentBlockDelta(&scanner, into: &out)
                case .messageStart: self.writeChunk(delta: "{\"role\":\"assistant\",\"content\":\"\"}", into: &out)
                case .contentBlockStart: try self.contentBlockStart(&scanner, into: &out)
                case .messageStop: try self.messageStop(&scanner, into: &out)
                case .metadata: try self.metadata(&scanner, into: &out)
                // Block ends carry nothing OpenAI shows; unknown events are skipped, as botocore does.
                case .contentBlockStop, .unknown: break
                }
                return true
            } catch {
                return false
            }
        }
        if !handled {
            self.writeError(code: "upstream_protocol_error", message: "upstream sent a malformed event", into: &out)
        }
    }

    /// Ends the stream when the upstream body has ended: `[DONE]` after `messageStop`, otherwise an
    /// error event, since a stream cut before its stop reason is incomplete.
    public mutating func finish(into out: inout ByteBuffer) {
        guard self.ending == nil else { return }
        guard self.finishReason != nil else {
            self.writeError(code: "upstream_truncated", message: "the upstream stream ended before the response was complete", into: &out)
            return
        }
        out.writeStaticString("data: [DONE]\n\n")
        self.ending = .completed
    }

    /// Ends the stream with an error event for a failure outside the frames: a corrupt frame, a
    /// dropped connection, a time limit.
    ///
    /// - Parameters:
    ///   - code: a short fixed code, e.g. `message_checksum` or `upstream_timeout`.
    ///   - message: text for the user; must not contain secrets or upstream bodies.
    public mutating func fail(code: String, message: String, into out: inout ByteBuffer) {
        guard self.ending == nil else { return }
        self.writeError(code: code, message: message, into: &out)
    }

    // MARK: Events

    private mutating func contentBlockDelta(_ scanner: inout JSONScanner, into out: inout ByteBuffer) throws(JSONScanner.Failure) {
        var block = -1
        var kind = DeltaKind.none
        var value = 0..<0
        if let fast = Self.scanDeltaAsBedrockWritesIt(&scanner) {
            (block, kind, value) = fast
        } else {
            scanner.rewind()
            try self.scanDelta(&scanner, block: &block, kind: &kind, value: &value)
        }
        self.producedBytes &+= value.count
        try self.writeDelta(kind, UnsafeRawBufferPointer(rebasing: scanner.bytes[value]), block: block, into: &out)
    }

    /// The fast path for the shape Bedrock always writes, field order and all:
    /// `{"contentBlockIndex":N,"delta":{"text":"…"},"p":"…"}` (or `toolUse.input`, or
    /// `reasoningContent.text`). It checks the whole payload but the padding's text (see
    /// ``JSONScanner/skipPaddingMemberToEnd()``); any difference (another order, whitespace, another
    /// field) returns `nil` and the general scanner reads it instead.
    private static func scanDeltaAsBedrockWritesIt(_ scanner: inout JSONScanner) -> (Int, DeltaKind, Range<Int>)? {
        guard scanner.match("{\"contentBlockIndex\":"), let block = try? scanner.readInteger(),
            scanner.match(",\"delta\":{\"")
        else { return nil }
        let kind: DeltaKind
        let closing: Int
        if scanner.match("text\":") {
            (kind, closing) = (.text, 1)
        } else if scanner.match("toolUse\":{\"input\":") {
            (kind, closing) = (.toolInput, 2)
        } else if scanner.match("reasoningContent\":{\"text\":") {
            (kind, closing) = (.reasoningText, 2)
        } else {
            return nil
        }
        guard let value = try? scanner.readString(), scanner.match(closing == 1 ? "}" : "}}") else { return nil }
        if scanner.skipPaddingMemberToEnd() { return (block, kind, value) }
        guard scanner.match("}"), scanner.isAtEnd else { return nil }
        return (block, kind, value)
    }

    private func scanDelta(
        _ scanner: inout JSONScanner, block: inout Int, kind: inout DeltaKind, value: inout Range<Int>
    ) throws(JSONScanner.Failure) {
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            if scanner.bytes(in: key, equal: "contentBlockIndex") {
                block = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "delta") {
                (kind, value) = try Self.readDelta(&scanner)
            } else {
                try scanner.skipValue()
            }
        }
    }

    private mutating func writeDelta(_ kind: DeltaKind, _ raw: UnsafeRawBufferPointer, block: Int, into out: inout ByteBuffer) throws(JSONScanner.Failure) {
        switch kind {
        case .text:
            self.writeDelta(raw, open: "{\"content\":\"", close: "\"}", into: &out)
        case .toolInput:
            guard let tool = self.toolIndex(forBlock: block) else { throw JSONScanner.Failure(offset: 0) }
            if tool < 0 {
                self.writeDelta(raw, open: "{\"content\":\"", close: "\"}", into: &out)
            } else {
                self.writeChunk(into: &out, extraLength: raw.count) { writer in
                    writer.append("{\"tool_calls\":[{\"index\":")
                    writer.appendDecimal(tool)
                    writer.append(",\"function\":{\"arguments\":\"")
                    writer.append(raw)
                    writer.append("\"}}]}")
                }
            }
        case .reasoningText:
            self.writeDelta(raw, open: "{\"reasoning_content\":\"", close: "\"}", into: &out)
        case .reasoningSignature:
            self.writeDelta(
                raw, open: "{\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"", close: "\"}]}",
                into: &out
            )
        case .redactedReasoning:
            self.writeDelta(raw, open: "{\"thinking_blocks\":[{\"type\":\"redacted_thinking\",\"data\":\"", close: "\"}]}", into: &out)
        case .none:
            // Citations, images and other deltas have no OpenAI chunk form.
            break
        }
    }

    private enum DeltaKind {
        case none, text, toolInput, reasoningText, reasoningSignature, redactedReasoning
    }

    /// Reads `delta`: `{"text":…}`, `{"toolUse":{"input":…}}` or `{"reasoningContent":{"text"|"signature"|"redactedContent":…}}`.
    private static func readDelta(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) -> (DeltaKind, Range<Int>) {
        var kind = DeltaKind.none
        var range = 0..<0
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            if scanner.bytes(in: key, equal: "text") {
                kind = .text
                range = try scanner.readString()
            } else if scanner.bytes(in: key, equal: "toolUse") {
                try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                    if scanner.bytes(in: key, equal: "input") {
                        kind = .toolInput
                        range = try scanner.readString()
                    } else {
                        try scanner.skipValue()
                    }
                }
            } else if scanner.bytes(in: key, equal: "reasoningContent") {
                try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                    if scanner.bytes(in: key, equal: "text") {
                        kind = .reasoningText
                        range = try scanner.readString()
                    } else if scanner.bytes(in: key, equal: "signature") {
                        kind = .reasoningSignature
                        range = try scanner.readString()
                    } else if scanner.bytes(in: key, equal: "redactedContent") {
                        // A blob member: base64 text in JSON.
                        kind = .redactedReasoning
                        range = try scanner.readString()
                    } else {
                        try scanner.skipValue()
                    }
                }
            } else {
                try scanner.skipValue()
            }
        }
        return (kind, range)
    }

    private mutating func contentBlockStart(_ scanner: inout JSONScanner, into out: inout ByteBuffer) throws(JSONScanner.Failure) {
        var block = -1
        var id = 0..<0
        var name = 0..<0
        var isToolUse = false
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            if scanner.bytes(in: key, equal: "contentBlockIndex") {
                block = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "start") {
                try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                    guard scanner.bytes(in: key, equal: "toolUse") else { return try scanner.skipValue() }
                    isToolUse = true
                    try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                        if scanner.bytes(in: key, equal: "toolUseId") {
                            id = try scanner.readString()
                        } else if scanner.bytes(in: key, equal: "name") {
                            name = try scanner.readString()
                        } else {
                            try scanner.skipValue()
                        }
                    }
                }
            } else {
                try scanner.skipValue()
            }
        }
        guard isToolUse else { return }
        let nameBytes = UnsafeRawBufferPointer(rebasing: scanner.bytes[name])
        if let forced = self.responseFormatToolName, forced.readableBytesView.elementsEqual(nameBytes) {
            self.toolBlocks.append((block, -1))
            return
        }
        let tool = self.nextToolIndex
        self.nextToolIndex += 1
        self.toolBlocks.append((block, tool))
        let idBytes = UnsafeRawBufferPointer(rebasing: scanner.bytes[id])
        self.writeChunk(into: &out, extraLength: idBytes.count + nameBytes.count) { writer in
            writer.append("{\"tool_calls\":[{\"index\":")
            writer.appendDecimal(tool)
            writer.append(",\"id\":\"")
            writer.append(idBytes)
            writer.append("\",\"type\":\"function\",\"function\":{\"name\":\"")
            writer.append(nameBytes)
            writer.append("\",\"arguments\":\"\"}}]}")
        }
    }

    private func toolIndex(forBlock block: Int) -> Int? {
        for entry in self.toolBlocks where entry.block == block {
            return entry.tool
        }
        return nil
    }

    private mutating func messageStop(_ scanner: inout JSONScanner, into out: inout ByteBuffer) throws(JSONScanner.Failure) {
        var reason = FinishReason.stop
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            if scanner.bytes(in: key, equal: "stopReason") {
                let range = try scanner.readString()
                reason = FinishReason(bedrockStopReason: UnsafeRawBufferPointer(rebasing: scanner.bytes[range]))
            } else {
                try scanner.skipValue()
            }
        }
        // The response-format tool is how the JSON answer was produced, not a call for the client.
        if reason == .toolCalls, self.nextToolIndex == 0, self.toolBlocks.contains(where: { $0.tool < 0 }) {
            reason = .stop
        }
        self.finishReason = reason
        out.writeRaw(maximumLength: self.head.count + 96) { writer in
            self.head.withUnsafeBytes { writer.append($0) }
            writer.append(",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"")
            writer.append(reason.openAIValue)
            writer.append("\"}]}\n\n")
        }
        self.hasWrittenChunk = true
    }

    private mutating func metadata(_ scanner: inout JSONScanner, into out: inout ByteBuffer) throws(JSONScanner.Failure) {
        var usage = TokenUsage()
        var found = false
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            guard scanner.bytes(in: key, equal: "usage") else { return try scanner.skipValue() }
            found = true
            usage = try TokenUsage(converseUsage: &scanner)
        }
        guard found else { return }
        self.usage = usage
        guard self.options.includeUsage else { return }
        out.writeBytes(self.head)
        out.writeStaticString(",\"choices\":[],\"usage\":{\"prompt_tokens\":")
        out.writeDecimal(usage.promptTokens)
        out.writeStaticString(",\"completion_tokens\":")
        out.writeDecimal(usage.outputTokens)
        out.writeStaticString(",\"total_tokens\":")
        out.writeDecimal(usage.totalTokens)
        out.writeStaticString(",\"prompt_tokens_details\":{\"cached_tokens\":")
        out.writeDecimal(usage.cacheReadInputTokens)
        out.writeStaticString(",\"cache_creation_tokens\":")
        out.writeDecimal(usage.cacheWriteInputTokens)
        out.writeStaticString("}}}\n\n")
        self.hasWrittenChunk = true
    }

    // MARK: Errors

    private mutating func writeException(_ message: EventStreamMessage, into out: inout ByteBuffer) {
        let type = message.headers.exceptionType ?? ByteBuffer(string: "exception")
        message.withUnsafePayload { payload in
            var scanner = JSONScanner(payload)
            var text: Range<Int>?
            try? scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                if scanner.bytes(in: key, equal: "message") || scanner.bytes(in: key, equal: "Message") {
                    text = try scanner.readString()
                } else {
                    try scanner.skipValue()
                }
            }
            out.writeStaticString("data: {\"error\":{\"message\":\"")
            if let text {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: payload[text]))
            } else {
                out.writeStaticString("upstream exception")
            }
            out.writeStaticString("\",\"type\":")
            out.writeJSONString(String(buffer: type))
            out.writeStaticString(",\"param\":null,\"code\":")
            out.writeJSONString(String(buffer: type))
            out.writeStaticString("}}\n\n")
        }
        self.ending = .failed(code: String(buffer: type))
    }

    private mutating func writeUnmodeledError(_ message: EventStreamMessage, into out: inout ByteBuffer) {
        let code = message.headers.errorCode.map { String(buffer: $0) } ?? "upstream_error"
        let text = message.headers.errorMessage.map { String(buffer: $0) } ?? "upstream error"
        self.writeError(code: code, message: text, into: &out)
    }

    private mutating func writeError(code: String, message: String, into out: inout ByteBuffer) {
        out.writeStaticString("data: {\"error\":{\"message\":")
        out.writeJSONString(message)
        out.writeStaticString(",\"type\":")
        out.writeJSONString(code)
        out.writeStaticString(",\"param\":null,\"code\":")
        out.writeJSONString(code)
        out.writeStaticString("}}\n\n")
        self.ending = .failed(code: code)
    }

    // MARK: Chunk framing

    /// Writes one chunk: the stream's head, `,"choices":[{"index":0,"delta":`, what `body` appends
    /// (at most `extraLength` + 128 bytes), then `,"finish_reason":null}]}` and the blank line, with
    /// one access to `out` (see `RawWriter`).
    @inline(__always)
    private mutating func writeChunk(into out: inout ByteBuffer, extraLength: Int, _ body: (inout RawWriter) -> Void) {
        out.writeRaw(maximumLength: self.head.count + extraLength + 224) { writer in
            self.head.withUnsafeBytes { writer.append($0) }
            writer.append(",\"choices\":[{\"index\":0,\"delta\":")
            body(&writer)
            writer.append(",\"finish_reason\":null}]}\n\n")
        }
        self.hasWrittenChunk = true
    }

    /// A chunk whose delta is `open` + the spliced escaped bytes + `close`.
    @inline(__always)
    private mutating func writeDelta(_ raw: UnsafeRawBufferPointer, open: StaticString, close: StaticString, into out: inout ByteBuffer) {
        self.writeChunk(into: &out, extraLength: raw.count) { writer in
            writer.append(open)
            writer.append(raw)
            writer.append(close)
        }
    }

    private mutating func writeChunk(delta: StaticString, into out: inout ByteBuffer) {
        self.writeChunk(into: &out, extraLength: 0) { writer in writer.append(delta) }
    }
}

@available(*, unavailable)
extension ChatChunkTranslator: Sendable {}

/// The ConverseStream event names, recognised by their bytes.
enum ConverseStreamEvent: FrameEventKind {
    case messageStart, contentBlockStart, contentBlockDelta, contentBlockStop, messageStop, metadata, unknown

    init(eventType name: UnsafeRawBufferPointer) {
        // Deltas are nearly every frame: test for them first.
        if name.elementsEqual("contentBlockDelta") {
            self = .contentBlockDelta
        } else if name.elementsEqual("contentBlockStart") {
            self = .contentBlockStart
        } else if name.elementsEqual("contentBlockStop") {
            self = .contentBlockStop
        } else if name.elementsEqual("messageStart") {
            self = .messageStart
        } else if name.elementsEqual("messageStop") {
            self = .messageStop
        } else if name.elementsEqual("metadata") {
            self = .metadata
        } else {
            self = .unknown
        }
    }
}
