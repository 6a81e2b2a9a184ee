internal import NIOCore
internal import StreamCore

/// Produces the frames of one streamed answer, one per call, each rendered right before it is written
/// (so a latency stamp is read as late as possible).
protocol FrameSource {
    /// Frames in the whole stream.
    var frameCount: Int { get }
    /// Appends the next frame to `buffer`; `false` when the stream is complete.
    mutating func writeNextFrame(into buffer: inout ByteBuffer) throws -> Bool
}

/// Event-stream headers in Bedrock's order: `:event-type`, `:content-type`, `:message-type`.
enum FrameHeaders {
    static func event(_ type: String) -> [EventStreamHeader] {
        [
            EventStreamHeader(name: ":event-type", value: .init(string: type)),
            EventStreamHeader(name: ":content-type", value: .init(string: "application/json")),
            EventStreamHeader(name: ":message-type", value: .init(string: "event")),
        ]
    }

    static func exception(_ type: String) -> [EventStreamHeader] {
        [
            EventStreamHeader(name: ":exception-type", value: .init(string: type)),
            EventStreamHeader(name: ":content-type", value: .init(string: "application/json")),
            EventStreamHeader(name: ":message-type", value: .init(string: "exception")),
        ]
    }

    static let messageStart = event("messageStart")
    static let contentBlockStart = event("contentBlockStart")
    static let contentBlockDelta = event("contentBlockDelta")
    static let contentBlockStop = event("contentBlockStop")
    static let messageStop = event("messageStop")
    static let metadata = event("metadata")
    static let chunk = event("chunk")
}

/// ConverseStream frames (BEDROCK_API.md §2), fields in Bedrock's order.
struct ConverseStreamSource: FrameSource {
    private var cursor: ContentCursor
    private let plan: ResponsePlan
    private let start: ContinuousClock.Instant
    private var frame = 0

    init(plan: ResponsePlan, start: ContinuousClock.Instant) {
        self.cursor = ContentCursor(plan: plan, startsEveryBlock: false)
        self.plan = plan
        self.start = start
    }

    var frameCount: Int { self.cursor.frameCount }

    mutating func writeNextFrame(into buffer: inout ByteBuffer) throws -> Bool {
        guard let step = self.cursor.next() else { return false }
        defer { self.frame += 1 }
        var payload = ByteBuffer()
        let headers: [EventStreamHeader]
        switch step {
        case .messageStart:
            headers = FrameHeaders.messageStart
            payload.writeStaticString("{\"p\":")
            payload.writePadding(seed: self.plan.seed, frame: self.frame)
            payload.writeStaticString(",\"role\":\"assistant\"}")
        case .blockStart(let block):
            headers = FrameHeaders.contentBlockStart
            let tool = self.plan.toolCalls[block - self.plan.toolBlockIndex(0)]
            self.writeIndex(block, into: &payload)
            payload.writeStaticString(",\"start\":{\"toolUse\":{\"toolUseId\":")
            payload.writeJSONString("tooluse_" + tool.idSuffix)
            payload.writeStaticString(",\"name\":")
            payload.writeJSONString(tool.name)
            payload.writeStaticString("}}")
            self.writePaddingAndClose(into: &payload)
        case .reasoningDelta(let block, let piece):
            headers = FrameHeaders.contentBlockDelta
            self.writeIndex(block, into: &payload)
            payload.writeStaticString(",\"delta\":{\"reasoningContent\":{\"text\":")
            payload.writeJSONString(ResponsePlan.reasoningPieces[piece])
            payload.writeStaticString("}}")
            self.writePaddingAndClose(into: &payload)
        case .signatureDelta(let block):
            headers = FrameHeaders.contentBlockDelta
            self.writeIndex(block, into: &payload)
            payload.writeStaticString(",\"delta\":{\"reasoningContent\":{\"signature\":")
            payload.writeJSONString(self.plan.signature)
            payload.writeStaticString("}}")
            self.writePaddingAndClose(into: &payload)
        case .textDelta(let block, let piece):
            headers = FrameHeaders.contentBlockDelta
            self.writeIndex(block, into: &payload)
            payload.writeStaticString(",\"delta\":{\"text\":\"")
            if self.plan.stamps { payload.writeString(ResponsePlan.stamp()) }
            self.plan.writeEscapedTextPiece(piece, into: &payload)
            payload.writeStaticString("\"}")
            self.writePaddingAndClose(into: &payload)
        case .toolDelta(let block, let tool, let piece):
            headers = FrameHeaders.contentBlockDelta
            self.writeIndex(block, into: &payload)
            payload.writeStaticString(",\"delta\":{\"toolUse\":{\"input\":")
            payload.writeJSONString(self.plan.toolCalls[tool].pieces[piece])
            payload.writeStaticString("}}")
            self.writePaddingAndClose(into: &payload)
        case .blockStop(let block):
            headers = FrameHeaders.contentBlockStop
            self.writeIndex(block, into: &payload)
            self.writePaddingAndClose(into: &payload)
        case .messageStop:
            headers = FrameHeaders.messageStop
            payload.writeStaticString("{\"p\":")
            payload.writePadding(seed: self.plan.seed, frame: self.frame)
            payload.writeStaticString(",\"stopReason\":")
            payload.writeJSONString(self.plan.stopReason)
            payload.writeStaticString("}")
        case .trailer:
            headers = FrameHeaders.metadata
            payload.writeStaticString("{\"metrics\":{\"latencyMs\":")
            payload.writeDecimal(Self.milliseconds(since: self.start))
            payload.writeStaticString("},\"p\":")
            payload.writePadding(seed: self.plan.seed, frame: self.frame)
            payload.writeStaticString(",\"usage\":")
            ConverseUsage.write(self.plan, into: &payload)
            payload.writeStaticString("}")
        }
        try EventStreamEncoder.write(headers: headers, payload: payload, into: &buffer)
        return true
    }

    private func writeIndex(_ block: Int, into payload: inout ByteBuffer) {
        payload.writeStaticString("{\"contentBlockIndex\":")
        payload.writeDecimal(block)
    }

    private func writePaddingAndClose(into payload: inout ByteBuffer) {
        payload.writeStaticString(",\"p\":")
        payload.writePadding(seed: self.plan.seed, frame: self.frame)
        payload.writeStaticString("}")
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Int {
        Int((ContinuousClock.now - start).totalMilliseconds)
    }
}

/// Converse `usage`: `inputTokens`, `outputTokens`, `totalTokens`, then the cache counts when the
/// scenario reports them.
enum ConverseUsage {
    static func write(_ plan: ResponsePlan, into payload: inout ByteBuffer) {
        payload.writeStaticString("{\"inputTokens\":")
        payload.writeDecimal(plan.inputTokens)
        payload.writeStaticString(",\"outputTokens\":")
        payload.writeDecimal(plan.outputTokens)
        payload.writeStaticString(",\"totalTokens\":")
        payload.writeDecimal(plan.totalTokens)
        if let cacheRead = plan.cacheReadInputTokens {
            payload.writeStaticString(",\"cacheReadInputTokens\":")
            payload.writeDecimal(cacheRead)
        }
        if let cacheWrite = plan.cacheWriteInputTokens {
            payload.writeStaticString(",\"cacheWriteInputTokens\":")
            payload.writeDecimal(cacheWrite)
        }
        payload.writeStaticString("}")
    }
}

/// InvokeModelWithResponseStream frames of an Anthropic model: `chunk` events whose payload is
/// `{"bytes":"<base64 of one Anthropic streaming event>","p":"…"}` (BEDROCK_API.md §3).
struct InvokeStreamSource: FrameSource {
    private var cursor: ContentCursor
    private let plan: ResponsePlan
    private let model: String
    private let start: ContinuousClock.Instant
    private let firstByteLatency: Int
    private var frame = 0
    /// Reused for each event's JSON before it is base64-encoded.
    private var event = ByteBuffer()

    init(plan: ResponsePlan, model: String, start: ContinuousClock.Instant, firstByteLatency: Int) {
        self.cursor = ContentCursor(plan: plan, startsEveryBlock: true)
        self.plan = plan
        self.model = model
        self.start = start
        self.firstByteLatency = firstByteLatency
    }

    var frameCount: Int { self.cursor.frameCount }

    mutating func writeNextFrame(into buffer: inout ByteBuffer) throws -> Bool {
        guard let step = self.cursor.next() else { return false }
        defer { self.frame += 1 }
        // Moved out and back so the closure below may read `self` while the event is written.
        var event = self.event
        self.event = ByteBuffer()
        event.clear()
        let (plan, start, firstByteLatency) = (self.plan, self.start, self.firstByteLatency)
        AnthropicEvents.write(step, plan: plan, model: self.model, into: &event) {
            Self.invocationMetrics(plan: plan, start: start, firstByteLatency: firstByteLatency)
        }
        defer { self.event = event }
        var payload = ByteBuffer()
        payload.reserveCapacity(event.readableBytes * 4 / 3 + 80)
        payload.writeStaticString("{\"bytes\":\"")
        payload.writeBase64(of: event)
        payload.writeStaticString("\",\"p\":")
        payload.writePadding(seed: self.plan.seed, frame: self.frame)
        payload.writeStaticString("}")
        try EventStreamEncoder.write(headers: FrameHeaders.chunk, payload: payload, into: &buffer)
        return true
    }

    static func invocationMetrics(plan: ResponsePlan, start: ContinuousClock.Instant, firstByteLatency: Int) -> ByteBuffer {
        var metrics = ByteBuffer()
        metrics.writeStaticString("{\"inputTokenCount\":")
        metrics.writeDecimal(plan.inputTokens)
        metrics.writeStaticString(",\"outputTokenCount\":")
        metrics.writeDecimal(plan.outputTokens)
        metrics.writeStaticString(",\"invocationLatency\":")
        metrics.writeDecimal(ConverseStreamSource.milliseconds(since: start))
        metrics.writeStaticString(",\"firstByteLatency\":")
        metrics.writeDecimal(firstByteLatency)
        if let cacheRead = plan.cacheReadInputTokens {
            metrics.writeStaticString(",\"cacheReadInputTokenCount\":")
            metrics.writeDecimal(cacheRead)
        }
        if let cacheWrite = plan.cacheWriteInputTokens {
            metrics.writeStaticString(",\"cacheWriteInputTokenCount\":")
            metrics.writeDecimal(cacheWrite)
        }
        metrics.writeStaticString("}")
        return metrics
    }
}

/// Anthropic Messages streaming events (CLAUDE_CODE.md §4.1).
enum AnthropicEvents {
    static func write(
        _ step: ContentStep,
        plan: ResponsePlan,
        model: String,
        into event: inout ByteBuffer,
        invocationMetrics: () -> ByteBuffer
    ) {
        switch step {
        case .messageStart:
            event.writeStaticString("{\"type\":\"message_start\",\"message\":{\"id\":")
            event.writeJSONString(Self.messageID(plan))
            event.writeStaticString(",\"type\":\"message\",\"role\":\"assistant\",\"model\":")
            event.writeJSONString(model)
            event.writeStaticString(",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":")
            Self.writeUsage(plan, outputTokens: 1, into: &event)
            event.writeStaticString("}}")
        case .blockStart(let block):
            event.writeStaticString("{\"type\":\"content_block_start\",\"index\":")
            event.writeDecimal(block)
            event.writeStaticString(",\"content_block\":")
            if plan.reasoning, block == 0 {
                event.writeStaticString("{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}")
            } else if plan.hasText, block == plan.textBlockIndex {
                event.writeStaticString("{\"type\":\"text\",\"text\":\"\"}}")
            } else {
                let tool = plan.toolCalls[block - plan.toolBlockIndex(0)]
                event.writeStaticString("{\"type\":\"tool_use\",\"id\":")
                event.writeJSONString("toolu_bdrk_01" + tool.idSuffix)
                event.writeStaticString(",\"name\":")
                event.writeJSONString(tool.name)
                event.writeStaticString(",\"input\":{}}}")
            }
        case .reasoningDelta(let block, let piece):
            Self.writeDeltaStart(block, type: "thinking_delta", field: "thinking", into: &event)
            event.writeJSONString(ResponsePlan.reasoningPieces[piece])
            event.writeStaticString("}}")
        case .signatureDelta(let block):
            Self.writeDeltaStart(block, type: "signature_delta", field: "signature", into: &event)
            event.writeJSONString(plan.signature)
            event.writeStaticString("}}")
        case .textDelta(let block, let piece):
            Self.writeDeltaStart(block, type: "text_delta", field: "text", into: &event)
            event.writeStaticString("\"")
            if plan.stamps { event.writeString(ResponsePlan.stamp()) }
            plan.writeEscapedTextPiece(piece, into: &event)
            event.writeStaticString("\"}}")
        case .toolDelta(let block, let tool, let piece):
            Self.writeDeltaStart(block, type: "input_json_delta", field: "partial_json", into: &event)
            event.writeJSONString(plan.toolCalls[tool].pieces[piece])
            event.writeStaticString("}}")
        case .blockStop(let block):
            event.writeStaticString("{\"type\":\"content_block_stop\",\"index\":")
            event.writeDecimal(block)
            event.writeStaticString("}")
        case .messageStop:
            event.writeStaticString("{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":")
            event.writeJSONString(plan.stopReason)
            event.writeStaticString(",\"stop_sequence\":")
            Self.writeStopSequence(plan, into: &event)
            event.writeStaticString("},\"usage\":{\"output_tokens\":")
            event.writeDecimal(plan.outputTokens)
            event.writeStaticString("}}")
        case .trailer:
            event.writeStaticString("{\"type\":\"message_stop\",\"amazon-bedrock-invocationMetrics\":")
            var metrics = invocationMetrics()
            event.writeBuffer(&metrics)
            event.writeStaticString("}")
        }
    }

    private static func writeDeltaStart(_ block: Int, type: StaticString, field: StaticString, into event: inout ByteBuffer) {
        event.writeStaticString("{\"type\":\"content_block_delta\",\"index\":")
        event.writeDecimal(block)
        event.writeStaticString(",\"delta\":{\"type\":\"")
        event.writeStaticString(type)
        event.writeStaticString("\",\"")
        event.writeStaticString(field)
        event.writeStaticString("\":")
    }

    static func writeStopSequence(_ plan: ResponsePlan, into event: inout ByteBuffer) {
        if let stopSequence = plan.stopSequence {
            event.writeJSONString(stopSequence)
        } else {
            event.writeStaticString("null")
        }
    }

    /// Anthropic `usage`; `output_tokens` is 1 in `message_start`, as Anthropic sends it.
    static func writeUsage(_ plan: ResponsePlan, outputTokens: Int, into event: inout ByteBuffer) {
        event.writeStaticString("{\"input_tokens\":")
        event.writeDecimal(plan.inputTokens)
        event.writeStaticString(",\"cache_creation_input_tokens\":")
        event.writeDecimal(plan.cacheWriteInputTokens ?? 0)
        event.writeStaticString(",\"cache_read_input_tokens\":")
        event.writeDecimal(plan.cacheReadInputTokens ?? 0)
        event.writeStaticString(",\"output_tokens\":")
        event.writeDecimal(outputTokens)
        event.writeStaticString("}")
    }

    static func messageID(_ plan: ResponsePlan) -> String {
        "msg_bdrk_01" + ResponsePlan.token(seed: plan.seed ^ 0x6d73_67, length: 22)
    }
}
