import Benchmark
import CISAL
import BenchmarkFixtures
import CZlib
import NIOCore
import StreamCore

// Per-frame cost of the event-stream decoder on typical Bedrock text-delta frames, beside baselines
// over the same bytes: our crc32 (Sources/CCRC32, what the decoder uses), zlib's and ISA-L's (the C
// floor it is held to) and memcpy. Every benchmark handles 1,000 frames per iteration and reports per
// frame (scalingFactor .kilo).
let frameCount = 1000

let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .cpuTotal, .mallocCountTotal, .instructions, .throughput]
    let configuration = Benchmark.Configuration(
        metrics: metrics,
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )
    let (stream, lengths) = BedrockFrames.stream(count: frameCount)
    let fourKiBReads: [ByteBuffer] = {
        var reads: [ByteBuffer] = []
        var rest = stream
        while let read = rest.readSlice(length: min(4096, rest.readableBytes)), read.readableBytes > 0 {
            reads.append(read)
        }
        return reads
    }()
    let frames: [ByteBuffer] = {
        var rest = stream
        return lengths.compactMap { rest.readSlice(length: $0) }
    }()

    Benchmark("decode+crc, one buffer", configuration: configuration) { benchmark in
        var decoder = EventStreamDecoder()
        try decoder.feed(stream)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try decoder.next())
        }
        benchmark.stopMeasurement()
        try decoder.finish()
    }

    Benchmark("decode+crc, 4 KiB reads", configuration: configuration) { benchmark in
        var decoder = EventStreamDecoder()
        var decoded = 0
        for read in fourKiBReads {
            try decoder.feed(read)
            while let message = try decoder.next() {
                blackHole(message)
                decoded += 1
            }
        }
        try decoder.finish()
        precondition(decoded == frameCount)
    }

    Benchmark("baseline: zlib crc32 per frame", configuration: configuration) { _ in
        for frame in frames {
            frame.withUnsafeReadableBytes { bytes in
                blackHole(crc32(0, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), uInt(bytes.count)))
            }
        }
    }

    Benchmark("baseline: sluice crc32 per frame", configuration: configuration) { _ in
        for frame in frames {
            frame.withUnsafeReadableBytes { bytes in
                blackHole(EventStreamCRC.update(0, bytes))
            }
        }
    }

    Benchmark("baseline: ISA-L crc32 per frame", configuration: configuration) { _ in
        for frame in frames {
            frame.withUnsafeReadableBytes { bytes in
                if let base = bytes.baseAddress {
                    blackHole(crc32_gzip_refl(0, base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count)))
                }
            }
        }
    }

    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
    Benchmark("baseline: memcpy per frame", configuration: configuration) { _ in
        for frame in frames {
            frame.withUnsafeReadableBytes { bytes in
                scratch.copyMemory(from: bytes)
                blackHole(scratch.baseAddress)
            }
        }
    }
}
