import Foundation
package import NIOCore
import Synchronization

/// A task executor that runs jobs on one NIO event loop.
///
/// A stream's task prefers the event loop of the client's connection: the upstream request is then
/// made from that loop (AsyncHTTPClient picks the calling loop for its connection), the upstream's
/// body parts wake the task on the same thread, and its writes reach the client's channel without
/// crossing threads. Without it, every chunk hopped from an event loop to the cooperative pool and
/// back, and the two connections of one stream sat on different loops (shared/perf/wire-profile.md).
package final class LoopExecutor: TaskExecutor {
    package let loop: any EventLoop

    private init(loop: any EventLoop) {
        self.loop = loop
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        self.loop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }

    /// One executor per loop, made on first use (a process has a few loops and keeps them).
    private static let executors = Mutex<[ObjectIdentifier: LoopExecutor]>([:])

    /// Whether streams run on their connection's loop (`SLUICE_LOOP_EXECUTOR=0` turns it off, to
    /// measure the difference in Benchmarks/wire.sh).
    private static let isEnabled = ProcessInfo.processInfo.environment["SLUICE_LOOP_EXECUTOR"] != "0"

    /// The executor for `loop`, or `nil` (the default executor) when turned off.
    package static func preferred(for loop: any EventLoop) -> LoopExecutor? {
        Self.isEnabled ? Self.executor(for: loop) : nil
    }

    package static func executor(for loop: any EventLoop) -> LoopExecutor {
        let key = ObjectIdentifier(loop)
        return Self.executors.withLock { executors in
            if let existing = executors[key] { return existing }
            let made = LoopExecutor(loop: loop)
            executors[key] = made
            return made
        }
    }
}
