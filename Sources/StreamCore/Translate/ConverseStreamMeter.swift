import NIOCore

/// Meters a ConverseStream passed through unchanged (the `/bedrock/…/converse-stream` route): reads
/// the stop reason and the `metadata` usage, ignores the rest, writes nothing.
package struct ConverseStreamMeter {
    package private(set) var usage: TokenUsage?
    /// Bedrock's stop reason, once `messageStop` came.
    package private(set) var stopReason: String?
    /// The exception or error that ended the stream, if one did.
    package private(set) var failure: String?
    /// Bytes of generated content so far (see ``ChatChunkTranslator/producedBytes``).
    package private(set) var producedBytes = 0
    private var dispatch = FrameDispatch<ConverseStreamEvent>()

    package init() {}

    /// Whether the stream is complete: `messageStop` and `metadata` have both arrived.
    package var isComplete: Bool { self.stopReason != nil && self.usage != nil }

    package mutating func observe(_ message: EventStreamMessage) {
        let (messageType, event) = self.dispatch.kind(of: message)
        switch messageType {
        case .exception?:
            self.failure = message.headers.exceptionType.map { String(buffer: $0) } ?? "exception"
            return
        case .error?:
            self.failure = message.headers.errorCode.map { String(buffer: $0) } ?? "error"
            return
        case .unknown?:
            self.failure = "unknown_message_type"
            return
        case .event?, nil:
            break
        }
        if event == .contentBlockDelta {
            self.producedBytes &+= message.withUnsafePayload { payload in
                var scanner = JSONScanner(payload)
                return (try? scanner.generatedBytes()) ?? 0
            }
            return
        }
        guard event == .messageStop || event == .metadata else { return }
        message.withUnsafePayload { payload in
            var scanner = JSONScanner(payload)
            var usage = TokenUsage()
            var sawUsage = false
            try? scanner.forEachMember { scanner, key throws(JSONScanner.Failure) in
                if scanner.bytes(in: key, equal: "stopReason") {
                    let range = try scanner.readString()
                    self.stopReason = String(decoding: UnsafeRawBufferPointer(rebasing: payload[range]), as: UTF8.self)
                } else if scanner.bytes(in: key, equal: "usage") {
                    sawUsage = true
                    usage = try TokenUsage(converseUsage: &scanner)
                } else {
                    try scanner.skipValue()
                }
            }
            if sawUsage { self.usage = usage }
        }
    }
}

@available(*, unavailable)
extension ConverseStreamMeter: Sendable {}
