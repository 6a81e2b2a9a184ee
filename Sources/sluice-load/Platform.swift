#if canImport(Glibc)
internal import Glibc
#elseif canImport(Darwin)
internal import Darwin
#endif

/// `CLOCK_MONOTONIC` in nanoseconds: the clock the simulator writes into its latency stamps
/// (DESIGN.md, Latency stamps), so arrival − stamp is one chunk's end-to-end latency on this machine.
enum MonotonicClock {
    static func nanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

enum FileLimit {
    /// Raises the soft `RLIMIT_NOFILE` to the hard limit: every concurrent stream holds a socket, and
    /// the usual soft limit (1,024) would fail a 10,000-stream run with connect errors.
    ///
    /// - Returns: the soft limit in force afterwards.
    @discardableResult
    static func raiseToHardLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { return UInt64(raised.rlim_cur) }
        }
        return UInt64(limit.rlim_cur)
    }
}

/// Runs `bodies` on their own POSIX threads and waits for all of them.
///
/// Each worker blocks in `curl_multi_poll`, so it needs a thread of its own; the cooperative pool
/// (and `concurrentPerform`, which runs no more bodies at once than there are cores) would starve.
enum WorkerThreads {
    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    static func runAndWait(_ bodies: [@Sendable () -> Void]) {
        var threads: [pthread_t] = []
        for body in bodies {
            let context = Unmanaged.passRetained(Body(body)).toOpaque()
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { raw in
                guard let raw else { return nil }
                Unmanaged<Body>.fromOpaque(raw).takeRetainedValue().run()
                return nil
            }, context)
            if status == 0 {
                threads.append(thread)
            } else {
                // No thread: run it here rather than lose a worker's share of the streams.
                Unmanaged<Body>.fromOpaque(context).takeRetainedValue().run()
            }
        }
        for thread in threads { pthread_join(thread, nil) }
    }
}
