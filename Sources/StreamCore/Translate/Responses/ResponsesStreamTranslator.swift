package import NIOCore

/// Turns one Bedrock ConverseStream into OpenAI Responses API server-sent events, frame by frame.
///
/// The same shape as ``ChatChunkTranslator`` so one stream pump drives either: one value per stream,
/// `translate(_:into:)` per decoded message appending to a caller-owned buffer, `finish(into:)` at the
/// end of the upstream body, `fail(code:message:into:)` for failures outside the frames.
///
/// ```swift
/// var translator = ResponsesStreamTranslator(options: .init(id: "resp_…", createdAt: now, request: request, sealer: cipher))
/// var out = ByteBuffer()
/// while let message = try decoder.next() { translator.translate(message, into: &out) }
/// translator.finish(into: &out)
/// ```
///
/// Each event is `event: <type>\ndata: {"type":"<type>",…,"sequence_number":N}\n\n`, N counting from 0.
///
/// Mapping:
/// - first output: `response.created`, `response.in_progress` (status `in_progress`, no output).
/// - a text block → a `message` item: `response.output_item.added`, `response.content_part.added`,
///   a `response.output_text.delta` per delta, then at the block's end `response.output_text.done`,
///   `response.content_part.done`, `response.output_item.done` carrying the whole text.
/// - a tool-use block → a `function_call` item (`call_id` = Bedrock's `toolUseId`):
///   `response.output_item.added`, `response.function_call_arguments.delta` per input delta,
///   `response.function_call_arguments.done`, `response.output_item.done`. A call without input gets
///   one `{}` delta, so the arguments always parse and always equal their deltas.
/// - a reasoning block → a `reasoning` item whose summary is the thinking text:
///   `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta` per delta,
///   `….done` events. Summary events because Codex shows them by default (raw `reasoning_text` only
///   with `show_raw_agent_reasoning`) and the openai SDKs accept both; Claude 4's thinking on Bedrock
///   is itself a summary. When the options carry a sealer (the request's `include` asked for
///   `reasoning.encrypted_content`), the item gets `encrypted_content`: the sealed text and signature
///   (or redacted data), sealed once when the block ends.
/// - the response-format tool (``ChatRequestMapper/responseFormatToolName``) → a `message` item whose
///   text is the tool's input, the JSON answer.
/// - `messageStop` + `metadata` → `response.completed`, or `response.incomplete` with
///   `incomplete_details.reason` `max_output_tokens` (`max_tokens`, context window) or
///   `content_filter` (content filter, guardrail); the `response` carries every output item and `usage`.
/// - an exception or error frame, a malformed event, a stream cut before `messageStop`, or
///   ``fail(code:message:into:)`` → `response.failed` with `error {code, message}`; nothing follows.
///
/// The hot path (text, argument and reasoning deltas) splices the escaped JSON string bytes from the
/// frame into the event and appends them to the item's text buffer (for the `.done` events), with no
/// allocation once that buffer has grown: each event is one write of a prefix built when the item
/// opened, the delta, and the sequence number.
package struct ResponsesStreamTranslator {
    package struct Options: Sendable {
        /// The response id (`resp_…`); item ids derive from it.
        package var id: String
        /// Unix seconds.
        package var createdAt: Int
        /// The model name as the client wrote it.
        package var model: String
        /// The forced tool that emulates `text.format`: its input streams out as message text.
        package var responseFormatToolName: String?
        /// Seals each reasoning block into `encrypted_content`; nil unless the request's `include`
        /// asked for `reasoning.encrypted_content`.
        package var sealer: (any ResponsesReasoningSealer)?
        /// The request's `namespace` tools: calls of them are named back as name + namespace.
        package var toolNamespaces = ToolNamespaces()

        package init(
            id: String,
            createdAt: Int,
            model: String,
            responseFormatToolName: String? = nil,
            sealer: (any ResponsesReasoningSealer)? = nil
        ) {
            self.id = id
            self.createdAt = createdAt
            self.model = model
            self.responseFormatToolName = responseFormatToolName
            self.sealer = sealer
        }

        /// Options for a mapped request: its model name and format tool, and `sealer` only when the
        /// request's `include` asked for encrypted reasoning.
        package init(id: String, createdAt: Int, request: ResponsesRequest, sealer: (any ResponsesReasoningSealer)?) {
            self.init(
                id: id,
                createdAt: createdAt,
                model: request.requestedModel,
                responseFormatToolName: request.responseFormatToolName,
                sealer: request.includesEncryptedReasoning ? sealer : nil
            )
            self.toolNamespaces = request.toolNamespaces
        }
    }

    /// How the stream ended, once it has: `.completed` once `response.completed` or
    /// `response.incomplete` was written (see ``finishReason``), `.failed(code:)` once
    /// `response.failed` was. The chat translator's type, so one pump reads both.
    package typealias Ending = ChatChunkTranslator.Ending

    /// The usage the `metadata` event reported, if it came.
    package private(set) var usage: TokenUsage?
    /// Bytes of generated text, reasoning and tool arguments so far (escaped as they arrived).
    package private(set) var producedBytes = 0
    /// Bedrock's stop reason mapped to a finish reason, once `messageStop` came.
    package private(set) var finishReason: FinishReason?
    /// Set once the stream has ended; later input is ignored.
    package private(set) var ending: Ending?
    /// Whether any event has been written yet.
    package private(set) var hasWrittenEvent = false

    private enum ItemKind {
        case message, functionCall, reasoning
    }

    private struct OpenItem {
        var block: Int
        var kind: ItemKind
        var outputIndex: Int
        /// Reasoning only: the summary part has been announced (the first reasoning text came).
        var hasSummaryPart = false
    }

    private let sealer: (any ResponsesReasoningSealer)?
    private let responseFormatToolName: [UInt8]?
    /// `"id":…,"object":"response","created_at":…`.
    private let responseHead: [UInt8]
    /// The model name, escaped.
    private let model: [UInt8]
    /// The response id without `resp_`, escaped: the middle of every item id.
    private let idBase: [UInt8]
    private var sequenceNumber = 0
    private var nextOutputIndex = 0
    private var open: OpenItem?
    private var itemID: [UInt8] = []
    /// `event: …\ndata: {"type":…,"item_id":…,"output_index":…,…"delta":"`, built when the item opens.
    private var deltaPrefix: [UInt8] = []
    /// The open item's text, arguments or reasoning, escaped as it arrived.
    private var content = ItemText(capacity: 1024)
    private var signature = ByteBuffer()
    private var redacted = ByteBuffer()
    /// The open function call's escaped `call_id`, and what follows `"name":"` in its JSON (its escaped
    /// name, and for a namespace's tool its namespace too: ``ToolNamespaces``).
    private var callID: [UInt8] = []
    private var name: [UInt8] = []
    private let toolNamespaces: ToolNamespaces
    /// Finished items, comma-separated, for the terminal `response`.
    private var outputItems = ByteBuffer()

    /// The finished output items, comma-separated (the inside of `response.output`): what a response
    /// store keeps after the request's items. Complete once the stream ended with `.completed`.
    package var completedItems: ByteBuffer { self.outputItems }
    /// Scratch for an item's `in_progress` JSON (`response.output_item.added`); a finished item is
    /// written into ``outputItems`` directly.
    private var item = ByteBuffer()
    private var functionCallCount = 0
    private var formatToolBlocks = 0
    private var dispatch = FrameDispatch<ConverseStreamEvent>()

    package init(options: Options) {
        self.sealer = options.sealer
        self.toolNamespaces = options.toolNamespaces
        self.responseFormatToolName = options.responseFormatToolName.map { Array($0.utf8) }
        self.responseHead = ResponsesJSON.responseHead(id: options.id, createdAt: options.createdAt)
        self.model = ResponsesJSON.escaped(options.model)
        self.idBase = ResponsesJSON.itemIDBase(responseID: options.id)
        self.itemID.reserveCapacity(self.idBase.count + 24)
        self.deltaPrefix.reserveCapacity(self.idBase.count + 192)
    }

    // MARK: Translating

    /// Translates one decoded message, appending zero or more SSE events to `out`.
    package mutating func translate(_ message: EventStreamMessage, into out: inout ByteBuffer) {
        guard self.ending == nil else { return }
        let (messageType, event) = self.dispatch.kind(of: message)
        switch messageType {
        case .event?, nil:
            break
        case .exception?:
            self.writeException(message, into: &out)
            return
        case .error?:
            let code = message.headers.errorCode.map { String(buffer: $0) } ?? "upstream_error"
            let text = message.headers.errorMessage.map { String(buffer: $0) } ?? "upstream error"
            self.writeFailed(code: code, message: ResponsesJSON.escaped(text), into: &out)
            return
        case .unknown?:
            self.writeFailed(code: "upstream_protocol_error", message: ResponsesJSON.escaped("upstream sent a message of unknown type"), into: &out)
            return
        }
        guard let event else {
            self.writeFailed(code: "upstream_protocol_error", message: ResponsesJSON.escaped("upstream sent an event without :event-type"), into: &out)
            return
        }
        let handled: Bool = message.withUnsafePayload { payload in
            var scanner = JSONScanner(payload)
            do {
                switch event {
                case .contentBlockDelta: try self.contentBlockDelta(&scanner, into: &out)
                case .messageStart: self.startIfNeeded(into: &out)
                case .contentBlockStart: try self.contentBlockStart(&scanner, into: &out)
                case .contentBlockStop: try self.contentBlockStop(&scanner, into: &out)
                case .messageStop: try self.messageStop(&scanner, into: &out)
                case .metadata: try self.metadata(&scanner, into: &out)
                case .unknown: break  // skipped, as botocore does
                }
                return true
            } catch {
                return false
            }
        }
        if !handled {
            self.writeFailed(code: "upstream_protocol_error", message: ResponsesJSON.escaped("upstream sent a malformed event"), into: &out)
        }
    }

    /// Ends the stream when the upstream body has ended: the terminal event if `messageStop` came
    /// (without usage if `metadata` never did), otherwise `response.failed`.
    package mutating func finish(into out: inout ByteBuffer) {
        guard self.ending == nil else { return }
        guard self.finishReason != nil else {
            self.writeFailed(
                code: "upstream_truncated",
                message: ResponsesJSON.escaped("the upstream stream ended before the response was complete"),
                into: &out
            )
            return
        }
        self.writeTerminal(into: &out)
    }

    /// Ends the stream with `response.failed` for a failure outside the frames: a corrupt frame, a
    /// dropped connection, a time limit.
    ///
    /// - Parameters:
    ///   - code: a short fixed code, e.g. `message_checksum` or `upstream_timeout`.
    ///   - message: text for the user; must not contain secrets or upstream bodies.
    package mutating func fail(code: String, message: String, into out: inout ByteBuffer) {
        guard self.ending == nil else { return }
        self.writeFailed(code: code, message: ResponsesJSON.escaped(message), into: &out)
    }

    // MARK: Deltas (the hot path)

    private mutating func contentBlockDelta(_ scanner: inout JSONScanner, into out: inout ByteBuffer) throws(JSONScanner.Failure) {
        var block = -1
        var kind = DeltaKind.none
        var value = 0..<0
        if let fast = Self.scanDeltaAsBedrockWritesIt(&scanner) {
            (block, kind, value) = fast
        } else {
            scanner.rewind()
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
        self.producedBytes &+= value.count
        let raw = UnsafeRawBufferPointer(rebasing: scanner.bytes[value])
        switch kind {
        case .text:
            if self.open?.block != block || self.open?.kind != .message {
                self.openItem(.message, block: block, into: &out)
            }
            self.writeDelta(raw, logprobs: true, into: &out)
        case .toolInput:
            // Input belongs to the tool block its contentBlockStart opened.
            guard let open = self.open, open.block == block, open.kind != .reasoning else { throw JSONScanner.Failure(offset: 0) }
            self.writeDelta(raw, logprobs: open.kind == .message, into: &out)
        case .reasoningText:
            self.openReasoningIfNeeded(block: block, into: &out)
            if self.open?.hasSummaryPart == false {
                self.open?.hasSummaryPart = true
                self.writeSummaryPartAdded(into: &out)
            }
            self.writeDelta(raw, logprobs: false, into: &out)
        case .reasoningSignature:
            self.openReasoningIfNeeded(block: block, into: &out)
            self.signature.writeBytes(raw)
        case .redactedReasoning:
            self.openReasoningIfNeeded(block: block, into: &out)
            self.redacted.writeBytes(raw)
        case .none:
            break  // citations, images and other deltas have no Responses event
        }
    }

    /// One delta event: the item's prefix, the spliced escaped bytes, the sequence number; the bytes
    /// also go to the item's text for its `.done` events.
    @inline(__always)
    private mutating func writeDelta(_ raw: UnsafeRawBufferPointer, logprobs: Bool, into out: inout ByteBuffer) {
        let sequence = self.sequenceNumber
        self.sequenceNumber &+= 1
        out.writeRaw(maximumLength: self.deltaPrefix.count &+ raw.count &+ 64) { writer in
            self.deltaPrefix.withUnsafeBytes { writer.append($0) }
            writer.append(raw)
            writer.append(logprobs ? "\",\"logprobs\":[],\"sequence_number\":" : "\",\"sequence_number\":")
            writer.appendDecimal(sequence)
            writer.append("}\n\n")
        }
        self.content.append(raw)
    }

    private enum DeltaKind {
        case none, text, toolInput, reasoningText, reasoningSignature, redactedReasoning
    }

    /// The shape Bedrock always writes (see ``ChatChunkTranslator``'s fast path); nil for anything else.
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

    // MARK: Items

    private mutating func openReasoningIfNeeded(block: Int, into out: inout ByteBuffer) {
        if self.open?.block != block || self.open?.kind != .reasoning {
            self.openItem(.reasoning, block: block, into: &out)
        }
    }

    /// Closes any open item, then announces a new one and builds its delta prefix.
    private mutating func openItem(_ kind: ItemKind, block: Int, into out: inout ByteBuffer) {
        self.closeOpenItem(status: "completed", into: &out)
        self.startIfNeeded(into: &out)
        let outputIndex = self.nextOutputIndex
        self.nextOutputIndex += 1
        self.open = OpenItem(block: block, kind: kind, outputIndex: outputIndex)
        let prefix: StaticString
        switch kind {
        case .message: prefix = "msg_"
        case .functionCall: prefix = "fc_"
        case .reasoning: prefix = "rs_"
        }
        ResponsesJSON.writeItemID(prefix, base: self.idBase, outputIndex: outputIndex, into: &self.itemID)
        self.content.removeAll()
        self.signature.clear()
        self.redacted.clear()

        self.item.clear()
        let id = self.itemID
        let callID = self.callID
        let name = self.name
        id.withUnsafeBytes { id in
            switch kind {
            case .message:
                ResponsesJSON.writeMessageItem(into: &self.item, id: id, status: "in_progress", text: nil)
            case .functionCall:
                callID.withUnsafeBytes { callID in
                    name.withUnsafeBytes { name in
                        ResponsesJSON.writeFunctionCallItem(
                            into: &self.item, id: id, status: "in_progress", arguments: UnsafeRawBufferPointer(start: nil, count: 0),
                            callID: callID, name: name
                        )
                    }
                }
            case .reasoning:
                ResponsesJSON.writeReasoningItem(into: &self.item, id: id, summary: nil, encryptedContent: nil)
            }
        }
        self.beginEvent("response.output_item.added", into: &out)
        out.writeStaticString(",\"output_index\":")
        out.writeDecimal(outputIndex)
        out.writeStaticString(",\"item\":")
        out.writeBuffer(&self.item)
        self.endEvent(into: &out)
        if kind == .message {
            self.beginItemEvent("response.content_part.added", into: &out)
            out.writeStaticString(",\"content_index\":0,\"part\":{\"type\":\"output_text\",\"annotations\":[],\"text\":\"\"}")
            self.endEvent(into: &out)
        }

        self.deltaPrefix.removeAll(keepingCapacity: true)
        let type: StaticString
        let tail: StaticString
        switch kind {
        case .message: (type, tail) = ("response.output_text.delta", ",\"content_index\":0,\"delta\":\"")
        case .functionCall: (type, tail) = ("response.function_call_arguments.delta", ",\"delta\":\"")
        case .reasoning: (type, tail) = ("response.reasoning_summary_text.delta", ",\"summary_index\":0,\"delta\":\"")
        }
        Self.append("event: ", to: &self.deltaPrefix)
        Self.append(type, to: &self.deltaPrefix)
        Self.append("\ndata: {\"type\":\"", to: &self.deltaPrefix)
        Self.append(type, to: &self.deltaPrefix)
        Self.append("\",\"item_id\":\"", to: &self.deltaPrefix)
        self.deltaPrefix.append(contentsOf: self.itemID)
        Self.append("\",\"output_index\":", to: &self.deltaPrefix)
        Self.appendDecimal(outputIndex, to: &self.deltaPrefix)
        Self.append(tail, to: &self.deltaPrefix)
    }

    /// Writes the open item's `.done` events and keeps its JSON for the terminal response.
    private mutating func closeOpenItem(status: StaticString, into out: inout ByteBuffer) {
        guard let open = self.open else { return }
        self.open = nil
        if open.kind == .functionCall, self.content.isEmpty {
            // A call without input: one `{}` delta, so the arguments parse and equal their deltas.
            let empty: StaticString = "{}"
            empty.withUTF8Buffer { self.writeDelta(UnsafeRawBufferPointer($0), logprobs: false, into: &out) }
        }
        // Locals for what the item is written from, so writing `self.outputItems` overlaps no other access.
        let id = self.itemID
        let content = self.content
        let callID = self.callID
        let name = self.name
        // The item's JSON goes straight into the kept items and is copied from there into its event
        // (once through a scratch buffer was one more copy of the whole text per item).
        if self.outputItems.readableBytes > 0 { self.outputItems.writeStaticString(",") }
        let itemStart = self.outputItems.writerIndex
        switch open.kind {
        case .message:
            self.beginItemEvent("response.output_text.done", into: &out, open: open)
            out.writeStaticString(",\"content_index\":0,\"text\":\"")
            self.content.withUnsafeBytes { _ = out.writeBytes($0) }
            out.writeStaticString("\",\"logprobs\":[]")
            self.endEvent(into: &out)
            self.beginItemEvent("response.content_part.done", into: &out, open: open)
            out.writeStaticString(",\"content_index\":0,\"part\":{\"type\":\"output_text\",\"annotations\":[],\"text\":\"")
            self.content.withUnsafeBytes { _ = out.writeBytes($0) }
            out.writeStaticString("\"}")
            self.endEvent(into: &out)
            id.withUnsafeBytes { id in
                content.withUnsafeBytes { text in
                    ResponsesJSON.writeMessageItem(into: &self.outputItems, id: id, status: status, text: text)
                }
            }
        case .functionCall:
            self.beginItemEvent("response.function_call_arguments.done", into: &out, open: open)
            out.writeStaticString(",\"name\":\"")
            out.writeBytes(self.name)
            out.writeStaticString("\",\"arguments\":\"")
            self.content.withUnsafeBytes { _ = out.writeBytes($0) }
            out.writeStaticString("\"")
            self.endEvent(into: &out)
            id.withUnsafeBytes { id in
                content.withUnsafeBytes { arguments in
                    callID.withUnsafeBytes { callID in
                        name.withUnsafeBytes { name in
                            ResponsesJSON.writeFunctionCallItem(
                                into: &self.outputItems, id: id, status: status, arguments: arguments, callID: callID, name: name
                            )
                        }
                    }
                }
            }
        case .reasoning:
            if open.hasSummaryPart {
                self.beginItemEvent("response.reasoning_summary_text.done", into: &out, open: open)
                out.writeStaticString(",\"summary_index\":0,\"text\":\"")
                self.content.withUnsafeBytes { _ = out.writeBytes($0) }
                out.writeStaticString("\"")
                self.endEvent(into: &out)
                self.beginItemEvent("response.reasoning_summary_part.done", into: &out, open: open)
                out.writeStaticString(",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"")
                self.content.withUnsafeBytes { _ = out.writeBytes($0) }
                out.writeStaticString("\"}")
                self.endEvent(into: &out)
            }
            let sealed = self.sealReasoning()
            id.withUnsafeBytes { id in
                content.withUnsafeBytes { summary in
                    ResponsesJSON.writeReasoningItem(
                        into: &self.outputItems, id: id, summary: open.hasSummaryPart ? summary : nil, encryptedContent: sealed
                    )
                }
            }
        }
        self.beginEvent("response.output_item.done", into: &out)
        out.writeStaticString(",\"output_index\":")
        out.writeDecimal(open.outputIndex)
        out.writeStaticString(",\"item\":")
        let itemOffset = itemStart - self.outputItems.readerIndex
        self.outputItems.withUnsafeReadableBytes { items in
            _ = out.writeBytes(UnsafeRawBufferPointer(rebasing: items[itemOffset..<items.count]))
        }
        self.endEvent(into: &out)
    }

    /// The block's reasoning sealed for `encrypted_content`; nil without a sealer or without a
    /// signature (unsigned reasoning cannot be replayed, so there is nothing worth carrying).
    private func sealReasoning() -> String? {
        guard let sealer = self.sealer else { return nil }
        if self.redacted.readableBytes > 0 {
            guard let data = ResponsesJSON.unescaped(self.redacted) else { return nil }
            return sealer.seal(.redacted(data: data))
        }
        guard self.signature.readableBytes > 0,
            let signature = ResponsesJSON.unescaped(self.signature),
            let text = self.content.withUnsafeBytes({ ResponsesJSON.unescaped(ByteBuffer(bytes: $0)) })
        else { return nil }
        return sealer.seal(.signed(text: text, signature: signature))
    }

    private mutating func writeSummaryPartAdded(into out: inout ByteBuffer) {
        self.beginItemEvent("response.reasoning_summary_part.added", into: &out)
        out.writeStaticString(",\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}")
        self.endEvent(into: &out)
    }

    // MARK: Block and message events

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
        if let forced = self.responseFormatToolName, forced.elementsEqual(nameBytes) {
            self.formatToolBlocks += 1
            self.openItem(.message, block: block, into: &out)
            return
        }
        self.functionCallCount += 1
        // Close the previous item before the call id and name change: its `.done` events carry its own.
        self.closeOpenItem(status: "completed", into: &out)
        self.callID.removeAll(keepingCapacity: true)
        self.callID.append(contentsOf: UnsafeRawBufferPointer(rebasing: scanner.bytes[id]))
        self.name.removeAll(keepingCapacity: true)
        if let fragment = self.toolNamespaces.nameFragment(forBedrockName: nameBytes) {
            self.name.append(contentsOf: fragment)
        } else {
            self.name.append(contentsOf: nameBytes)
        }
        self.openItem(.functionCall, block: block, into: &out)
    }

    private mutating func contentBlockStop(_ scanner: inout JSONScanner, into out: inout ByteBuffer) throws(JSONScanner.Failure) {
        var block = -1
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            if scanner.bytes(in: key, equal: "contentBlockIndex") {
                block = try scanner.readInteger()
            } else {
                try scanner.skipValue()
            }
        }
        if self.open?.block == block {
            self.closeOpenItem(status: "completed", into: &out)
        }
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
        if reason == .toolCalls, self.functionCallCount == 0, self.formatToolBlocks > 0 {
            reason = .stop
        }
        self.startIfNeeded(into: &out)
        // An item still open was cut short when the output hit a limit.
        self.closeOpenItem(status: reason == .length ? "incomplete" : "completed", into: &out)
        self.finishReason = reason
        if self.usage != nil { self.writeTerminal(into: &out) }
    }

    private mutating func metadata(_ scanner: inout JSONScanner, into out: inout ByteBuffer) throws(JSONScanner.Failure) {
        var usage: TokenUsage?
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            guard scanner.bytes(in: key, equal: "usage") else { return try scanner.skipValue() }
            usage = try TokenUsage(converseUsage: &scanner)
        }
        guard let usage else { return }
        self.usage = usage
        // Usage belongs in the terminal event, so the terminal event waits for it.
        if self.finishReason != nil { self.writeTerminal(into: &out) }
    }

    // MARK: Response events

    private mutating func startIfNeeded(into out: inout ByteBuffer) {
        guard !self.hasWrittenEvent else { return }
        self.hasWrittenEvent = true
        for type: StaticString in ["response.created", "response.in_progress"] {
            self.beginEvent(type, into: &out)
            out.writeStaticString(",\"response\":")
            self.writeResponse(.inProgress, includesOutput: false, into: &out)
            self.endEvent(into: &out)
        }
    }

    private mutating func writeTerminal(into out: inout ByteBuffer) {
        let outcome = ResponsesJSON.Outcome(self.finishReason ?? .stop)
        self.startIfNeeded(into: &out)
        self.beginEvent(outcome.eventType, into: &out)
        out.writeStaticString(",\"response\":")
        self.writeResponse(outcome, includesOutput: true, into: &out)
        self.endEvent(into: &out)
        self.ending = .completed
    }

    private mutating func writeFailed(code: String, message: [UInt8], into out: inout ByteBuffer) {
        self.startIfNeeded(into: &out)
        let outcome = ResponsesJSON.Outcome.failed(code: code, message: message)
        self.beginEvent(outcome.eventType, into: &out)
        out.writeStaticString(",\"response\":")
        // Completed items only: an item cut by the failure never had its `.done` events.
        self.writeResponse(outcome, includesOutput: true, into: &out)
        self.endEvent(into: &out)
        self.open = nil
        self.ending = .failed(code: code)
    }

    private mutating func writeException(_ message: EventStreamMessage, into out: inout ByteBuffer) {
        let type = message.headers.exceptionType.map { String(buffer: $0) } ?? "exception"
        var text: [UInt8] = []
        message.withUnsafePayload { payload in
            var scanner = JSONScanner(payload)
            try? scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                if scanner.bytes(in: key, equal: "message") || scanner.bytes(in: key, equal: "Message") {
                    let range = try scanner.readString()
                    text = Array(UnsafeRawBufferPointer(rebasing: payload[range]))
                } else {
                    try scanner.skipValue()
                }
            }
        }
        self.writeFailed(code: type, message: text.isEmpty ? ResponsesJSON.escaped("upstream exception") : text, into: &out)
    }

    private func writeResponse(_ outcome: ResponsesJSON.Outcome, includesOutput: Bool, into out: inout ByteBuffer) {
        self.responseHead.withUnsafeBytes { head in
            self.model.withUnsafeBytes { model in
                self.outputItems.withUnsafeReadableBytes { items in
                    ResponsesJSON.writeResponse(
                        into: &out,
                        head: head,
                        model: model,
                        outcome: outcome,
                        output: includesOutput ? items : UnsafeRawBufferPointer(start: nil, count: 0),
                        usage: includesOutput ? self.usage : nil
                    )
                }
            }
        }
    }

    // MARK: Event framing

    private func beginEvent(_ type: StaticString, into out: inout ByteBuffer) {
        out.writeStaticString("event: ")
        out.writeStaticString(type)
        out.writeStaticString("\ndata: {\"type\":\"")
        out.writeStaticString(type)
        out.writeStaticString("\"")
    }

    /// `beginEvent` plus the open item's `item_id` and `output_index`.
    private func beginItemEvent(_ type: StaticString, into out: inout ByteBuffer, open: OpenItem? = nil) {
        self.beginEvent(type, into: &out)
        out.writeStaticString(",\"item_id\":\"")
        out.writeBytes(self.itemID)
        out.writeStaticString("\",\"output_index\":")
        out.writeDecimal((open ?? self.open)?.outputIndex ?? 0)
    }

    private mutating func endEvent(into out: inout ByteBuffer) {
        out.writeStaticString(",\"sequence_number\":")
        out.writeDecimal(self.sequenceNumber)
        self.sequenceNumber += 1
        out.writeStaticString("}\n\n")
    }

    private static func append(_ text: StaticString, to bytes: inout [UInt8]) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private static func appendDecimal(_ value: Int, to bytes: inout [UInt8]) {
        var divisor = 1
        while divisor <= value / 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }
}

@available(*, unavailable)
extension ResponsesStreamTranslator: Sendable {}

/// The open item's text (escaped, as its deltas came), which its `.done` events repeat: appended once
/// per delta with a capacity check and a copy, where a `ByteBuffer` write paid ~90 instructions of
/// reservation, uniqueness and exclusivity checks per delta. Value semantics (a shared store is
/// copied before it is changed); clearing keeps the capacity, so a stream allocates once per growth.
private struct ItemText {
    private typealias Storage = ManagedBuffer<(count: Int, capacity: Int), UInt8>
    private var storage: Storage

    init(capacity: Int) {
        self.storage = Self.makeStorage(capacity: capacity)
    }

    private static func makeStorage(capacity: Int) -> Storage {
        Storage.create(minimumCapacity: capacity) { _ in (count: 0, capacity: capacity) }
    }

    var isEmpty: Bool {
        self.storage.withUnsafeMutablePointerToHeader { $0.pointee.count == 0 }
    }

    mutating func removeAll() {
        if isKnownUniquelyReferenced(&self.storage) {
            self.storage.withUnsafeMutablePointerToHeader { $0.pointee.count = 0 }
        } else {
            self.storage = Self.makeStorage(capacity: self.storage.withUnsafeMutablePointerToHeader { $0.pointee.capacity })
        }
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        let (count, capacity) = self.storage.withUnsafeMutablePointerToHeader { $0.pointee }
        if count + bytes.count > capacity || !isKnownUniquelyReferenced(&self.storage) {
            self.grow(toHold: count + bytes.count)
        }
        self.storage.withUnsafeMutablePointers { header, elements in
            UnsafeMutableRawPointer(elements + header.pointee.count).copyMemory(from: source, byteCount: bytes.count)
            header.pointee.count += bytes.count
        }
    }

    /// A store of its own with room for `minimumCount` bytes, at least double the old capacity.
    private mutating func grow(toHold minimumCount: Int) {
        let (count, capacity) = self.storage.withUnsafeMutablePointerToHeader { $0.pointee }
        let grown = Self.makeStorage(capacity: max(minimumCount, capacity * 2))
        self.storage.withUnsafeMutablePointerToElements { old in
            grown.withUnsafeMutablePointers { header, elements in
                elements.update(from: old, count: count)
                header.pointee.count = count
            }
        }
        self.storage = grown
    }

    func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        self.storage.withUnsafeMutablePointers { header, elements in
            body(UnsafeRawBufferPointer(start: elements, count: header.pointee.count))
        }
    }
}
