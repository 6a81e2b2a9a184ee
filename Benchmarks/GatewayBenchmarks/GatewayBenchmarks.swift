import Benchmark
import GatewayFixtures
import Synchronization

// Per-request cost of the gateway's own work on the request path, beside the StreamCore suites.
//
// Token check (issue 5: "adds no database round-trip for a known token", Benchmarks/GatewayFixtures):
// `authenticate(headers)` per request: header parsing, SHA-256, one dictionary lookup and the
// last-use note. The miss path (a well-formed token the store does not know) asks the store every
// time, so it shows what a database round trip would cost.
let benchmarks: @Sendable () -> Void = {
    let perRequest = Benchmark.Configuration(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .instructions, .throughput],
        warmupIterations: 100,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 10_000
    )

    Benchmark(
        "token check, known token (cached)",
        configuration: perRequest,
        closure: { benchmark in
            guard let fixture = CurrentTokenFixture.value else { return benchmark.error("no token fixture") }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                try await fixture.checkKnown()
            }
            benchmark.stopMeasurement()
        },
        setup: { try await CurrentTokenFixture.start() },
        teardown: { try await CurrentTokenFixture.stop() }
    )

    Benchmark(
        "token check, unknown token (store lookup)",
        configuration: .init(
            metrics: perRequest.metrics,
            warmupIterations: 10,
            scalingFactor: .one,
            maxDuration: .seconds(2),
            maxIterations: 10_000,
            // SQLite's own allocations per lookup vary by a couple (page cache, statement state):
            // 22–24 seen run to run. The CI gate allows that much and no more.
            thresholds: [.mallocCountTotal: .init(absolute: [.p90: 3])]
        ),
        closure: { benchmark in
            guard let fixture = CurrentTokenFixture.value else { return benchmark.error("no token fixture") }
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                try await fixture.checkUnknown()
            }
            benchmark.stopMeasurement()
        },
        setup: { try await CurrentTokenFixture.start() },
        teardown: { try await CurrentTokenFixture.stop() }
    )

    // IdP tokens (issue: "verification of a cached key costs ≤ 20 µs per request"): the signature
    // check with the issuer's key already fetched, and a token verified before.
    for (name, check) in [
        ("IdP token check, RS256, key cached", { @Sendable (fixture: IdPTokenFixture) in try await fixture.verifyRS256() }),
        ("IdP token check, ES256, key cached", { @Sendable (fixture: IdPTokenFixture) in try await fixture.verifyES256() }),
        ("IdP token check, token verified before", { @Sendable (fixture: IdPTokenFixture) in try await fixture.verifyRemembered() }),
    ] as [(String, @Sendable (IdPTokenFixture) async throws -> Void)] {
        Benchmark(name, configuration: perRequest) { benchmark, fixture in
            benchmark.startMeasurement()
            do {
                for _ in benchmark.scaledIterations {
                    try await check(fixture)
                }
            } catch {
                benchmark.error("\(error)")
            }
            benchmark.stopMeasurement()
        } setup: {
            try IdPTokenFixture()
        }
    }

    relayBenchmarks()
}

/// The token fixture of the benchmark running now: setup and teardown hooks take no state, so a lock
/// hands it to the measured closure.
private enum CurrentTokenFixture {
    private static let shared = Mutex<TokenFixture?>(nil)

    static var value: TokenFixture? { shared.withLock { $0 } }

    static func start() async throws {
        let fixture = try await TokenFixture.open()
        shared.withLock { $0 = fixture }
    }

    static func stop() async throws {
        guard let fixture = shared.withLock({ state in defer { state = nil }; return state }) else { return }
        try await fixture.close()
    }
}
