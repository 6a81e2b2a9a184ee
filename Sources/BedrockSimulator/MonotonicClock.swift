#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of the latency stamps (DESIGN.md, Latency stamps).
///
/// The load generator reads the same clock on the same machine when a stamp arrives, so
/// arrival − stamp is the end-to-end latency of that chunk. Swift's `ContinuousClock` does not promise
/// which POSIX clock it reads, so the stamp goes to `clock_gettime` directly.
package enum MonotonicClock {
    package static func nanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
