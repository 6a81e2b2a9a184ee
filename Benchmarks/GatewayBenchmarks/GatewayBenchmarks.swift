import Benchmark
import Foundation
import Gateway
import HTTPTypes
import Logging
import Synchronization

// Per-request cost of the gateway's own work on the request path, beside the StreamCore suites.
//
// Token check (issue 5: "adds no database round-trip for a known token"): a real temporary SQLite
// store, a token created as `sluice token create` does, one authentication to warm the
// authenticator's in-memory copy, then `authenticate(headers)` per request: header parsing,
// SHA-256, one dictionary lookup and the last-use note. The miss path (a well-formed token the store
// does not know) asks the store every time, so it shows what a database round trip would cost.
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
            guard let fixture = TokenFixture.current else { return benchmark.error("no token fixture") }
            let headers = fixture.knownHeaders
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(await fixture.authenticator.authenticate(headers))
            }
            benchmark.stopMeasurement()
        },
        setup: { try await TokenFixture.start() },
        teardown: { try await TokenFixture.stop() }
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
            // 46–48 seen run to run. The CI gate allows that much and no more.
            thresholds: [.mallocCountTotal: .init(absolute: [.p90: 3])]
        ),
        closure: { benchmark in
            guard let fixture = TokenFixture.current else { return benchmark.error("no token fixture") }
            let headers = fixture.unknownHeaders
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(await fixture.authenticator.authenticate(headers))
            }
            benchmark.stopMeasurement()
        },
        setup: { try await TokenFixture.start() },
        teardown: { try await TokenFixture.stop() }
    )

    relayBenchmarks()
}

/// A temporary SQLite store with one token, and an authenticator that has seen it once.
private final class TokenFixture: Sendable {
    let directory: URL
    let store: SQLiteStore
    let authenticator: TokenAuthenticator
    let knownHeaders: HTTPFields
    let unknownHeaders: HTTPFields

    /// The fixture of the benchmark running now; setup and teardown hooks take no state, so a lock
    /// hands it to the measured closure.
    private static let shared = Mutex<TokenFixture?>(nil)

    static var current: TokenFixture? { shared.withLock { $0 } }

    private init(directory: URL, store: SQLiteStore, authenticator: TokenAuthenticator, known: String, unknown: String) {
        self.directory = directory
        self.store = store
        self.authenticator = authenticator
        self.knownHeaders = [.authorization: "Bearer \(known)", .contentType: "application/json"]
        self.unknownHeaders = [.authorization: "Bearer \(unknown)", .contentType: "application/json"]
    }

    static func start() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-bench-\(UUID().uuidString)")
        var logger = Logger(label: "sluice-bench")
        logger.logLevel = .error
        let store = try await SQLiteStore.open(path: directory.appendingPathComponent("sluice.db").path, logger: logger)
        // As `sluice token create --identity bench@corp --group engineering --ttl 30d` does.
        let made = ClientToken.make(
            identity: "bench@corp", groups: ["engineering"], label: "benchmark", ttl: ClientToken.parseDuration("30d"), now: Date()
        )
        try await store.insertToken(made.record)
        let unknown = ClientToken.make(identity: "nobody", groups: [], label: nil, ttl: nil, now: Date()).token
        let authenticator = TokenAuthenticator(store: store)
        let fixture = TokenFixture(directory: directory, store: store, authenticator: authenticator, known: made.token, unknown: unknown)
        // The first request for a token created after the cache was loaded reads it from the store;
        // every later one is served from memory, which is what the benchmark measures.
        guard case .success = await authenticator.authenticate(fixture.knownHeaders) else {
            throw BenchmarkSetupError(message: "the new token did not authenticate")
        }
        shared.withLock { $0 = fixture }
    }

    static func stop() async throws {
        guard let fixture = shared.withLock({ state in defer { state = nil }; return state }) else { return }
        try await fixture.store.close()
        try? FileManager.default.removeItem(at: fixture.directory)
    }
}

private struct BenchmarkSetupError: Error {
    var message: String
}
