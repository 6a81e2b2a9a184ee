package import NIOCore
package import StreamCore

/// What an API shape does with an upstream event stream: decode and verify every frame, then either
/// translate it into the client's API or pass its verified bytes on. The one stream pump
/// (``StreamRun``, driven by ``ChannelRelay`` on the server) drives it; the shape never sees a socket.
package protocol StreamProcessor: SendableMetatype {
    /// Takes one upstream read (any size, split anywhere) and appends what the client gets to `out`.
    mutating func consume(_ read: ByteBuffer, into out: inout ByteBuffer) throws
    /// The upstream body ended: checks that no partial frame is left and writes the ending.
    mutating func finish(into out: inout ByteBuffer) throws
    /// Ends the stream with `error`, in the client's API (an error event, an exception frame).
    mutating func fail(_ error: GatewayError, into out: inout ByteBuffer)
    /// Whether the stream has ended (later reads are not consumed).
    var isEnded: Bool { get }
    /// What the stream produced so far, for the ledger.
    var meter: StreamMeter { get }
    /// Whether `out` is a buffer the processor writes into (kept and cleared between writes), rather
    /// than slices of the upstream's reads handed on (clearing a slice would copy its storage).
    var writesIntoOutput: Bool { get }
}

extension StreamProcessor {
    package var writesIntoOutput: Bool { true }
}

/// What a stream produced, as the ledger reads it.
package struct StreamMeter: Sendable {
    /// What the upstream reported; `nil` when no usage event came.
    package var usage: TokenUsage?
    /// Whether `usage` is the stream's final count (it may be partial: input only, from `message_start`).
    package var isUsageComplete = false
    /// Bytes of generated content the client received, for an estimate when the usage is not complete.
    package var producedBytes = 0
    /// The finish reason in the client's API (`stop`, `end_turn`, …), once the model said it.
    package var finishReason: String?
    /// Why the stream failed, if it did: an exception frame, a corrupt frame, a time limit.
    package var failure: GatewayError.Code?

    package init() {}
}

/// A Converse or InvokeModel frame translator for one API (chat completions, Responses, Messages).
package protocol FrameTranslator {
    mutating func translate(_ message: EventStreamMessage, into out: inout ByteBuffer)
    mutating func finish(into out: inout ByteBuffer)
    mutating func fail(code: String, message: String, into out: inout ByteBuffer)
    /// `nil` while running; the failure code (ours, or Bedrock's exception name) once it failed.
    var failureCode: String? { get }
    var isEnded: Bool { get }
    var usage: TokenUsage? { get }
    /// Whether ``usage`` is final.
    var isUsageComplete: Bool { get }
    var producedBytes: Int { get }
    var finishReasonLabel: String? { get }
}

extension ChatChunkTranslator: FrameTranslator {
    package var failureCode: String? {
        if case .failed(let code) = self.ending { return code }
        return nil
    }
    package var isEnded: Bool { self.ending != nil }
    package var isUsageComplete: Bool { self.usage != nil }
    package var finishReasonLabel: String? { self.finishReason.map { String(describing: $0.openAIValue) } }
}

/// Decodes frames and hands each to a translator.
package struct TranslatingProcessor<Translator: FrameTranslator>: StreamProcessor {
    private var decoder = EventStreamDecoder()
    package private(set) var translator: Translator
    /// A failure the gateway reported (its code is ours, not the translator's string).
    private var reported: GatewayError.Code?

    package init(_ translator: Translator) {
        self.translator = translator
    }

    package mutating func consume(_ read: ByteBuffer, into out: inout ByteBuffer) throws {
        try self.decoder.feed(read)
        while !self.translator.isEnded, let message = try self.decoder.next() {
            self.translator.translate(message, into: &out)
        }
    }

    package mutating func finish(into out: inout ByteBuffer) throws {
        guard !self.translator.isEnded else { return }
        try self.decoder.finish()
        self.translator.finish(into: &out)
    }

    package mutating func fail(_ error: GatewayError, into out: inout ByteBuffer) {
        guard !self.translator.isEnded else { return }
        self.reported = error.code
        self.translator.fail(code: error.label, message: error.message, into: &out)
    }

    package var isEnded: Bool { self.translator.isEnded }

    package var meter: StreamMeter {
        var meter = StreamMeter()
        meter.usage = self.translator.usage
        meter.isUsageComplete = self.translator.isUsageComplete
        meter.producedBytes = self.translator.producedBytes
        meter.finishReason = self.translator.finishReasonLabel
        meter.failure = self.reported ?? self.translator.failureCode.map { GatewayError.Code(streamFailure: $0) }
        return meter
    }
}

/// The `/bedrock` streams: every frame decoded and CRC-checked, metered, and forwarded as the bytes
/// it arrived as; a frame is never split from its checks, so a corrupt one is never forwarded.
package struct PassthroughProcessor: StreamProcessor {
    private var decoder = EventStreamDecoder()
    private let operation: BedrockOperation
    private var invokeMeter = InvokeStreamTranslator()
    private var converseMeter = ConverseStreamMeter()
    /// Bytes received and not yet forwarded; the verified prefix goes out after each read.
    private var pending = ByteBuffer()
    private var failure: GatewayError.Code?
    private var ended = false

    package init(operation: BedrockOperation) {
        self.operation = operation
    }

    package mutating func consume(_ read: ByteBuffer, into out: inout ByteBuffer) throws {
        if self.pending.readableBytes == 0 { self.pending = read } else { self.pending.writeImmutableBuffer(read) }
        try self.decoder.feed(read)
        var verified = 0
        while let message = try self.decoder.next() {
            verified += 16 + message.bodyLength
            if self.operation == .invokeWithResponseStream {
                if case .failed(let type, _) = self.invokeMeter.observe(message), self.failure == nil {
                    self.failure = GatewayError.Code(bedrockException: type)
                }
            } else {
                self.converseMeter.observe(message)
                if self.failure == nil, let type = self.converseMeter.failure {
                    self.failure = GatewayError.Code(bedrockException: type)
                }
            }
        }
        guard verified > 0, let chunk = self.pending.readSlice(length: verified) else { return }
        if self.pending.readableBytes == 0 { self.pending = ByteBuffer() }
        if out.readableBytes == 0 { out = chunk } else { out.writeImmutableBuffer(chunk) }
    }

    package mutating func finish(into out: inout ByteBuffer) throws {
        guard !self.ended else { return }
        self.ended = true
        try self.decoder.finish()
    }

    /// Frames verified before the failure have gone out; a `modelStreamErrorException` frame follows,
    /// as Bedrock sends when a stream fails after it started (Claude Code then falls back to `/invoke`).
    package mutating func fail(_ error: GatewayError, into out: inout ByteBuffer) {
        guard !self.ended else { return }
        self.ended = true
        self.failure = error.code
        Self.writeExceptionFrame(message: error.message, into: &out)
    }

    package var isEnded: Bool { self.ended }

    /// The client gets slices of the upstream's own reads: nothing to keep between writes.
    package var writesIntoOutput: Bool { false }

    package var meter: StreamMeter {
        var meter = StreamMeter()
        if self.operation == .invokeWithResponseStream {
            meter.usage = self.invokeMeter.usage
            meter.isUsageComplete = self.invokeMeter.isComplete
            meter.producedBytes = self.invokeMeter.producedBytes
            meter.finishReason = self.invokeMeter.stopReason
        } else {
            meter.usage = self.converseMeter.usage
            meter.isUsageComplete = self.converseMeter.usage != nil
            meter.producedBytes = self.converseMeter.producedBytes
            meter.finishReason = self.converseMeter.stopReason
        }
        meter.failure = self.failure
        return meter
    }

    /// A `modelStreamErrorException` frame with `message`.
    static func writeExceptionFrame(message: String, into buffer: inout ByteBuffer) {
        var payload = ByteBuffer()
        payload.writeStaticString("{\"message\":")
        payload.writeJSONString(message)
        payload.writeStaticString(",\"originalStatusCode\":502}")
        // Three short headers and a small payload: far inside every frame limit, so this cannot fail.
        try? EventStreamEncoder.write(
            headers: [
                EventStreamHeader(name: ":exception-type", value: .init(string: "modelStreamErrorException")),
                EventStreamHeader(name: ":content-type", value: .init(string: "application/json")),
                EventStreamHeader(name: ":message-type", value: .init(string: "exception")),
            ],
            payload: payload,
            into: &buffer
        )
    }
}
