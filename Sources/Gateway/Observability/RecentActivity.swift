import StreamCore
import Synchronization

/// The last five minutes of traffic, for the console's status: how many requests ended, their time
/// to first byte, and what the gateway added to each streamed chunk.
///
/// Prometheus histograms count since start; the console wants "now". Ten-second slots in a ring,
/// each with two log-linear histograms (four buckets per power of two, so a percentile is within
/// about 12% of the truth), are summed when asked. A slot is cleared when the ring comes back to it.
/// Recording is one lock and two array increments; the chunk path passes the instant it already read.
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
        var chunks = [UInt32](repeating: 0, count: RecentActivity.slotCount * RecentActivity.bucketCount)

        /// The ring entry for `number`, cleared if it held an older slot.
        mutating func entry(_ number: Int64) -> Int {
            let entry = Int(number % Int64(RecentActivity.slotCount))
            if self.slotNumbers[entry] != number {
                self.slotNumbers[entry] = number
                self.requests[entry] = 0
                let range = entry * RecentActivity.bucketCount..<(entry + 1) * RecentActivity.bucketCount
                for index in range {
                    self.firstByte[index] = 0
                    self.chunks[index] = 0
                }
            }
            return entry
        }
    }

    private let state = Mutex(State())
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
            let entry = state.entry(number)
            state.requests[entry] += 1
            if let bucket { state.firstByte[entry * Self.bucketCount + bucket] &+= 1 }
        }
    }

    /// The gateway spent `duration` on a chunk it handed to a client at `instant`.
    package func chunkProcessed(_ duration: Duration, at instant: ContinuousClock.Instant) {
        let number = self.slotNumber(instant)
        let bucket = Self.bucket(nanoseconds: duration.totalNanoseconds)
        self.state.withLock { state in
            let entry = state.entry(number)
            state.chunks[entry * Self.bucketCount + bucket] &+= 1
        }
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
            var requests = 0
            var lastMinute = 0
            var firstByte = [UInt64](repeating: 0, count: Self.bucketCount)
            var chunks = [UInt64](repeating: 0, count: Self.bucketCount)
            for entry in 0..<Self.slotCount {
                let number = state.slotNumbers[entry]
                guard number >= 0, number <= current, number > current - Int64(Self.slotCount) else { continue }
                requests += state.requests[entry]
                if number > current - 6 { lastMinute += state.requests[entry] }
                for bucket in 0..<Self.bucketCount {
                    firstByte[bucket] += UInt64(state.firstByte[entry * Self.bucketCount + bucket])
                    chunks[bucket] += UInt64(state.chunks[entry * Self.bucketCount + bucket])
                }
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
