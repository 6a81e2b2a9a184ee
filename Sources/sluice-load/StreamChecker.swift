import Histogram
import NIOCore
import StreamCore

/// Reads one streamed response body as it arrives and decides whether its content is complete:
/// OpenAI SSE chunks through ``SSEParser``, or Bedrock event-stream frames through
/// ``EventStreamDecoder`` (every frame CRC-checked). Each text delta's stamp becomes one latency.
struct StreamChecker {
    enum Route: Sendable {
        case openAI
        case bedrock
    }

    // Exactly one of the two is set. Optionals, not an enum with payloads, so optional chaining
    // mutates the decoder in place instead of copying its buffers per read.
    private var sse: SSEParser?
    private var events: EventStreamDecoder?
    /// Text deltas seen.
    private(set) var textDeltas = 0
    private(set) var badStamps = 0
    /// The first problem that makes the stream bad no matter how it ends.
    private(set) var failure: StreamFailure?
    private(set) var failureDetail = ""
    /// `[DONE]` (OpenAI), or `messageStop` then `metadata` (Bedrock).
    private var sawEnd = false
    private var sawMessageStop = false

    init(route: Route) {
        switch route {
        case .openAI: self.sse = SSEParser()
        case .bedrock: self.events = EventStreamDecoder()
        }
    }

    /// Whether the stream has ended properly so far (the end marker arrived).
    var hasEnded: Bool { self.sawEnd }

    /// Consumes one read of the body, read at `arrival` (CLOCK_MONOTONIC ns).
    mutating func consume(_ read: ByteBuffer, arrival: UInt64, stats: inout LoadStats) {
        guard self.failure == nil else { return }
        if self.sse != nil {
            self.sse?.feed(read)
            do {
                while let event = try self.sse?.next() {
                    self.handleSSE(event, arrival: arrival, stats: &stats)
                }
            } catch {
                self.fail(.badFrame, "SSE: \(error.message)")
            }
        } else {
            do {
                try self.events?.feed(read)
                while let message = try self.events?.next() {
                    self.handleFrame(message, arrival: arrival, stats: &stats)
                }
            } catch {
                self.fail(.badFrame, "event stream: \(error)")
            }
        }
    }

    /// The verdict once the body has ended (curl reported the transfer done without an error).
    mutating func finish(expectedTextDeltas: Int) -> (StreamFailure, String)? {
        if let failure { return (failure, self.failureDetail) }
        if self.events != nil {
            do {
                try self.events?.finish()
            } catch {
                return (.truncated, "event stream: \(error)")
            }
        }
        guard self.sawEnd else {
            return (.truncated, "the body ended without its end marker after \(self.textDeltas) text deltas")
        }
        if self.badStamps > 0 { return (.badStamp, "\(self.badStamps) text deltas without a well-formed stamp") }
        guard self.textDeltas == expectedTextDeltas else {
            return (.incompleteContent, "\(self.textDeltas) text deltas, expected \(expectedTextDeltas)")
        }
        return nil
    }

    private mutating func fail(_ failure: StreamFailure, _ detail: String) {
        guard self.failure == nil else { return }
        self.failure = failure
        self.failureDetail = detail
    }

    // MARK: OpenAI

    private static let doneData = "[DONE]"
    private static let errorPrefix: [UInt8] = Array(#"{"error""#.utf8)
    private static let contentKey: [UInt8] = Array(#""content""#.utf8)

    /// Whether the chunk has `"content": "<at least one byte>"` (JSON whitespace allowed around `:`;
    /// the gateway writes none, other servers may).
    private static func hasNonEmptyContent(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var from = 0
        while let key = LatencyStamp.firstIndex(of: Self.contentKey, in: bytes, from: from) {
            from = key + Self.contentKey.count
            var index = from
            func skipWhitespace() {
                while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A || bytes[index] == 0x0D {
                    index += 1
                }
            }
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { continue }
            index += 1
            skipWhitespace()
            guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\"") else { continue }
            return bytes[index + 1] != UInt8(ascii: "\"")
        }
        return false
    }

    private mutating func handleSSE(_ event: SSEEvent, arrival: UInt64, stats: inout LoadStats) {
        if self.sawEnd {
            self.fail(.badFrame, "an event after [DONE]")
            return
        }
        if event.data == Self.doneData {
            self.sawEnd = true
            return
        }
        var data = event.data
        data.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            if bytes.starts(with: Self.errorPrefix) {
                self.fail(.errorEvent, String(decoding: utf8.prefix(300), as: UTF8.self))
                return
            }
            // A text delta is a chunk whose `content` is a non-empty string; the first chunk's
            // `"content":""` (role only) is not one. `reasoning_content` does not match the key.
            guard Self.hasNonEmptyContent(bytes) else { return }
            self.countTextDelta(bytes, arrival: arrival, stats: &stats)
        }
    }

    // MARK: Bedrock

    private static let textDeltaKey: [UInt8] = Array(#""delta":{"text":""#.utf8)

    private mutating func handleFrame(_ message: EventStreamMessage, arrival: UInt64, stats: inout LoadStats) {
        switch message.headers.messageType {
        case .event:
            break
        case .exception, .error:
            let name = message.headers.exceptionType ?? message.headers.errorCode
            let type = name.map { String(buffer: $0) } ?? "unnamed"
            self.fail(.errorEvent, "\(type): \(String(buffer: message.payload).prefix(250))")
            return
        case .unknown, nil:
            self.fail(.badFrame, "a frame without a known :message-type")
            return
        }
        if self.sawEnd {
            self.fail(.badFrame, "an event after metadata")
            return
        }
        let headers = message.headers
        if headers.isEvent("contentBlockDelta") {
            message.payload.withUnsafeReadableBytes { bytes in
                guard LatencyStamp.contains(Self.textDeltaKey, in: bytes) else { return }
                self.countTextDelta(bytes, arrival: arrival, stats: &stats)
            }
        } else if headers.isEvent("messageStop") {
            self.sawMessageStop = true
        } else if headers.isEvent("metadata") {
            guard self.sawMessageStop else {
                self.fail(.badFrame, "metadata before messageStop")
                return
            }
            self.sawEnd = true
        }
    }

    // MARK: Stamps

    private mutating func countTextDelta(_ bytes: UnsafeRawBufferPointer, arrival: UInt64, stats: inout LoadStats) {
        self.textDeltas += 1
        stats.chunks += 1
        switch LatencyStamp.scan(bytes) {
        case .found(let sent) where sent <= arrival:
            _ = stats.chunkLatency.record(arrival - sent)
        case .found, .missing, .malformed:
            self.badStamps += 1
        }
    }
}

@available(*, unavailable)
extension StreamChecker: Sendable {}
