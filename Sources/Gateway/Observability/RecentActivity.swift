import StreamCore
import Synchronization

/// The last five minutes of traffic, for the console's status: how many requests ended, their time
/// to first byte, and what the gateway added to each streamed chunk.
///
/// Prometheus histograms count since start; the console wants "now". Requests and their time to
/// first byte go into ten-second slots in a ring (a slot is cleared when the ring comes back to it),
/// each a log-linear histogram (four buckets per power of two, so a percentile is within about 12%
/// of the truth), summed when asked.
///
/// Chunks are far more frequent, so a chunk costs one relaxed atomic increment in a cumulative
/// histogram (no clock, no lock: a lock and the slot arithmetic per chunk were 12% of the in-process
/// relay's instructions); each slot keeps a copy of that histogram as it stood when the slot began,
/// and the window's chunks are the difference.
package final class RecentActivity: Sendable {
    static let slotSeconds: Int64 = 10
    /// 300 s of whole slots and the one being filled.
    static let slotCount = 31
    package static let windowSeconds = 300
    /// Buckets per histogram: values up to 2^42 ns (73 minutes); longer ones share the last bucket.
    package static let bucketCount = 43 * 4

    private struct State {
        /// The slot number (seconds since `origin` / `slotSeconds`) each ring entry holds.
        var slotNumbers = [Int64](repeating: -1, count: RecentActivity.slotCount)
        var requests = [Int](repeating: 0, count: RecentActivity.slotCount)
        /// `slotCount` histograms of `bucketCount` counts each, one flat array per kind.
        var firstByte = [UInt32](repeating: 0, count: RecentActivity.slotCount * RecentActivity.bucketCount)
        /// The cumulative chunk histogram as it stood when each slot began.
        var chunksAtStart = [UInt64](repeating: 0, count: RecentActivity.slotCount * RecentActivity.bucketCount)

        /// The ring entry for `number`, cleared if it held an older slot (and given the chunk
        /// histogram as it stands now as its start).
        mutating func entry(_ number: Int64, chunks: ChunkHistogram) -> Int {
            let entry = Int(number % Int64(RecentActivity.slotCount))
            if self.slotNumbers[entry] != number {
                self.slotNumbers[entry] = number
                self.requests[entry] = 0
                let base = entry * RecentActivity.bucketCount
                for bucket in 0..<RecentActivity.bucketCount {
                    self.firstByte[base + bucket] = 0
                    self.chunksAtStart[base + bucket] = chunks.count(bucket)
                }
            }
            return entry
        }
    }

    private let state = Mutex(State())
    private let chunks = ChunkHistogram(buckets: RecentActivity.bucketCount)
    private let origin: ContinuousClock.Instant

    package init(origin: ContinuousClock.Instant = .now) {
        self.origin = origin
    }

    private func slotNumber(_ instant: ContinuousClock.Instant) -> Int64 {
        max(0, (instant - self.origin).components.seconds / Self.slotSeconds)
    }

    /// A request ended at `instant`; `firstByte` is its time to first byte, if it sent one.
    package func requestEnded(firstByte: Duration?, at instant: ContinuousClock.Instant) {
        let number = self.slotNumber(instant)
        let bucket = firstByte.map { Self.bucket(nanoseconds: $0.totalNanoseconds) }
        self.state.withLock { state in
            let entry = state.entry(number, chunks: self.chunks)
            state.requests[entry] += 1
            if let bucket { state.firstByte[entry * Self.bucketCount + bucket] &+= 1 }
        }
    }

    /// The gateway spent `nanoseconds` on a chunk it handed to a client.
    @inline(__always)
    package func chunkProcessed(nanoseconds: Int64) {
        self.chunks.add(Self.bucket(nanoseconds: nanoseconds))
    }

    /// Percentiles of the window, in the unit the caller divides nanoseconds by.
    package struct Latency: Sendable, Hashable {
        package var count: Int
        package var p50: Double?
        package var p99: Double?
    }

    package struct Summary: Sendable, Hashable {
        /// Requests that ended in the last ``RecentActivity/windowSeconds``.
        package var requests: Int
        /// Over the last 60 seconds (or since start, when that is shorter).
        package var requestsPerSecond: Double
        package var firstByteMilliseconds: Latency
        package var chunkMicroseconds: Latency
    }

    package func summary(at instant: ContinuousClock.Instant = .now) -> Summary {
        let current = self.slotNumber(instant)
        let elapsed = max(0, Double((instant - self.origin).totalNanoseconds) / 1e9)
        return self.state.withLock { state in
            // This slot begins now if no request has begun it, so its chunk baseline is current.
            _ = state.entry(current, chunks: self.chunks)
            var requests = 0
            var lastMinute = 0
            var firstByte = [UInt64](repeating: 0, count: Self.bucketCount)
            var oldest: (number: Int64, entry: Int)?
            for entry in 0..<Self.slotCount {
                let number = state.slotNumbers[entry]
                guard number >= 0, number <= current, number > current - Int64(Self.slotCount) else { continue }
                requests += state.requests[entry]
                if number > current - 6 { lastMinute += state.requests[entry] }
                if oldest == nil || number < oldest!.number { oldest = (number, entry) }
                for bucket in 0..<Self.bucketCount {
                    firstByte[bucket] += UInt64(state.firstByte[entry * Self.bucketCount + bucket])
                }
            }
            // The window's chunks: the histogram now less the histogram when its oldest slot began.
            var chunks = [UInt64](repeating: 0, count: Self.bucketCount)
            for bucket in 0..<Self.bucketCount {
                let start = oldest.map { state.chunksAtStart[$0.entry * Self.bucketCount + bucket] } ?? 0
                chunks[bucket] = self.chunks.count(bucket) &- start
            }
            // The last minute is the five whole slots before this one and this one's part.
            let intoSlot = elapsed - Double(current * Self.slotSeconds)
            let minute = min(max(elapsed, 1), 50 + intoSlot)
            return Summary(
                requests: requests, requestsPerSecond: Double(lastMinute) / minute,
                firstByteMilliseconds: Self.latency(firstByte, divisor: 1e6), chunkMicroseconds: Self.latency(chunks, divisor: 1e3)
            )
        }
    }

    // MARK: Histogram

    /// Values below 4 ns have their own buckets; above, bucket `4 × octave + the next two bits`.
    package static func bucket(nanoseconds: Int64) -> Int {
        guard nanoseconds >= 4 else { return Int(max(0, nanoseconds)) }
        let value = UInt64(nanoseconds)
        let octave = 63 - value.leadingZeroBitCount
        let sub = Int((value >> (octave - 2)) & 3)
        return min(Self.bucketCount - 1, octave * 4 + sub)
    }

    /// The middle of a bucket's range, in nanoseconds.
    package static func value(ofBucket bucket: Int) -> Double {
        guard bucket >= 8 else { return Double(bucket) }
        let octave = bucket / 4
        let sub = bucket % 4
        let width = Double(UInt64(1) << (octave - 2))
        return Double(4 + sub) * width + width / 2
    }

    private static func latency(_ counts: [UInt64], divisor: Double) -> Latency {
        let total = counts.reduce(0, +)
        guard total > 0 else { return Latency(count: 0, p50: nil, p99: nil) }
        func percentile(_ fraction: Double) -> Double {
            let rank = UInt64((Double(total) * fraction).rounded(.up))
            var seen: UInt64 = 0
            for (bucket, count) in counts.enumerated() {
                seen += count
                if seen >= max(rank, 1) { return Self.value(ofBucket: bucket) / divisor }
            }
            return Self.value(ofBucket: counts.count - 1) / divisor
        }
        return Latency(count: Int(total), p50: percentile(0.5), p99: percentile(0.99))
    }
}

/// Counts per bucket, each a relaxed atomic: many streams add at once without a lock.
final class ChunkHistogram: @unchecked Sendable {
    // @unchecked: the pointer is written only through atomics, allocated once and freed in deinit.
    private let counts: UnsafeMutablePointer<Atomic<UInt64>>
    private let buckets: Int

    init(buckets: Int) {
        self.buckets = buckets
        self.counts = .allocate(capacity: buckets)
        for index in 0..<buckets { (self.counts + index).initialize(to: Atomic(0)) }
    }

    deinit {
        self.counts.deinitialize(count: self.buckets)
        self.counts.deallocate()
    }

    @inline(__always)
    func add(_ bucket: Int) {
        self.counts[bucket].wrappingAdd(1, ordering: .relaxed)
    }

    func count(_ bucket: Int) -> UInt64 {
        self.counts[bucket].load(ordering: .relaxed)
    }
}
