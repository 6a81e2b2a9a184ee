import Histogram

/// What one worker measured; workers' stats are merged into the report at the end.
struct LoadStats: Sendable {
    /// Per-chunk end-to-end latency (arrival − stamp), nanoseconds.
    var chunkLatency = LoadStats.makeHistogram()
    /// Request start → first body byte, nanoseconds.
    var timeToFirstByte = LoadStats.makeHistogram()
    var streamsOK = 0
    var streamsFailed = 0
    var failures: [String: Int] = [:]
    /// The first message seen per failure kind (curl's error text, a status body's start, …), so a
    /// report says what went wrong, not only how often.
    var failureSamples: [String: String] = [:]
    /// Text deltas received (stamped or not), over all streams, good and failed.
    var chunks = 0
    /// Response body bytes received.
    var bytes = 0
    /// New connections the streams had to open (curl's CURLINFO_NUM_CONNECTS): one per stream's
    /// first use of a slot over HTTP/1.1 keep-alive, a few for many streams over HTTP/2.
    var connectionsOpened = 0

    /// Up to 10 minutes in nanoseconds at 3 significant digits: any latency a run can see fits,
    /// and the histogram stays a few hundred KiB.
    static func makeHistogram() -> Histogram<UInt64> {
        Histogram(lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)
    }

    mutating func recordFailure(_ failure: StreamFailure, sample: @autoclosure () -> String) {
        self.streamsFailed += 1
        self.failures[failure.key, default: 0] += 1
        if self.failureSamples[failure.key] == nil {
            self.failureSamples[failure.key] = String(sample().prefix(300))
        }
    }

    mutating func add(_ other: LoadStats) {
        self.chunkLatency.add(other.chunkLatency)
        self.timeToFirstByte.add(other.timeToFirstByte)
        self.streamsOK += other.streamsOK
        self.streamsFailed += other.streamsFailed
        self.connectionsOpened += other.connectionsOpened
        self.failures.merge(other.failures, uniquingKeysWith: +)
        self.failureSamples.merge(other.failureSamples) { mine, _ in mine }
        self.chunks += other.chunks
        self.bytes += other.bytes
    }
}
