import Foundation
import Histogram

/// The result of a run: what the table prints and `--json` writes.
struct LoadReport: Codable, Sendable {
    /// Percentiles of one histogram, in microseconds (recorded in nanoseconds).
    struct Distribution: Codable, Sendable {
        var count: UInt64
        var p50: Double
        var p90: Double
        var p99: Double
        var p999: Double
        var max: Double
        var mean: Double

        init(_ histogram: Histogram<UInt64>) {
            func micros(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1000 }
            self.count = histogram.totalCount
            let empty = histogram.totalCount == 0
            self.p50 = empty ? 0 : micros(histogram.valueAtPercentile(50))
            self.p90 = empty ? 0 : micros(histogram.valueAtPercentile(90))
            self.p99 = empty ? 0 : micros(histogram.valueAtPercentile(99))
            self.p999 = empty ? 0 : micros(histogram.valueAtPercentile(99.9))
            self.max = empty ? 0 : micros(histogram.max)
            self.mean = empty ? 0 : histogram.mean / 1000
        }
    }

    var target: String
    var route: String
    var direct: Bool
    var model: String
    var scenario: String
    var expectedChunksPerStream: Int
    var concurrency: Int
    var threads: Int
    var elapsedSeconds: Double
    var streamsOK: Int
    var streamsFailed: Int
    /// New connections opened over the run (HTTP/2 multiplexing shows as far fewer than streams).
    var connectionsOpened: Int
    /// Failed streams by kind (StreamFailure keys); empty when every stream was good.
    var errors: [String: Int]
    /// The first message seen per kind.
    var errorSamples: [String: String]
    var chunks: Int
    var chunksPerSecond: Double
    var bytes: Int
    var bytesPerSecond: Double
    var timeToFirstByteMicros: Distribution
    var chunkLatencyMicros: Distribution

    init(plan: LoadPlan, stats: LoadStats, elapsedNanoseconds: UInt64) {
        let seconds = max(Double(elapsedNanoseconds) / 1e9, 1e-9)
        self.target = plan.url
        self.route = plan.route == .openAI ? "openai" : "bedrock"
        self.direct = plan.isDirect
        self.model = plan.model
        self.scenario = plan.scenario
        self.expectedChunksPerStream = plan.expectedTextDeltas
        self.concurrency = plan.concurrency
        self.threads = plan.threads
        self.elapsedSeconds = seconds
        self.streamsOK = stats.streamsOK
        self.streamsFailed = stats.streamsFailed
        self.connectionsOpened = stats.connectionsOpened
        self.errors = stats.failures
        self.errorSamples = stats.failureSamples
        self.chunks = stats.chunks
        self.chunksPerSecond = Double(stats.chunks) / seconds
        self.bytes = stats.bytes
        self.bytesPerSecond = Double(stats.bytes) / seconds
        self.timeToFirstByteMicros = Distribution(stats.timeToFirstByte)
        self.chunkLatencyMicros = Distribution(stats.chunkLatency)
    }

    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    func table() -> String {
        var lines: [String] = []
        let kind = self.direct ? "direct (simulator)" : "gateway"
        lines.append("sluice-load  \(kind), \(self.route) route: \(self.target)")
        lines.append("  model \(self.model), scenario \"\(self.scenario)\" (\(self.expectedChunksPerStream) chunks/stream)")
        lines.append(
            "  concurrency \(self.concurrency), threads \(self.threads), elapsed \(Self.fixed(self.elapsedSeconds, 2)) s"
        )
        lines.append("  streams    ok \(self.streamsOK), failed \(self.streamsFailed); connections opened \(self.connectionsOpened)")
        lines.append(
            "  throughput \(self.chunks) chunks (\(Self.fixed(self.chunksPerSecond, 0))/s), "
                + "\(Self.fixed(Double(self.bytes) / 1_048_576, 1)) MiB (\(Self.fixed(self.bytesPerSecond / 1_048_576, 2)) MiB/s)"
        )
        let columns = ["µs", "p50", "p90", "p99", "p99.9", "max", "mean", "count"]
        lines.append("  " + Self.pad(columns[0], 12) + columns.dropFirst().map { Self.pad($0, 11, right: true) }.joined())
        for (name, distribution) in [("ttfb", self.timeToFirstByteMicros), ("chunk", self.chunkLatencyMicros)] {
            let values = [distribution.p50, distribution.p90, distribution.p99, distribution.p999, distribution.max, distribution.mean]
            lines.append(
                "  " + Self.pad(name, 12) + values.map { Self.pad(Self.fixed($0, 1), 11, right: true) }.joined()
                    + Self.pad(String(distribution.count), 11, right: true)
            )
        }
        if self.errors.isEmpty {
            lines.append("  errors     none")
        } else {
            lines.append("  errors")
            for (kind, count) in self.errors.sorted(by: { $0.key < $1.key }) {
                lines.append("    " + Self.pad(kind, 20) + Self.pad(String(count), 8, right: true) + "  " + (self.errorSamples[kind] ?? ""))
            }
        }
        return lines.joined(separator: "\n")
    }

    private static func fixed(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }

    private static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return right ? padding + text : text + padding
    }
}
