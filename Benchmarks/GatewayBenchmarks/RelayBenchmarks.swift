import Benchmark
import GatewayFixtures

// The in-process end-to-end stream (Benchmarks/GatewayFixtures): one iteration is one whole 1,000-delta
// stream of the simulator's frames through the gateway's stream loop, checked.
func relayBenchmarks() {
    let perStream = Benchmark.Configuration(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .instructions, .throughput],
        warmupIterations: 5,
        scalingFactor: .one,
        maxDuration: .seconds(2),
        maxIterations: 2_000
    )

    Benchmark("relay, ConverseStream to OpenAI SSE, 1,000 deltas", configuration: perStream) { benchmark in
        let fixture = try RelayFixture.converse()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await fixture.relayChatCompletion()
        }
        benchmark.stopMeasurement()
    }

    Benchmark("relay, ConverseStream passthrough (bedrock route), 1,000 deltas", configuration: perStream) { benchmark in
        let fixture = try RelayFixture.converse()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await fixture.relayBedrock(invoke: false)
        }
        benchmark.stopMeasurement()
    }

    Benchmark("relay, InvokeModelWithResponseStream passthrough (bedrock route), 1,000 deltas", configuration: perStream) { benchmark in
        let fixture = try RelayFixture.invoke()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try await fixture.relayBedrock(invoke: true)
        }
        benchmark.stopMeasurement()
    }
}
