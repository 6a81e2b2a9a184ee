import Synchronization

/// Waits for coarse deadlines without a timer each: one sweep every `resolution` ends the waits
/// whose deadline has passed, and stops when nobody waits.
///
/// Every request waits on one (its body's time limit) and almost never reaches it. A `Task.sleep`
/// each arms a libdispatch timer and disarms it when the body has arrived: its timer thread woke twice
/// per request, two of the five context switches a request cost (strace, `perf stat`). Here a wait is
/// a dictionary entry, and cancelling it resumes it at once.
final class Deadlines: Sendable {
    /// For the request body's limit (seconds to minutes): ends a wait at most a tenth of a second late.
    static let shared = Deadlines(resolution: .milliseconds(100))

    private struct State {
        var waiters: [UInt64: (deadline: ContinuousClock.Instant, continuation: CheckedContinuation<Bool, Never>)] = [:]
        /// Waits cancelled before they were registered: they end as soon as they are (a wait always
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
        let id = self.state.withLock { state in
            state.nextID &+= 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let outcome: (resume: Bool?, startSweeping: Bool) = self.state.withLock { state in
                    if state.cancelled.remove(id) != nil { return (false, false) }
                    if deadline <= .now { return (true, false) }
                    state.waiters[id] = (deadline, continuation)
                    let start = !state.isSweeping
                    state.isSweeping = true
                    return (nil, start)
                }
                if let resume = outcome.resume { continuation.resume(returning: resume) }
                if outcome.startSweeping { self.sweep() }
            }
        } onCancel: {
            let continuation = self.state.withLock { state -> CheckedContinuation<Bool, Never>? in
                if let waiter = state.waiters.removeValue(forKey: id) { return waiter.continuation }
                state.cancelled.insert(id)
                return nil
            }
            continuation?.resume(returning: false)
        }
    }

    /// Whether a wait is registered (for tests).
    var waiting: Int { self.state.withLock { $0.waiters.count } }

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
                    return (expired.values.map(\.continuation), state.isSweeping)
                }
                for continuation in expired { continuation.resume(returning: true) }
                if !goesOn { return }
            }
        }
    }
}
