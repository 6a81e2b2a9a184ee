import ArgumentParser
import CCurl
import Foundation
import Synchronization

/// `sluice-load`: drives concurrent streaming requests at the gateway (or, `--direct`, at the Bedrock
/// simulator) with libcurl's multi interface and reports latency, throughput and errors.
struct LoadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice-load",
        abstract: "Drive concurrent streaming requests at Sluice (or the simulator) and measure them.",
        discussion: """
            Every text delta carries the simulator's latency stamp ⟦t=<CLOCK_MONOTONIC ns>⟧ (stamps=1 is \
            added to the scenario), so per-chunk latency is arrival − stamp on this machine's clock. A \
            stream is good only when it ended properly ([DONE], or messageStop + metadata), every frame \
            was valid, every delta's stamp parsed and the number of text deltas equals the scenario's \
            chunks= (default 8).

            The gateway's OpenAI route, its /bedrock route, and the simulator itself:
              sluice-load --url http://127.0.0.1:8080 --concurrency 100 --duration 10 \\
                --scenario "chunks=50 gap_ms=20"
              sluice-load --url http://127.0.0.1:8080 --route bedrock ...
              sluice-load --direct --url http://127.0.0.1:9000 ...

            Exit status: 0 when every stream was good, 2 when any failed, 64 on a usage error.
            """
    )

    @Option(help: "Base URL of the gateway, or of the simulator with --direct (default http://127.0.0.1:8080, or :9000 with --direct).")
    var url: String?

    @Flag(help: "Drive the Bedrock simulator itself (Bedrock route without the /bedrock prefix).")
    var direct = false

    @Option(help: "openai (/v1/chat/completions, SSE) or bedrock (converse-stream, event-stream frames). Default: openai, bedrock with --direct.")
    var route: String?

    @Option(help: "Concurrent streams.")
    var concurrency = 1

    @Option(help: "Streams to run in all (default: run for --duration).")
    var requests: Int?

    @Option(help: "Seconds during which new streams start (default 10 when --requests is not given).")
    var duration: Double?

    @Option(help: "Seconds over which the first --concurrency streams start (0: all at once).")
    var rampUp: Double = 0

    @Option(help: "Model id or alias.")
    var model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

    @Option(help: "Simulator scenario (key=value pairs, e.g. \"chunks=50 gap_ms=20\"); stamps=1 is added.")
    var scenario = "chunks=20 gap_ms=10"

    @Option(help: "Where the scenario goes: prompt (a [[sim …]] directive, survives the gateway) or header (x-sluice-sim-scenario, read by the simulator only).")
    var scenarioIn = "prompt"

    @Option(help: "Bearer token (default: SLUICE_TOKEN from the environment).")
    var token: String?

    @Option(help: "Worker threads, each with its own curl multi handle (default: one per 2,500 streams, at most 4).")
    var threads: Int?

    @Option(help: "Seconds one stream may take before it counts as a timeout.")
    var timeout: Double = 120

    @Option(help: "Seconds to wait for a connection.")
    var connectTimeout: Double = 30

    @Flag(help: "Multiplex the streams over HTTP/2 connections (needs an https URL: the gateway offers h2 by ALPN with server.tls). Each stream is then not a socket of its own, which is how 10,000 streams fit the file limit.")
    var http2 = false

    @Option(help: ArgumentHelp(
        "With --http2: at most this many streams per connection (the server's own limit applies too; Sluice's is 100).",
        discussion: "Fewer streams per connection spread them over more connections, as many clients would be."
    ))
    var streamsPerConnection = 100

    @Option(help: "PEM file of the certificate authority to trust for an https URL (e.g. the gateway's self-signed certificate).")
    var cacert: String?

    @Flag(help: "Print the report as JSON instead of a table.")
    var json = false

    func validate() throws {
        guard self.concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        if let requests = self.requests, requests < 1 { throw ValidationError("--requests must be at least 1") }
        if let duration = self.duration, !(duration > 0) { throw ValidationError("--duration must be positive") }
        if let threads = self.threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard self.rampUp >= 0, self.timeout > 0, self.connectTimeout > 0 else {
            throw ValidationError("--ramp-up, --timeout and --connect-timeout must be positive")
        }
        if self.direct, self.route == "openai" {
            throw ValidationError("--direct drives the simulator, which speaks the Bedrock API only: use --route bedrock")
        }
        if let route = self.route, route != "openai", route != "bedrock" {
            throw ValidationError("--route must be openai or bedrock")
        }
        guard LoadPlan.ScenarioDelivery(rawValue: self.scenarioIn) != nil else {
            throw ValidationError("--scenario-in must be prompt or header")
        }
        if LoadPlan.value(of: "stamps", in: self.scenario) == "0" || LoadPlan.value(of: "stamps", in: self.scenario) == "false" {
            throw ValidationError("the load generator measures latency stamps: leave stamps on")
        }
        if LoadPlan.value(of: "echo", in: self.scenario) != nil {
            throw ValidationError("echo= makes the number of text deltas depend on the prompt; use chunks=")
        }
        guard self.streamsPerConnection >= 1 else { throw ValidationError("--streams-per-connection must be at least 1") }
        if self.http2, !(self.url ?? "").hasPrefix("https://") {
            throw ValidationError("--http2 needs an https:// --url: HTTP/2 is negotiated by TLS ALPN")
        }
        if let chunks = LoadPlan.value(of: "chunks", in: self.scenario), Int(chunks) == nil {
            throw ValidationError("chunks= must be an integer")
        }
    }

    func run() throws {
        let plan = try self.makePlan()
        FileLimit.raiseToHardLimit()
        guard sluice_global_init() == CURLE_OK else { throw ValidationError("curl_global_init failed") }
        defer { curl_global_cleanup() }

        let startedAt = MonotonicClock.nanoseconds()
        let progress = LoadProgress(
            limit: plan.totalStreams,
            deadline: plan.durationNanoseconds.map { startedAt + $0 }
        )
        let results = ResultSink()
        let threadCount = plan.threads
        var bodies: [@Sendable () -> Void] = []
        for index in 0..<threadCount {
            // Slots split as evenly as they go: the first `concurrency % threads` workers get one more.
            let slots = plan.concurrency / threadCount + (index < plan.concurrency % threadCount ? 1 : 0)
            guard slots > 0 else { continue }
            bodies.append {
                guard let worker = Worker(plan: plan, slots: slots, progress: progress, startedAt: startedAt) else {
                    var stats = LoadStats()
                    stats.recordFailure(.transport, sample: "curl_multi_init failed")
                    results.append(stats)
                    return
                }
                results.append(worker.run())
            }
        }
        WorkerThreads.runAndWait(bodies)
        let elapsed = MonotonicClock.nanoseconds() - startedAt

        let report = LoadReport(plan: plan, stats: results.merged(), elapsedNanoseconds: elapsed)
        print(self.json ? report.json() : report.table())
        if report.streamsFailed > 0 { throw ExitCode(2) }
    }

    private func makePlan() throws -> LoadPlan {
        let route: StreamChecker.Route = self.direct || self.route == "bedrock" ? .bedrock : .openAI
        var base = self.url ?? (self.direct ? "http://127.0.0.1:9000" : "http://127.0.0.1:8080")
        while base.hasSuffix("/") { base.removeLast() }
        let path: String
        switch route {
        case .openAI: path = "/v1/chat/completions"
        case .bedrock: path = (self.direct ? "" : "/bedrock") + "/model/\(LoadPlan.pathSegment(self.model))/converse-stream"
        }
        let scenario = LoadPlan.stampedScenario(self.scenario)
        let delivery = LoadPlan.ScenarioDelivery(rawValue: self.scenarioIn) ?? .prompt
        let prompt = delivery == .prompt ? "Load test [[sim \(scenario)]]" : "Load test"
        var headers = [
            "Content-Type: application/json",
            route == .openAI ? "Accept: text/event-stream" : "Accept: application/vnd.amazon.eventstream",
            // No 100-continue round trip before the body.
            "Expect:",
        ]
        if let token = self.token ?? ProcessInfo.processInfo.environment["SLUICE_TOKEN"], !token.isEmpty {
            headers.append("Authorization: Bearer \(token)")
        }
        if delivery == .header {
            headers.append("x-sluice-sim-scenario: \(scenario.split(separator: " ").joined(separator: ","))")
        }
        let chunks = LoadPlan.value(of: "chunks", in: scenario).flatMap { Int($0) } ?? 8
        let duration = self.requests == nil ? (self.duration ?? 10) : self.duration
        return LoadPlan(
            url: base + path,
            route: route,
            isDirect: self.direct,
            body: LoadPlan.requestBody(route: route, model: self.model, prompt: prompt),
            headers: headers,
            expectedTextDeltas: chunks,
            concurrency: self.concurrency,
            threads: min(self.threads ?? min(4, max(1, (self.concurrency + 2499) / 2500)), self.concurrency),
            totalStreams: self.requests,
            durationNanoseconds: duration.map { UInt64($0 * 1e9) },
            rampUpNanoseconds: UInt64(self.rampUp * 1e9),
            timeoutMilliseconds: Int(self.timeout * 1000),
            connectTimeoutMilliseconds: Int(self.connectTimeout * 1000),
            model: self.model,
            scenario: scenario,
            usesHTTP2: self.http2,
            streamsPerConnection: self.streamsPerConnection,
            certificateAuthorityFile: self.cacert
        )
    }
}

/// Collects each worker's stats as its thread ends.
final class ResultSink: Sendable {
    private let results = Mutex<[LoadStats]>([])

    func append(_ stats: LoadStats) {
        self.results.withLock { $0.append(stats) }
    }

    func merged() -> LoadStats {
        self.results.withLock { all in
            var merged = LoadStats()
            for stats in all { merged.add(stats) }
            return merged
        }
    }
}
