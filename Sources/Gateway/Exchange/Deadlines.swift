import Synchronization

/// Coarse deadlines without a timer each: one sweep every `resolution` ends the waits (and runs the
/// actions) whose deadline has passed, and stops when nobody waits.
///
/// Every request has two (its body's time limit, its ledger write's) and almost never reaches them. A
/// `Task.sleep` each arms a libdispatch timer and disarms it when the work is done, waking
/// libdispatch's timer thread both times (strace showed both for the body's limit). Here a deadline
/// is a dictionary entry, and cancelling it ends it at once.
final class Deadlines: Sendable {
    /// For the request body's and the ledger write's limits (seconds): ends one at most a tenth of a
    /// second late.
    static let shared = Deadlines(resolution: .milliseconds(100))

    private struct State {
        /// What each registered deadline does when it passes (`true`) or is cancelled (`false`).
        var waiters: [UInt64: (deadline: ContinuousClock.Instant, end: @Sendable (Bool) -> Void)] = [:]
        /// Waits cancelled before they registered: they end as soon as they do (a wait always
        /// registers, so an id is never left here).
        var cancelled: Set<UInt64> = []
        var nextID: UInt64 = 0
        var isSweeping = false
    }

    private let state = Mutex(State())
    private let resolution: Duration

    init(resolution: Duration) {
        self.resolution = resolution
    }

    /// Returns `true` once `deadline` has passed, or `false` as soon as the task is cancelled.
    func wait(until deadline: ContinuousClock.Instant) async -> Bool {
        let id = self.newID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                self.register(id, deadline) { continuation.resume(returning: $0) }
            }
        } onCancel: {
            // The cancellation can come before the wait registers: it leaves a mark the wait finds.
            self.end(id, markIfAbsent: true)
        }
    }

    /// Runs `action` once `deadline` has passed, unless ``cancel(_:)`` comes first; the id cancels it.
    func schedule(at deadline: ContinuousClock.Instant, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        let id = self.newID()
        self.register(id, deadline) { passed in
            if passed { action() }
        }
        return id
    }

    /// Drops a scheduled action before its deadline; after it is a no-op.
    func cancel(_ id: UInt64) {
        self.end(id, markIfAbsent: false)
    }

    private func end(_ id: UInt64, markIfAbsent: Bool) {
        let end = self.state.withLock { state -> (@Sendable (Bool) -> Void)? in
            if let waiter = state.waiters.removeValue(forKey: id) { return waiter.end }
            if markIfAbsent { state.cancelled.insert(id) }
            return nil
        }
        end?(false)
    }

    private func newID() -> UInt64 {
        self.state.withLock { state in
            state.nextID &+= 1
            return state.nextID
        }
    }

    private func register(_ id: UInt64, _ deadline: ContinuousClock.Instant, end: @escaping @Sendable (Bool) -> Void) {
        let outcome: (endNow: Bool?, startSweeping: Bool) = self.state.withLock { state in
            if state.cancelled.remove(id) != nil { return (false, false) }
            if deadline <= .now { return (true, false) }
            state.waiters[id] = (deadline, end)
            let start = !state.isSweeping
            state.isSweeping = true
            return (nil, start)
        }
        if let endNow = outcome.endNow { end(endNow) }
        if outcome.startSweeping { self.sweep() }
    }

    /// Deadlines registered, and cancellation marks not yet found by their wait (for tests).
    var waiting: Int { self.state.withLock { $0.waiters.count } }
    var marks: Int { self.state.withLock { $0.cancelled.count } }

    private func sweep() {
        let resolution = self.resolution
        Task.detached {
            while true {
                try? await Task.sleep(for: resolution)
                let now = ContinuousClock.now
                let (expired, goesOn) = self.state.withLock { state in
                    let expired = state.waiters.filter { $0.value.deadline <= now }
                    for id in expired.keys { state.waiters.removeValue(forKey: id) }
                    if state.waiters.isEmpty { state.isSweeping = false }
                    return (expired.values.map(\.end), state.isSweeping)
                }
                for end in expired { end(true) }
                if !goesOn { return }
            }
        }
    }
}
