import CoreMetrics
import Foundation
import Metrics
import Prometheus
import StreamCore
import Synchronization

/// The gateway's Prometheus metrics, served at `GET /metrics`.
///
/// Recorded through swift-metrics with a factory of this gateway's own (no global bootstrap: a
/// process may run several gateways, as the tests do), into a swift-prometheus registry. Every
/// label set is bounded: routes and statuses are ours, models and identities are capped at
/// ``maximumLabelValues`` distinct values each (the rest are counted as `other`), error kinds are
/// our own codes.
package final class GatewayMetrics: Sendable {
    /// Distinct models or identities given their own series before the rest share `other`.
    static let maximumLabelValues = 200

    private let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let models = BoundedLabels(maximum: GatewayMetrics.maximumLabelValues)
    private let identities = BoundedLabels(maximum: GatewayMetrics.maximumLabelValues)
    private let betas = BoundedLabels(maximum: 64)
    private let activeStreams: Meter
    private let chunkTimers: [String: Metrics.Timer]
    private let firstByteTimers: [String: Metrics.Timer]
    /// The last minutes, for the console (`/admin/api/status`).
    package let recent = RecentActivity()
    /// Counters by name and label values, made once. swift-metrics' `Counter(label:dimensions:)` asks
    /// the factory every time, and swift-prometheus then checks the label names and finds the series
    /// under its lock: ~6 % of a request's task in perf, for the counters every request touches.
    /// Bounded as the series are.
    private let counters = Mutex<[CounterKey: any CounterHandler]>([:])

    private struct CounterKey: Hashable {
        var label: String
        /// Names and values, alternating.
        var dimensions: [String]
    }

    /// The routes streams are counted on (bounded label values).
    static let streamRoutes = ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/bedrock/model"]

    package init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Per-chunk processing is microseconds; the histogram must resolve that range.
        factory.durationHistogramBuckets["sluice_chunk_processing_seconds"] = [
            .microseconds(2), .microseconds(5), .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100),
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100),
        ]
        factory.durationHistogramBuckets["sluice_time_to_first_byte_seconds"] = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
        ]
        self.registry = registry
        self.factory = factory
        self.activeStreams = Meter(label: "sluice_active_streams", dimensions: [], factory: factory)
        var chunks: [String: Metrics.Timer] = [:]
        var firstBytes: [String: Metrics.Timer] = [:]
        for route in Self.streamRoutes {
            chunks[route] = Metrics.Timer(label: "sluice_chunk_processing_seconds", dimensions: [("route", route)], factory: factory)
            firstBytes[route] = Metrics.Timer(label: "sluice_time_to_first_byte_seconds", dimensions: [("route", route)], factory: factory)
        }
        self.chunkTimers = chunks
        self.firstByteTimers = firstBytes
    }

    /// The route label for a route path (the Bedrock routes share one).
    static func routeLabel(_ route: String) -> String {
        route.hasPrefix("/bedrock/model") ? "/bedrock/model" : route
    }

    // MARK: Recording

    private func count(_ label: String, _ dimensions: [(String, String)], by amount: Int = 1) {
        var names: [String] = []
        names.reserveCapacity(dimensions.count * 2)
        for (name, value) in dimensions {
            names.append(name)
            names.append(value)
        }
        let key = CounterKey(label: label, dimensions: names)
        let counter = self.counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = self.factory.makeCounter(label: label, dimensions: dimensions)
            counters[key] = counter
            return counter
        }
        counter.increment(by: Int64(amount))
    }

    /// A request ended (however): its status, its tokens, and its time to first byte.
    func requestFinished(route: String, model: String, identity: String, status: Int, usage: TokenUsage, firstByte: Duration?) {
        let route = Self.routeLabel(route)
        let model = self.models.label(model)
        self.count("sluice_requests_total", [("route", route), ("model", model), ("status", String(status))])
        if usage.totalTokens > 0 {
            let identity = self.identities.label(identity)
            for (kind, count) in [
                ("input", usage.inputTokens), ("output", usage.outputTokens), ("cache_read", usage.cacheReadInputTokens),
                ("cache_write", usage.cacheWriteInputTokens),
            ] where count > 0 {
                self.count("sluice_tokens_total", [("kind", kind), ("model", model), ("identity", identity)], by: count)
            }
        }
        if let firstByte, let timer = self.firstByteTimers[route] {
            timer.recordNanoseconds(firstByte.totalNanoseconds)
        }
        self.recent.requestEnded(firstByte: firstByte, at: .now)
    }

    /// An upstream failure: a connection error, an error status, or an exception in a stream.
    func upstreamError(_ kind: String) {
        self.count("sluice_upstream_errors_total", [("kind", kind)])
    }

    /// One upstream call and how it went: `ok`, or the error's label (`upstream_throttled`,
    /// `upstream_unreachable`, …). Upstream names come from the configuration, outcomes are our codes.
    func upstreamRequest(_ upstream: String, outcome: String) {
        self.count("sluice_upstream_requests_total", [("upstream", upstream), ("outcome", outcome)])
    }

    /// A request moved on from `upstream` to the next in its ranking, and why.
    func failover(from upstream: String, reason: String) {
        self.count("sluice_failovers_total", [("from", upstream), ("reason", reason)])
    }

    /// A usage row the ledger could not keep (the store unreachable and the queue full).
    func ledgerRowDropped() {
        self.count("sluice_ledger_rows_dropped_total", [])
    }

    /// A request refused by a limit (`requests_per_minute`, `concurrent_streams`, …).
    func limitRefusal(_ limit: String) {
        self.count("sluice_limit_refusals_total", [("limit", limit)])
    }

    /// An `anthropic_beta` value removed before a call because the target model does not take it
    /// (values are the client's: bounded like models).
    func betaDropped(_ beta: String) {
        self.count("sluice_betas_dropped_total", [("beta", self.betas.label(beta))])
    }

    /// A corrupt upstream event stream, by ``EventStreamError`` code.
    func decoderError(_ kind: String) {
        self.count("sluice_decoder_errors_total", [("kind", kind)])
    }

    /// The histogram of the time from an upstream read's arrival to its translated or verified
    /// bytes being handed to the client's connection (what the gateway adds to each chunk), looked
    /// up once per stream so the per-chunk path does no string or dictionary work.
    func chunkTimer(route: String) -> Metrics.Timer? {
        self.chunkTimers[Self.routeLabel(route)]
    }

    /// The exposition text (`text/plain; version=0.0.4`), with the gauges of open streams and of
    /// upstream health (1 taking requests, 0 cooling down) read now.
    package func render(openStreams: Int, upstreamHealth: [(name: String, region: String, healthy: Bool)] = [], ledgerBacklog: Int = 0) -> [UInt8] {
        self.activeStreams.set(openStreams)
        Meter(label: "sluice_ledger_backlog_rows", dimensions: [], factory: self.factory).set(ledgerBacklog)
        for (name, _, healthy) in upstreamHealth {
            Meter(label: "sluice_upstream_healthy", dimensions: [("upstream", name)], factory: self.factory).set(healthy ? 1 : 0)
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 * 1024)
        self.registry.emit(into: &buffer)
        return buffer
    }
}

/// Label values admitted first come, first served up to a bound; later ones become `other`, so a
/// client inventing model names cannot grow the metrics without end.
final class BoundedLabels: Sendable {
    private let seen = Mutex<Set<String>>([])
    let maximum: Int

    init(maximum: Int) {
        self.maximum = maximum
    }

    func label(_ value: String) -> String {
        self.seen.withLock { seen in
            if seen.contains(value) { return value }
            guard seen.count < self.maximum else { return "other" }
            seen.insert(value)
            return value
        }
    }
}
