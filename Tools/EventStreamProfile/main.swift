import BenchmarkFixtures
import NIOCore
import StreamCore

// Decodes (or decodes and translates) the benchmark's 1,000-frame Bedrock stream over and over, for
// profilers that need a plain process (package-benchmark's runner expects its host); `anthropic` and
// `responses` run the Anthropic Messages and Responses translators over their streams; `map` maps the
// 200 KB coding-session request instead:
//   perf record -e cpu-clock -g .build-bench/release/EventStreamProfile translate 2000
let arguments = CommandLine.arguments
let mode = arguments.count > 1 ? arguments[1] : "decode"
let rounds = arguments.count > 2 ? Int(arguments[2]) ?? 2000 : 2000
// A function, not top-level code: globals in main.swift pay dynamic exclusivity checks that would
// show up in the profile.
func decodeRounds(_ rounds: Int) -> Int {
    let (stream, _) = BedrockFrames.stream(count: 1000)
    var checksum = 0
    for _ in 0..<rounds {
        var decoder = EventStreamDecoder()
        do {
            try decoder.feed(stream)
            while let message = try decoder.next() {
                checksum &+= message.payload.readableBytes & 1
            }
            try decoder.finish()
        } catch {
            fatalError("decode failed: \(error)")
        }
    }
    return checksum
}

/// The three stream translators, for one loop over any of them.
protocol ProfiledTranslator {
    mutating func translate(_ message: EventStreamMessage, into out: inout ByteBuffer)
}

extension ChatChunkTranslator: ProfiledTranslator {}
extension AnthropicStreamTranslator: ProfiledTranslator {}
extension ResponsesStreamTranslator: ProfiledTranslator {}

/// Decodes `stream` and translates every frame with a fresh translator per round, one output buffer
/// cleared after each frame (generic, so each translator gets its own specialised loop).
func translationRounds<Translator: ProfiledTranslator>(
    _ rounds: Int, stream: ByteBuffer, outputCapacity: Int, makeTranslator: () -> Translator
) -> Int {
    var checksum = 0
    var out = ByteBuffer()
    out.reserveCapacity(outputCapacity)
    for _ in 0..<rounds {
        var decoder = EventStreamDecoder()
        var translator = makeTranslator()
        do {
            try decoder.feed(stream)
            while let message = try decoder.next() {
                translator.translate(message, into: &out)
                checksum &+= out.readableBytes
                out.clear()
            }
            try decoder.finish()
        } catch {
            fatalError("decode failed: \(error)")
        }
    }
    return checksum
}

func translateRounds(_ rounds: Int) -> Int {
    let options = ChatChunkTranslator.Options(id: "chatcmpl-profile", created: 1_700_000_000, model: "claude-sonnet")
    return translationRounds(rounds, stream: BedrockFrames.stream(count: 1000).bytes, outputCapacity: 4096) {
        ChatChunkTranslator(options: options)
    }
}

/// The Anthropic Messages route's per-chunk work: decode + CRCs + base64 + metering + the SSE write.
func anthropicRounds(_ rounds: Int) -> Int {
    translationRounds(rounds, stream: AnthropicChunkFrames.stream(count: 1000), outputCapacity: 4096) { AnthropicStreamTranslator() }
}

/// The Responses route's per-delta work: a message item of 1,000 text deltas, opened and closed.
func responsesRounds(_ rounds: Int) -> Int {
    let options = ResponsesStreamTranslator.Options(id: "resp_profile", createdAt: 1_700_000_000, model: "claude-sonnet")
    return translationRounds(rounds, stream: ResponsesFrames.warmUp(deltas: BedrockFrames.stream(count: 1000).bytes), outputCapacity: 64 * 1024) {
        ResponsesStreamTranslator(options: options)
    }
}

func mapRounds(_ rounds: Int) -> Int {
    let body = CodingSessionFixture.makeRequestBody()
    let mapper = ChatRequestMapper()
    var checksum = 0
    for _ in 0..<rounds {
        do {
            checksum &+= try mapper.map(body).body.readableBytes
        } catch {
            fatalError("map failed: \(error)")
        }
    }
    return checksum
}

let checksum: Int
switch mode {
case "translate": checksum = translateRounds(rounds)
case "map": checksum = mapRounds(rounds)
case "anthropic": checksum = anthropicRounds(rounds)
case "responses": checksum = responsesRounds(rounds)
default: checksum = decodeRounds(rounds)
}
print("\(mode): \(rounds) rounds, checksum \(checksum)")
