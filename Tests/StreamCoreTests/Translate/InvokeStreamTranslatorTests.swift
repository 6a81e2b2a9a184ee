import Foundation
import NIOCore
import Testing

@testable import StreamCore

/// InvokeModelWithResponseStream frames of an Anthropic model: `chunk` events whose payload is
/// `{"bytes":"<base64 of the Anthropic event>","p":"…"}` (BEDROCK_API.md §3).
enum InvokeFrames {
    static func chunk(_ event: String) -> ByteBuffer {
        let encoded = Data(event.utf8).base64EncodedString()
        return ConverseFrames.event("chunk", #"{"bytes":"\#(encoded)","p":"abcdefghij"}"#)
    }

    static let messageStart = #"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":7,"cache_read_input_tokens":100,"output_tokens":1}}}"#
    static let blockStart = #"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#
    static let delta = #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"there\" ✓"}}"#
    static let blockStop = #"{"type":"content_block_stop","index":0}"#
    static let messageDelta = #"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#
    static let messageStop = #"{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":25,"outputTokenCount":16,"invocationLatency":900,"firstByteLatency":300}}"#
}

struct InvokeStreamTranslatorTests {
    private func run(_ frames: [ByteBuffer], readSize: Int = .max) throws -> (String, InvokeStreamTranslator) {
        var decoder = EventStreamDecoder()
        var translator = InvokeStreamTranslator()
        var out = ByteBuffer()
        var rest = ConverseFrames.stream(frames)
        while rest.readableBytes > 0 {
            let read = rest.readSlice(length: min(readSize, rest.readableBytes))
            try decoder.feed(try #require(read))
            while let message = try decoder.next() {
                translator.translate(message, into: &out)
            }
        }
        try decoder.finish()
        return (String(buffer: out), translator)
    }

    @Test("chunks become Anthropic SSE events and usage is metered")
    func anthropicStream() throws {
        let events = [InvokeFrames.messageStart, InvokeFrames.blockStart, InvokeFrames.delta, InvokeFrames.blockStop,
                      InvokeFrames.messageDelta, InvokeFrames.messageStop]
        for readSize in [Int.max, 1, 7, 100] {
            let (sse, translator) = try self.run(events.map(InvokeFrames.chunk), readSize: readSize)
            let types = ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
            #expect(sse == zip(types, events).map { "event: \($0)\ndata: \($1)\n\n" }.joined())
            // The invocation metrics win for input and output; cache counts come from message_start.
            #expect(translator.usage == TokenUsage(inputTokens: 25, outputTokens: 16, cacheReadInputTokens: 100, cacheWriteInputTokens: 7))
            #expect(translator.isComplete)
            #expect(translator.stopReason == "end_turn")
        }
    }

    @Test("every delta layout is metered alike: Anthropic's own (the fast path) and any other the general scan reads", arguments: [
        (#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi \"there\" ✓"}}"#, 16),
        (#"{"type":"content_block_delta","index":12,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#, 7),
        (#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"Hmm\n"}}"#, 5),
        (#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"EqQB"}}"#, 0),
        (#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#, 0),
        (#"{ "type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "spaced"} }"#, 6),
        (#"{"index":0,"type":"content_block_delta","delta":{"text":"reordered","type":"text_delta"}}"#, 9),
        (#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"extra"},"x":1}"#, 5),
        (#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"ab","more":"cd"}}"#, 2),
    ])
    func deltaLayouts(event: String, produced: Int) throws {
        let (sse, translator) = try self.run([InvokeFrames.chunk(event)])
        #expect(sse == "event: content_block_delta\ndata: \(event)\n\n")
        #expect(translator.producedBytes == produced)
    }

    @Test("a delta that breaks off or carries a raw control character is malformed, fast path or not", arguments: [
        #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"cut"#,
        #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\#u{01}b"}}"#,
        #"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}"#,
    ])
    func brokenDelta(event: String) throws {
        var decoder = EventStreamDecoder()
        var translator = InvokeStreamTranslator()
        try decoder.feed(InvokeFrames.chunk(event))
        let message = try #require(try decoder.next())
        #expect(translator.observe(message) == .malformed)
    }

    @Test("without invocation metrics, output tokens come from the last message_delta")
    func usageFromAnthropicEvents() throws {
        let frames = [InvokeFrames.messageStart, InvokeFrames.messageDelta, #"{"type":"message_stop"}"#].map(InvokeFrames.chunk)
        let (_, translator) = try self.run(frames)
        #expect(translator.usage == TokenUsage(inputTokens: 25, outputTokens: 15, cacheReadInputTokens: 100, cacheWriteInputTokens: 7))
    }

    @Test("an exception frame becomes an Anthropic error event")
    func exception() throws {
        let frames = [
            InvokeFrames.chunk(InvokeFrames.messageStart),
            ConverseFrames.exception("modelStreamErrorException", #"{"message":"Model \"stream\" failed","originalStatusCode":500}"#),
        ]
        var decoder = EventStreamDecoder()
        var translator = InvokeStreamTranslator()
        var out = ByteBuffer()
        try decoder.feed(ConverseFrames.stream(frames))
        var observations: [InvokeStreamTranslator.Observation] = []
        while let message = try decoder.next() {
            observations.append(translator.translate(message, into: &out))
        }
        #expect(observations == [.event, .failed(type: "modelStreamErrorException", message: #"Model "stream" failed"#)])
        #expect(String(buffer: out).hasSuffix(#"event: error\#ndata: {"type":"error","error":{"type":"api_error","message":"Model \"stream\" failed"}}\#n\#n"#))
        #expect(InvokeStreamTranslator.anthropicErrorType(forBedrockException: "throttlingException") == "rate_limit_error")
    }

    @Test("events other than chunk are skipped, between chunks and after them (`chnuk` has chunk's length)")
    func otherEventsSkipped() throws {
        let frames = [
            InvokeFrames.chunk(InvokeFrames.messageStart), ConverseFrames.event("chnuk", #"{"bytes":"e30="}"#),
            InvokeFrames.chunk(InvokeFrames.delta), InvokeFrames.chunk(InvokeFrames.delta), ConverseFrames.event("ping", "{}"),
            InvokeFrames.chunk(InvokeFrames.messageStop),
        ]
        var decoder = EventStreamDecoder()
        var translator = InvokeStreamTranslator()
        try decoder.feed(ConverseFrames.stream(frames))
        var observations: [InvokeStreamTranslator.Observation] = []
        while let message = try decoder.next() {
            observations.append(translator.observe(message))
        }
        #expect(observations == [.event, .skipped, .event, .event, .skipped, .event])
        #expect(translator.isComplete)
    }

    @Test("malformed chunks are reported", arguments: [
        #"{"bytes":"not base64!"}"#, #"{"bytes":"YWJj"}"#, #"{"nobytes":1}"#, #"{"bytes":"e30="}"#,
    ])
    func malformed(payload: String) throws {
        var decoder = EventStreamDecoder()
        var translator = InvokeStreamTranslator()
        try decoder.feed(ConverseFrames.event("chunk", payload))
        let message = try #require(try decoder.next())
        // "YWJj" is "abc" (not JSON); "e30=" is "{}" (no type).
        #expect(translator.observe(message) == .malformed)
    }

    /// The decoders this CPU can run: the scalar one (0) always, the vector ones (x86_64: 1 SSSE3, 2 AVX, 3 AVX2) where it can.
    static let decoders = Array(0...Base64.vectorLevel)

    @Test("base64 decodes every length and padding like Foundation, scalar and vector", arguments: 0..<200)
    func base64(length: Int) throws {
        var rng = SeededGenerator(seed: UInt64(length))
        let bytes = rng.bytes(length)
        let encoded = Data(bytes).base64EncodedString()
        for level in Self.decoders {
            var out = ByteBuffer(string: "kept")
            try Array(encoded.utf8).withUnsafeBytes { try Base64.decode($0, appendingTo: &out, level: level) }
            #expect(Array(out.readableBytesView) == Array("kept".utf8) + bytes, "level: \(level)")
            // A slice of a larger buffer (as in a chunk's payload): the last block may be read in place.
            var inPlace = ByteBuffer()
            try Array((encoded + #"","p":"abcdefghijklmnop"}"#).utf8).withUnsafeBytes { all in
                try Base64.decode(UnsafeRawBufferPointer(rebasing: all[0..<encoded.utf8.count]), readable: all.count, appendingTo: &inPlace, level: level)
            }
            #expect(Array(inPlace.readableBytesView) == bytes, "in place, level: \(level)")
        }
    }

    @Test("base64 in a JSON string decodes up to its closing quote, at every length, as the plain decoder does", arguments: 0..<120)
    func base64String(length: Int) throws {
        var rng = SeededGenerator(seed: UInt64(length) &+ 7)
        let bytes = rng.bytes(length)
        let encoded = Data(bytes).base64EncodedString()
        for level in Self.decoders where level > 0 {
            func decode(_ string: [UInt8]) -> (count: Int, end: Int, bytes: [UInt8])? {
                var target = [UInt8](repeating: 0, count: Base64.maximumWrittenCount(encodedCount: string.count))
                let result = string.withUnsafeBytes { source in
                    target.withUnsafeMutableBytes { Base64.decode(stringAt: source, into: $0.baseAddress!, level: level) }
                }
                return result.map { ($0.count, $0.end, Array(target[0..<$0.count])) }
            }
            // The quote right at the end of what may be read, and with Bedrock's padding member after it.
            for trailer in ["\"", #"","p":"abcdefghijklmnopqrstuvwxyz"}"#] {
                let string = Array((encoded + trailer).utf8)
                let decoded = try #require(decode(string), "level \(level)")
                #expect(decoded.end == encoded.utf8.count, "level \(level)")
                #expect(decoded.bytes == bytes, "level \(level)")
                // A byte outside the alphabet (a JSON escape among them) anywhere before the quote: no result.
                for position in stride(from: 0, to: encoded.utf8.count, by: 3) {
                    var broken = string
                    broken[position] = UInt8(ascii: "\\")
                    #expect(decode(broken) == nil, "level \(level), position \(position)")
                }
            }
            // No closing quote within the bytes: no result.
            #expect(decode(Array(encoded.utf8)) == nil, "level \(level)")
        }
    }

    @Test("an event of any type is written after its own header, whatever the type's length, and metered alike", arguments: [
        "ping", "message_stop", "content_block_delta", "a_type_much_longer_than_any_anthropic_event_type_so_far_at_all",
    ])
    func eventTypeLengths(type: String) throws {
        let event = #"{"type":"\#(type)","index":0}"#
        let (sse, _) = try self.run([InvokeFrames.chunk(event)])
        #expect(sse == "event: \(type)\ndata: \(event)\n\n")
        var decoder = EventStreamDecoder()
        var meter = InvokeStreamTranslator()
        try decoder.feed(InvokeFrames.chunk(event))
        #expect(meter.observe(try #require(try decoder.next())) == .event)
    }

    @Test("a chunk whose bytes string is not in Bedrock's layout is read by the general scan", arguments: [
        #"{"bytes":"%@" ,"p":"x"}"#, #"{ "bytes":"%@"}"#, #"{"p":"x","bytes":"%@"}"#,
    ])
    func otherPayloadLayouts(layout: String) throws {
        let event = InvokeFrames.delta
        let payload = layout.replacingOccurrences(of: "%@", with: Data(event.utf8).base64EncodedString())
        var decoder = EventStreamDecoder()
        var translator = InvokeStreamTranslator()
        var out = ByteBuffer()
        try decoder.feed(ConverseFrames.event("chunk", payload))
        #expect(translator.translate(try #require(try decoder.next()), into: &out) == .event)
        #expect(String(buffer: out) == "event: content_block_delta\ndata: \(event)\n\n")
    }

    @Test("base64 refuses a byte outside the alphabet anywhere, and padding before the last quad; nothing is appended")
    func base64Invalid() throws {
        // 64 characters: three blocks for the vector decoder, then the scalar quads.
        let valid = Array("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2".utf8)
        for position in valid.indices {
            for bad in [UInt8(ascii: "!"), UInt8(ascii: "\""), 0x80, 0xFF] + (position < valid.count - 2 ? [UInt8(ascii: "=")] : []) {
                var encoded = valid
                encoded[position] = bad
                for level in Self.decoders {
                    var out = ByteBuffer(string: "kept")
                    #expect(throws: Base64.Failure.self) { try encoded.withUnsafeBytes { try Base64.decode($0, appendingTo: &out, level: level) } }
                    #expect(String(buffer: out) == "kept")
                    let trailed = encoded + Array(#"","p":"abcdefghijklmnop"}"#.utf8)
                    #expect(throws: Base64.Failure.self) {
                        try trailed.withUnsafeBytes { all in
                            try Base64.decode(UnsafeRawBufferPointer(rebasing: all[0..<encoded.count]), readable: all.count, appendingTo: &out, level: level)
                        }
                    }
                }
            }
        }
        for level in Self.decoders {
            var out = ByteBuffer()
            try valid.withUnsafeBytes { try Base64.decode($0, appendingTo: &out, level: level) }
            #expect(String(buffer: out) == "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv")
        }
        // Padding: one or two `=` at the end only, never a whole quad of it.
        for (text, valid) in [("QQ==", true), ("QUI=", true), ("QUJD", true), ("====", false), ("Q===", false), ("QQ=A", false), ("QQ==QUJD", false)] {
            for level in Self.decoders {
                var out = ByteBuffer()
                let decoded = (try? Array(text.utf8).withUnsafeBytes { try Base64.decode($0, appendingTo: &out, level: level) }) != nil
                #expect(decoded == valid, "\(text) level: \(level)")
            }
        }
    }
}
