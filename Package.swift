// swift-tools-version:6.2
import PackageDescription
import class Foundation.ProcessInfo

// One settings array for every target (STYLE.md §1): Swift 6 mode comes from the tools version;
// these upcoming features keep imports honest and existentials explicit.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let environment = ProcessInfo.processInfo.environment

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "StreamCore", targets: ["StreamCore"]),
        .executable(name: "sluice", targets: ["sluice"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // Header-only: the SSE2 scan for a JSON string's special bytes (see its shim.h).
        .systemLibrary(name: "CJSONScan"),
        // Header-only: C library calls the platform modules do not export (malloc_trim).
        .systemLibrary(name: "CSystemShims"),
        // CRC-32 of every event-stream prelude and message (carry-less multiply on x86_64, the CRC32
        // instructions on arm64, a table elsewhere): our own C, so building needs no system library.
        .target(name: "CCRC32"),
        // Base64 of Bedrock's InvokeModelWithResponseStream chunks, 16 characters at a time (SSSE3 on
        // x86_64; elsewhere StreamCore's scalar decoder does all of it).
        .target(name: "CBase64"),
        .target(
            name: "StreamCore",
            dependencies: [
                "CBase64",
                "CCRC32",
                "CJSONScan",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            // The per-chunk path touches ByteBuffer storage (a class) a few times per frame; in
            // release builds each access paid a dynamic exclusivity check (swift_beginAccess +
            // AccessSet::insert, ~11% of the instructions per translated chunk, measured with
            // callgrind). Debug builds, which run every test, keep the checks. The checked storage is
            // NIO's (ByteBuffer's class, inlined here), which `@exclusivity(unchecked)` cannot mark:
            // without the flag decode costs 11% more instructions, translate 16%, Anthropic 20%,
            // Responses 14% (callgrind, 2026-12-06). StreamCore stays usable as a versioned
            // dependency: since Swift 6.2, SwiftPM allows unsafe flags in a dependency whose
            // manifest is tools-version 6.2 or later, as this one is (README: Benchmarks).
            swiftSettings: swiftSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "BedrockSimulator",
            dependencies: [
                "StreamCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Gateway",
            dependencies: [
                "StreamCore",
                "CSystemShims",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdHTTP2", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The console, compiled into the binary (ConsoleAssets).
            resources: [
                .embedInCode("Admin/Console/index.html"), .embedInCode("Admin/Console/console.js"), .embedInCode("Admin/Console/console.css"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "Gateway",
                "BedrockSimulator",
                "StreamCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "StreamCoreTests",
            dependencies: [
                "StreamCore",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BedrockSimulatorTests",
            dependencies: [
                "BedrockSimulator",
                "StreamCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway",
                "BedrockSimulator",
                "StreamCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // The script that produced the botocore reference signatures embedded in the SigV4 tests.
            exclude: ["sigv4_reference.py"],
            swiftSettings: swiftSettings
        ),
    ]
)

// The load generator links libcurl (`libcurl4-openssl-dev`), which neither the server nor the tests need;
// it exists only when SLUICE_LOAD is set (README: Load through the real gateway), and so does the wire
// benchmark's NIO floor. `.ci/run`, Benchmarks/run-load.sh and the end-to-end suite's load tests build
// it that way.
if environment["SLUICE_LOAD"] != nil {
    package.products.append(.executable(name: "sluice-load", targets: ["sluice-load"]))
    package.targets += [
        // libcurl's multi interface: an HTTP stack independent of the server's.
        .systemLibrary(
            name: "CCurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .executableTarget(
            name: "sluice-load",
            dependencies: [
                "CCurl",
                "StreamCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // SwiftNIO's own floor for the wire path: bare HTTP/1.1 relays with no task, no auth, no
        // decoding, beside nginx and Sluice in Benchmarks/wire.sh.
        .executableTarget(
            name: "sluice-wire-floor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Tools/WireFloor",
            swiftSettings: swiftSettings
        ),
    ]
}

// libFuzzer targets link libFuzzer's own `main`, so they only build with
// `-sanitize=fuzzer`; they exist only when SLUICE_FUZZ is set (README: Fuzzing).
if environment["SLUICE_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(
            name: "EventStreamDecoderFuzzer",
            dependencies: ["StreamCore", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/EventStreamDecoderFuzzer",
            swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]
        )
    )
    package.targets.append(
        .executableTarget(
            name: "ChatRequestMapperFuzzer",
            dependencies: ["StreamCore", .product(name: "NIOCore", package: "swift-nio")],
            path: "Fuzz/ChatRequestMapperFuzzer",
            exclude: ["Seeds", "Regressions", "ChatRequestMapperFuzzer.dict"],
            swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]
        )
    )
}

// Benchmarks pull in package-benchmark (and jemalloc-free malloc counting); `swift test` never
// builds them. Set SLUICE_BENCHMARKS=1 to run `swift package benchmark` (README: Benchmarks).
if environment["SLUICE_BENCHMARKS"] != nil {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/package-benchmark.git", from: "1.38.1", traits: ["MallocInterposer"])
    )
    package.targets += [
        // The C floor EventStreamBenchmarks compares our CRC-32 with: zlib's crc32 and ISA-L's
        // carry-less-multiply crc32_gzip_refl. Benchmarks only, so no other build needs their headers.
        .systemLibrary(
            name: "CZlib",
            path: "Benchmarks/CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .systemLibrary(
            name: "CISAL",
            path: "Benchmarks/CISAL",
            providers: [.apt(["libisal-dev"])]
        ),
        // Deterministic Bedrock-shaped input shared by the suites and the profiling loop.
        .target(
            name: "BenchmarkFixtures",
            dependencies: ["StreamCore", .product(name: "NIOCore", package: "swift-nio")],
            path: "Benchmarks/BenchmarkFixtures",
            swiftSettings: swiftSettings
        ),
        // A plain loop over the decoder and translator for `perf record` (README: Benchmarks). Outside
        // Benchmarks/, where the benchmark plugin would take it for a suite.
        .executableTarget(
            name: "EventStreamProfile",
            dependencies: ["BenchmarkFixtures", "StreamCore", .product(name: "NIOCore", package: "swift-nio")],
            path: "Tools/EventStreamProfile",
            swiftSettings: swiftSettings
        ),
    ]
    package.targets.append(
        .executableTarget(
            name: "EventStreamBenchmarks",
            dependencies: [
                "BenchmarkFixtures",
                "StreamCore",
                "CZlib",
                "CISAL",
                "CJSONScan",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/EventStreamBenchmarks",
            swiftSettings: swiftSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        )
    )
    package.targets.append(
        .executableTarget(
            name: "TranslateBenchmarks",
            dependencies: [
                "BenchmarkFixtures",
                "StreamCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/TranslateBenchmarks",
            swiftSettings: swiftSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        )
    )
    // The in-process end-to-end stream and the token check, shared by GatewayBenchmarks and GatewayProfile.
    package.targets.append(
        .target(
            name: "GatewayFixtures",
            dependencies: [
                "BedrockSimulator",
                "Gateway",
                "StreamCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/GatewayFixtures",
            swiftSettings: swiftSettings
        )
    )
    // The same as a plain process, for callgrind (Benchmarks/instructions.sh) and perf.
    package.targets.append(
        .executableTarget(
            name: "GatewayProfile",
            dependencies: ["GatewayFixtures"],
            path: "Tools/GatewayProfile",
            swiftSettings: swiftSettings
        )
    )
    package.targets.append(
        .executableTarget(
            name: "GatewayBenchmarks",
            dependencies: [
                "GatewayFixtures",
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/GatewayBenchmarks",
            swiftSettings: swiftSettings,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        )
    )
}
