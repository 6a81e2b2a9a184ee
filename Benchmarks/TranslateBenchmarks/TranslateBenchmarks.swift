import Benchmark
import BenchmarkFixtures
import NIOCore
import StreamCore

// Per-chunk cost of the Bedrock → OpenAI path: decode + CRC + translate one text-delta frame into
// an SSE chunk, beside decode alone (EventStreamBenchmarks); the same for the Anthropic Messages
// path (InvokeModelWithResponseStream `chunk` frames, base64-decoded and relayed as SSE); and the
// per-request cost of mapping a 200 KB coding-tool prompt to a Converse request.
let frameCount = 1000

let benchmarks: @Sendable () -> Void = {
    let perChunk = Benchmark.Configuration(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .instructions, .throughput],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )
    let (stream, _) = BedrockFrames.stream(count: frameCount)
    let options = ChatChunkTranslator.Options(id: "chatcmpl-bench", created: 1_700_000_000, model: "claude-sonnet")

    Benchmark("decode+crc+translate, one buffer", configuration: perChunk) { benchmark in
        var decoder = EventStreamDecoder()
        var translator = ChatChunkTranslator(options: options)
        var out = ByteBuffer()
        out.reserveCapacity(4096)
        try decoder.feed(stream)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            if let message = try decoder.next() {
                translator.translate(message, into: &out)
            }
            // The gateway hands `out` to the writer here; the benchmark drops it and reuses the storage.
            blackHole(out.readableBytes)
            out.clear()
        }
        benchmark.stopMeasurement()
        precondition(translator.ending == nil && translator.hasWrittenChunk)
    }

    Benchmark("decode+crc+translate, 4 KiB reads", configuration: perChunk) { benchmark in
        var reads: [ByteBuffer] = []
        var rest = stream
        while let read = rest.readSlice(length: min(4096, rest.readableBytes)), read.readableBytes > 0 {
            reads.append(read)
        }
        var decoder = EventStreamDecoder()
        var translator = ChatChunkTranslator(options: options)
        var out = ByteBuffer()
        out.reserveCapacity(64 * 1024)
        benchmark.startMeasurement()
        for read in reads {
            try decoder.feed(read)
            while let message = try decoder.next() {
                translator.translate(message, into: &out)
            }
            blackHole(out.readableBytes)
            out.clear()
        }
        benchmark.stopMeasurement()
    }

    // The Anthropic Messages route: decode + both CRCs + base64 of the `chunk` payload + the
    // `event: <type>\ndata: <json>\n\n` write, per text-delta chunk.
    let anthropicStream = AnthropicChunkFrames.stream(count: frameCount + 1)  // one warms the translator up
    Benchmark("decode+crc+base64+SSE, Anthropic Messages chunk", configuration: perChunk) { benchmark in
        var decoder = EventStreamDecoder()
        var translator = AnthropicStreamTranslator()
        var out = ByteBuffer()
        out.reserveCapacity(4096)
        try decoder.feed(anthropicStream)
        // Steady state, as in the Responses benchmark: the first chunk of a stream allocates the
        // translator's decoded-event buffer, once per stream.
        if let message = try decoder.next() {
            translator.translate(message, into: &out)
        }
        out.clear()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            if let message = try decoder.next() {
                translator.translate(message, into: &out)
            }
            blackHole(out.readableBytes)
            out.clear()
        }
        benchmark.stopMeasurement()
        precondition(translator.ending == nil && translator.hasWrittenEvent)
    }

    let body = CodingSessionFixture.makeRequestBody()
    let mapper = ChatRequestMapper()
    Benchmark(
        "map a 200 KB coding-tool request",
        configuration: .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput], warmupIterations: 3, maxDuration: .seconds(3))
    ) { benchmark in
        blackHole(try mapper.map(body))
    }

    responsesTextDeltaBenchmark(configuration: perChunk)
}

// MARK: Responses API

/// Per-delta cost of the Bedrock → OpenAI Responses path: decode + CRC + translate one text-delta
/// frame into a `response.output_text.delta` event. Measured in steady state: a first text block of
/// the same length has already been translated and closed, so the item's text buffer (which the
/// `.done` events need) has its capacity and the measured block reuses it.
func responsesTextDeltaBenchmark(configuration: Benchmark.Configuration) {
    let (deltas, _) = BedrockFrames.stream(count: frameCount)
    let warmUp = ResponsesFrames.warmUp(deltas: deltas)
    let options = ResponsesStreamTranslator.Options(id: "resp_bench", createdAt: 1_700_000_000, model: "claude-sonnet")

    Benchmark("decode+crc+translate, Responses text delta", configuration: configuration) { benchmark in
        var decoder = EventStreamDecoder()
        var translator = ResponsesStreamTranslator(options: options)
        var out = ByteBuffer()
        out.reserveCapacity(64 * 1024)
        try decoder.feed(warmUp)
        while let message = try decoder.next() {
            translator.translate(message, into: &out)
        }
        out.clear()
        try decoder.feed(deltas)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            if let message = try decoder.next() {
                translator.translate(message, into: &out)
            }
            blackHole(out.readableBytes)
            out.clear()
        }
        benchmark.stopMeasurement()
        precondition(translator.ending == nil && translator.hasWrittenEvent)
    }
}
