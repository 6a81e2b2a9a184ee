import Foundation
package import Logging
import ServiceLifecycle
import Synchronization

/// Usage rows the store could not take (PostgreSQL restarting or unreachable), kept in memory in
/// order and written as soon as the store answers again, so a request that finished during a short
/// outage is not lost (it is lost only if this process also dies before the store is back).
///
/// While rows wait, new rows join the queue at once: a store that just failed would make each of
/// them wait for a connection attempt (seconds) before its response could end. The queue is bounded
/// (``capacity`` rows, about 30 MB); past it a row is dropped, counted and logged.
package final class LedgerBacklog: Sendable {
    package static let defaultCapacity = 100_000

    private struct State {
        var rows: [UsageRecord] = []
        /// Rows queued since the last time the queue was empty (for the log line when it drains).
        var queuedInOutage = 0
    }

    private let state = Mutex(State())
    package let capacity: Int

    package init(capacity: Int = LedgerBacklog.defaultCapacity) {
        self.capacity = capacity
    }

    /// Rows waiting to be written.
    package var count: Int { self.state.withLock { $0.rows.count } }
    /// Whether new rows should skip the store and queue behind the waiting ones.
    var isBacklogged: Bool { self.state.withLock { !$0.rows.isEmpty } }

    /// Queues a row; `false` when the queue is full and the row was dropped.
    func enqueue(_ record: UsageRecord) -> (queued: Bool, first: Bool) {
        self.state.withLock { state in
            guard state.rows.count < self.capacity else { return (false, false) }
            let first = state.rows.isEmpty
            state.rows.append(record)
            state.queuedInOutage += 1
            return (true, first)
        }
    }

    /// Writes the waiting rows in order until the store fails again; returns how many were written.
    /// The rows stay queued while they are written (so new rows keep queuing behind them) and the
    /// written ones leave in one step: removing them one by one from the front was quadratic.
    func flush(to store: any Store, logger: Logger) async -> Int {
        let waiting = self.state.withLock { $0.rows }
        var written = 0
        for row in waiting {
            do {
                try await store.recordUsage(row)
            } catch {
                break
            }
            written += 1
        }
        let drained: Int? = self.state.withLock { state in
            state.rows.removeFirst(written)
            guard state.rows.isEmpty else { return nil }
            defer { state.queuedInOutage = 0 }
            return state.queuedInOutage
        }
        if let drained {
            logger.notice("ledger backlog written: the store answers again", metadata: ["ledger.rows": "\(drained)"])
        } else if written > 0 {
            logger.info("ledger backlog partly written", metadata: ["ledger.written": "\(written)"])
        }
        return written
    }
}

/// Writes the ledger backlog every second while the server runs, and once more at shutdown.
package struct LedgerFlusher: Service {
    let backlog: LedgerBacklog
    let store: any Store
    let logger: Logger
    let interval: Duration

    package init(backlog: LedgerBacklog, store: any Store, logger: Logger, interval: Duration = .seconds(1)) {
        self.backlog = backlog
        self.store = store
        self.logger = logger
        self.interval = interval
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await Task.sleep(for: self.interval)
                } catch {
                    break
                }
                if self.backlog.count > 0 { _ = await self.backlog.flush(to: self.store, logger: self.logger) }
            }
        }
        // Shutting down: one last attempt, so a short outage that ended during the drain loses nothing.
        if self.backlog.count > 0 {
            _ = await Task { await self.backlog.flush(to: self.store, logger: self.logger) }.value
            let left = self.backlog.count
            if left > 0 { self.logger.error("usage rows not written: the store was unreachable until shutdown", metadata: ["ledger.rows": "\(left)"]) }
        }
    }
}

/// The value of some work if it comes within a time limit, else `nil`. The work runs on, unawaited,
/// past the limit (an unstructured task, or work that reports through a callback: a task group
/// would wait for it, and a store write does not stop when cancelled); the timer is cancelled as
/// soon as the work wins, so no timer outlives its request.
enum BoundedWait<Value: Sendable> {
    static func value(of work: @escaping @Sendable () async -> Value, within limit: Duration) async -> Value? {
        await self.value(within: limit) { finish in
            Task { finish(await work()) }
        }
    }

    /// The same for work that is started by `start` and says it is done by calling the function it
    /// is given (once): no task of its own when the work needs none.
    static func value(within limit: Duration, start: (@escaping @Sendable (Value) -> Void) -> Void) async -> Value? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Value?, Never>) in
            let once = Once(continuation)
            // After the work's value this is ignored. Not a `Task.sleep`: see ``Deadlines``.
            let timer = Deadlines.shared.schedule(at: .now + limit) { once.finish(nil) }
            start { value in
                once.finish(value)
                Deadlines.shared.cancel(timer)
            }
        }
    }

    /// Resumes the continuation with the first value only.
    private final class Once: Sendable {
        private let pending: Mutex<CheckedContinuation<Value?, Never>?>

        init(_ continuation: CheckedContinuation<Value?, Never>) {
            self.pending = Mutex(continuation)
        }

        func finish(_ value: Value?) {
            self.pending.withLock { waiting in
                waiting?.resume(returning: value)
                waiting = nil
            }
        }
    }
}
