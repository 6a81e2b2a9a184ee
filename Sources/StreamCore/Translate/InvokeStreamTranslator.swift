package import NIOCore

/// Reads Bedrock InvokeModelWithResponseStream frames of Anthropic models: meters them and, when
/// asked, re-emits them as Anthropic Messages server-sent events.
///
/// Each `chunk` frame carries `{"bytes":"<base64 of one Anthropic streaming event>","p":"…"}`. The
/// base64 is decoded into one buffer reused for the whole stream when metering, or straight into the
/// output when translating; the event's `type` is found by scanning the decoded bytes where they
/// are, and usage is read from `message_start` (`message.usage`), `message_delta` (`usage`) and the
/// `amazon-bedrock-invocationMetrics` Bedrock adds to `message_stop`, which wins when present.
///
/// Two uses: the `/bedrock` passthrough forwards the original bytes and calls ``observe(_:)`` only
/// to meter; a `/v1/messages` route calls ``translate(_:into:)`` to write
/// `event: <type>\ndata: <json>\n\n` per event.
package struct InvokeStreamTranslator {
    /// What one frame was.
    package enum Observation: Equatable {
        /// An Anthropic event: decoded and metered (and, by ``InvokeStreamTranslator/translate(_:into:)``, written).
        case event
        /// A frame that is not a `chunk` event (unknown events are skipped, as botocore does).
        case skipped
        /// An exception or error frame: the stream ends.
        case failed(type: String, message: String)
        /// A `chunk` whose payload is not what Bedrock sends.
        case malformed
    }

    /// Usage so far; complete once `message_stop` has been seen.
    package private(set) var usage = TokenUsage()
    /// Whether `message_stop` arrived.
    package private(set) var isComplete = false
    /// Anthropic's `stop_reason` from `message_delta`, as Bedrock/Anthropic spell it (`end_turn`, …).
    package private(set) var stopReason: String?
    /// Bytes of generated content so far (see ``ChatChunkTranslator/producedBytes``).
    package private(set) var producedBytes = 0
    /// Where ``observe(_:)`` decodes each event (``translate(_:into:)`` decodes into its output).
    private var decodedEvent = ByteBuffer()

    private var sawInvocationMetrics = false
    /// Where the last event's `type` value sits in its decoded bytes.
    private var eventType = 0..<0
    private var dispatch = FrameDispatch<InvokeStreamEvent>()

    package init() {}

    /// Decodes and meters one frame.
    package mutating func observe(_ message: EventStreamMessage) -> Observation {
        if let other = self.classify(message) { return other }
        if self.decodedEvent.capacity == 0 {
            // One allocation at the first chunk instead of a doubling per larger event early in the
            // stream (events are a few hundred bytes, message_start the largest; a bigger one grows
            // it once), and none for a meter that never sees a chunk.
            self.decodedEvent.reserveCapacity(1024)
        }
        self.decodedEvent.clear()
        var decoded = false
        message.withUnsafePayload { payload in
            self.decodedEvent.writeRawBytes(maximumLength: Base64.maximumWrittenCount(encodedCount: payload.count)) { target in
                guard let count = Self.decodeEvent(in: payload, into: target) else { return 0 }
                decoded = true
                return count
            }
        }
        guard decoded else { return .malformed }
        let metered = self.decodedEvent.withUnsafeReadableBytes { self.meterEvent($0) }
        return metered ? .event : .malformed
    }

    /// Decodes and meters one frame and writes it as Anthropic Messages SSE.
    ///
    /// - Returns: the observation; after ``Observation/failed(type:message:)`` or
    ///   ``Observation/malformed`` an `error` event has been written and the stream should end.
    @discardableResult
    package mutating func translate(_ message: EventStreamMessage, into out: inout ByteBuffer) -> Observation {
        let observation = self.classify(message) ?? self.relayChunk(message, into: &out)
        switch observation {
        case .event, .skipped:
            break
        case .failed(let type, let text):
            Self.writeError(type: Self.anthropicErrorType(forBedrockException: type), message: text, into: &out)
        case .malformed:
            Self.writeError(type: "api_error", message: "upstream sent a malformed event", into: &out)
        }
        return observation
    }

    /// What a frame that is not a `chunk` event is; `nil` for a chunk.
    @inline(__always)
    private mutating func classify(_ message: EventStreamMessage) -> Observation? {
        let (messageType, event) = self.dispatch.kind(of: message)
        switch messageType {
        case .exception?:
            return .failed(
                type: message.headers.exceptionType.map { String(buffer: $0) } ?? "exception",
                message: Self.exceptionMessage(message.payload)
            )
        case .error?:
            return .failed(
                type: message.headers.errorCode.map { String(buffer: $0) } ?? "error",
                message: message.headers.errorMessage.map { String(buffer: $0) } ?? "upstream error"
            )
        case .unknown?:
            return .malformed
        case .event?, nil:
            return event == .chunk ? nil : .skipped
        }
    }

    /// The header a `content_block_delta` event gets, `event: content_block_delta\ndata: `: where a
    /// chunk is decoded in the output, so the common event needs no move once its type is known.
    private static let predictedHeaderCount = 7 + 19 + 7

    /// Decodes a chunk's event straight into `out`, meters it there and writes
    /// `event: <type>\ndata: <json>\n\n` around it: one reservation, one write and no copy of the
    /// event for the common case (an intermediate buffer and a second write cost ~300 instructions a
    /// chunk). The event is decoded after room for the `content_block_delta` header; another type
    /// moves it once. Nothing is committed to `out` unless the event decoded and metered.
    private mutating func relayChunk(_ message: EventStreamMessage, into out: inout ByteBuffer) -> Observation {
        message.withUnsafePayload { payload -> Observation in
            let gap = Self.predictedHeaderCount
            // The decoder's slack (16 bytes) also covers the closing `\n\n` and a type up to 16 bytes
            // longer than `content_block_delta` (Anthropic's are shorter); a longer one takes the copy
            // below. (Sized by the payload, as the string's end is found while decoding.)
            let reserved = gap + Base64.maximumWrittenCount(encodedCount: payload.count)
            var observation = Observation.malformed
            var isTooLong = false
            out.writeRawBytes(maximumLength: reserved) { start -> Int in
                guard let count = Self.decodeEvent(in: payload, into: start + gap),
                    self.meterEvent(UnsafeRawBufferPointer(start: start + gap, count: count))
                else { return 0 }  // nothing is committed to `out`
                observation = .event
                let type = self.eventType
                let header = 14 + type.count
                guard header + count + 2 <= reserved else {
                    isTooLong = true
                    self.decodedEvent.clear()
                    self.decodedEvent.writeBytes(UnsafeRawBufferPointer(start: start + gap, count: count))
                    return 0
                }
                if header != gap {
                    // Overlapping when the header is shorter or longer by less than the event: a memmove.
                    (start + header).copyMemory(from: start + gap, byteCount: count)
                }
                // The type is copied from the event's new place, after the header (no overlap).
                Self.store("event: ", at: start)
                (start + 7).copyMemory(from: start + header + type.lowerBound, byteCount: type.count)
                Self.store("\ndata: ", at: start + 7 + type.count)
                Self.store("\n\n", at: start + header + count)
                return header + count + 2
            }
            if isTooLong {
                let type = self.eventType
                self.decodedEvent.withUnsafeReadableBytes { event in
                    out.writeRaw(maximumLength: event.count + type.count + 16) { writer in
                        writer.append("event: ")
                        writer.append(UnsafeRawBufferPointer(rebasing: event[type]))
                        writer.append("\ndata: ")
                        writer.append(event)
                        writer.append("\n\n")
                    }
                }
            }
            return observation
        }
    }

    @inline(__always)
    private static func store(_ text: StaticString, at target: UnsafeMutableRawPointer) {
        target.copyMemory(from: text.utf8Start, byteCount: text.utf8CodeUnitCount)
    }

    /// Decodes the event in a `chunk` payload into `target`, which has room for
    /// `Base64.maximumWrittenCount(encodedCount: payload.count)` bytes; `nil` when the payload holds no
    /// base64 event.
    @inline(__always)
    private static func decodeEvent(in payload: UnsafeRawBufferPointer, into target: UnsafeMutableRawPointer) -> Int? {
        // Bedrock's own layout, `{"bytes":"<base64>",…}`: the decoder finds the string's end as it
        // goes, so the payload is read once. Anything else (another layout, a string that is not plain
        // base64) goes through the general scan, which decides as before.
        var prefix = JSONScanner(payload)
        if prefix.match("{\"bytes\":\""), case let start = prefix.index,
            let (count, length) = Base64.decode(stringAt: UnsafeRawBufferPointer(rebasing: payload[start..<payload.count]), into: target)
        {
            let end = start + length
            if end + 1 < payload.count, payload[end + 1] == UInt8(ascii: ",") || payload[end + 1] == UInt8(ascii: "}") {
                return count
            }
        }
        guard let base64 = Self.base64Range(in: payload) else { return nil }
        return Base64.decode(UnsafeRawBufferPointer(rebasing: payload[base64]), readable: payload.count - base64.lowerBound, into: target)
    }

    /// Where a `chunk` payload's base64 string is (between its quotes), or `nil` when the payload has
    /// none.
    @inline(__always)
    private static func base64Range(in payload: UnsafeRawBufferPointer) -> Range<Int>? {
        // Bedrock's own layout, `{"bytes":"<base64>",…}`: the string is found with one vector scan
        // (base64 has no quote, backslash or control byte); any other layout goes through the
        // general scan. The frame's CRCs have already vouched for the bytes.
        var prefix = JSONScanner(payload)
        if prefix.match("{\"bytes\":\"") {
            let index = prefix.index
            let end = JSONSpecialBytes.first(in: payload, from: index)
            if end + 1 < payload.count, payload[end] == UInt8(ascii: "\""),
                payload[end + 1] == UInt8(ascii: ",") || payload[end + 1] == UInt8(ascii: "}")
            {
                return index..<end
            }
        }
        var scanner = JSONScanner(payload)
        var bytes: Range<Int>?
        do {
            try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                if scanner.bytes(in: key, equal: "bytes") {
                    bytes = try scanner.readString()
                } else {
                    try scanner.skipValue()
                }
            }
        } catch {
            return nil
        }
        return bytes
    }

    /// Writes an Anthropic `error` event.
    package static func writeError(type: String, message: String, into out: inout ByteBuffer) {
        out.writeStaticString("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":")
        out.writeJSONString(type)
        out.writeStaticString(",\"message\":")
        out.writeJSONString(message)
        out.writeStaticString("}}\n\n")
    }

    /// Anthropic's error type for a Bedrock exception name.
    package static func anthropicErrorType(forBedrockException name: String) -> String {
        switch name {
        case "throttlingException", "ThrottlingException": "rate_limit_error"
        case "serviceUnavailableException", "ServiceUnavailableException", "modelNotReadyException": "overloaded_error"
        case "validationException", "ValidationException": "invalid_request_error"
        default: "api_error"
        }
    }

    // MARK: Metering

    /// Meters one decoded event and finds its type (``eventType``); `false` when it is not a JSON
    /// object with a `type`.
    @inline(__always)
    private mutating func meterEvent(_ event: UnsafeRawBufferPointer) -> Bool {
        if self.meterDelta(event) { return true }
        var scanner = JSONScanner(event)
        do {
            try self.meter(&scanner)
            return true
        } catch {
            return false
        }
    }

    /// The hot path, most frames of a stream: a text, thinking or tool-input delta laid out as
    /// Anthropic writes it, `{"type":"content_block_delta","index":N,"delta":{"type":"<kind>","<field>":"…"}}`.
    /// The layout is checked byte for byte and the one string scanned; anything else (another
    /// member, another order, whitespace, a signature delta) returns false and goes to ``meter(_:)``,
    /// which reads any layout.
    private mutating func meterDelta(_ event: UnsafeRawBufferPointer) -> Bool {
        var scanner = JSONScanner(event)
        guard scanner.match("{\"type\":\"content_block_delta\",\"index\":"), (try? scanner.readInteger()) != nil,
            scanner.match(",\"delta\":{\"type\":\""),
            scanner.match("text_delta\",\"text\":") || scanner.match("input_json_delta\",\"partial_json\":")
                || scanner.match("thinking_delta\",\"thinking\":"),
            let string = try? scanner.readString(), scanner.match("}}"), scanner.index == event.count
        else { return false }
        self.producedBytes &+= string.count
        self.eventType = Self.deltaTypeRange
        return true
    }

    /// Where `content_block_delta` sits in the layout ``meterDelta(_:)`` accepts.
    private static let deltaTypeRange = 9..<28

    private mutating func meter(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) {
        var type = 0..<0
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            if scanner.bytes(in: key, equal: "type") {
                type = try scanner.readString()
            } else if scanner.bytes(in: key, equal: "message") {
                // message_start: {"message":{…,"usage":{…}}}
                try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                    if scanner.bytes(in: key, equal: "usage") {
                        try self.readAnthropicUsage(&scanner)
                    } else {
                        try scanner.skipValue()
                    }
                }
            } else if scanner.bytes(in: key, equal: "usage") {
                // message_delta: {"usage":{"output_tokens":N}}
                try self.readAnthropicUsage(&scanner)
            } else if scanner.bytes(in: key, equal: "delta"), scanner.peek() == UInt8(ascii: "{") {
                try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                    if scanner.bytes(in: key, equal: "text") || scanner.bytes(in: key, equal: "partial_json")
                        || scanner.bytes(in: key, equal: "thinking"), scanner.peek() == UInt8(ascii: "\"")
                    {
                        self.producedBytes &+= try scanner.readString().count
                    } else if scanner.bytes(in: key, equal: "stop_reason"), scanner.peek() == UInt8(ascii: "\"") {
                        let range = try scanner.readString()
                        self.stopReason = String(decoding: UnsafeRawBufferPointer(rebasing: scanner.bytes[range]), as: UTF8.self)
                    } else {
                        try scanner.skipValue()
                    }
                }
            } else if scanner.bytes(in: key, equal: "amazon-bedrock-invocationMetrics") {
                try self.readInvocationMetrics(&scanner)
            } else {
                try scanner.skipValue()
            }
        }
        guard !type.isEmpty else { throw JSONScanner.Failure(offset: 0) }
        self.eventType = type
        if scanner.bytes(in: type, equal: "message_stop") { self.isComplete = true }
    }

    private mutating func readAnthropicUsage(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) {
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            // Invocation metrics, once seen, are Bedrock's own count and are not overwritten.
            if self.sawInvocationMetrics || scanner.peek() == UInt8(ascii: "n") { return try scanner.skipValue() }
            if scanner.bytes(in: key, equal: "input_tokens") {
                self.usage.inputTokens = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "output_tokens") {
                // Cumulative in message_delta: the last value is the total.
                self.usage.outputTokens = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "cache_read_input_tokens") {
                self.usage.cacheReadInputTokens = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "cache_creation_input_tokens") {
                self.usage.cacheWriteInputTokens = try scanner.readInteger()
            } else {
                try scanner.skipValue()
            }
        }
    }

    private mutating func readInvocationMetrics(_ scanner: inout JSONScanner) throws(JSONScanner.Failure) {
        self.sawInvocationMetrics = true
        try scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
            if scanner.bytes(in: key, equal: "inputTokenCount") {
                self.usage.inputTokens = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "outputTokenCount") {
                self.usage.outputTokens = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "cacheReadInputTokenCount") {
                self.usage.cacheReadInputTokens = try scanner.readInteger()
            } else if scanner.bytes(in: key, equal: "cacheWriteInputTokenCount") {
                self.usage.cacheWriteInputTokens = try scanner.readInteger()
            } else {
                try scanner.skipValue()
            }
        }
    }

    /// The `message` of an exception payload (once per stream, so a full parse is fine).
    private static func exceptionMessage(_ payload: ByteBuffer) -> String {
        let parsed = payload.withUnsafeReadableBytes { try? JSONParser.parse($0, maximumNestingDepth: 16) }
        let object = parsed?.objectValue
        return (object?.present("message") ?? object?.present("Message"))?.stringValue ?? "upstream exception"
    }
}

@available(*, unavailable)
extension InvokeStreamTranslator: Sendable {}

/// InvokeModelWithResponseStream's one event: `chunk`; anything else is skipped.
enum InvokeStreamEvent: FrameEventKind {
    case chunk, other

    init(eventType name: UnsafeRawBufferPointer) {
        self = name.elementsEqual("chunk") ? .chunk : .other
    }
}
