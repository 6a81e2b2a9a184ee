import Synchronization

/// What routing knows of each upstream's health: which ones failed recently and must be skipped for
/// a while, and which one is due a single trial request (half-open) after its cooldown.
///
/// The request path reads and writes it synchronously, so it never waits on anything shared. A board
/// shared by several replicas (once the store is shared) keeps this interface: it answers from a
/// local copy that a subscription to the store keeps current, and publishes its own failures and
/// recoveries to the store in the background. ``LocalHealthBoard`` is the one-process board.
package protocol UpstreamHealthBoard: Sendable {
    /// The state of `upstream` now.
    func state(of upstream: String, now: ContinuousClock.Instant) -> UpstreamHealthState
    /// Takes the one trial request of an upstream whose cooldown is over; `false` when another
    /// request took it first (this one then treats the upstream as cooling down).
    func claimProbe(_ upstream: String, now: ContinuousClock.Instant) -> Bool
    /// The upstream answered (a success, or an answer that is the caller's fault, such as a 400).
    func succeeded(_ upstream: String)
    /// The upstream throttled, was overloaded, failed or could not be reached: it is skipped for a
    /// cooldown that doubles with each failure in a row, or for `retryAfter` when that is longer.
    func failed(_ upstream: String, now: ContinuousClock.Instant, retryAfter: Duration?)
}

package enum UpstreamHealthState: Sendable, Equatable {
    /// Take requests.
    case healthy
    /// The cooldown is over: one request may try it (``UpstreamHealthBoard/claimProbe(_:now:)``).
    case probeDue
    /// Skipped until its cooldown ends (or while its trial request is in flight).
    case coolingDown
}

/// The health of upstreams in this process.
package final class LocalHealthBoard: UpstreamHealthBoard {
    private struct Entry {
        var failures = 0
        var coolingUntil: ContinuousClock.Instant?
        /// When the trial request started; a trial that never reports back (its task was
        /// cancelled) gives the slot up after `probeTimeout`.
        var probeStarted: ContinuousClock.Instant?
    }

    private let entries = Mutex<[String: Entry]>([:])
    private let cooldown: Duration
    private let maximumCooldown: Duration
    private let probeTimeout: Duration

    /// - Parameters:
    ///   - cooldown: how long an upstream is skipped after its first failure; doubled on each
    ///     further failure in a row, up to `maximumCooldown`.
    ///   - probeTimeout: how long a trial request may hold the half-open slot.
    package init(cooldown: Duration, maximumCooldown: Duration, probeTimeout: Duration) {
        self.cooldown = cooldown
        self.maximumCooldown = max(cooldown, maximumCooldown)
        self.probeTimeout = probeTimeout
    }

    package func state(of upstream: String, now: ContinuousClock.Instant) -> UpstreamHealthState {
        self.entries.withLock { entries in
            guard let entry = entries[upstream], let until = entry.coolingUntil else { return .healthy }
            if now < until { return .coolingDown }
            if let started = entry.probeStarted, now - started < self.probeTimeout { return .coolingDown }
            return .probeDue
        }
    }

    package func claimProbe(_ upstream: String, now: ContinuousClock.Instant) -> Bool {
        self.entries.withLock { entries in
            guard var entry = entries[upstream], let until = entry.coolingUntil else { return true }
            guard now >= until else { return false }
            if let started = entry.probeStarted, now - started < self.probeTimeout { return false }
            entry.probeStarted = now
            entries[upstream] = entry
            return true
        }
    }

    package func succeeded(_ upstream: String) {
        self.entries.withLock { entries in
            if entries[upstream] != nil { entries[upstream] = nil }
        }
    }

    package func failed(_ upstream: String, now: ContinuousClock.Instant, retryAfter: Duration?) {
        self.entries.withLock { entries in
            var entry = entries[upstream] ?? Entry()
            entry.failures += 1
            var wait = self.cooldown
            for _ in 1..<min(entry.failures, 20) where wait < self.maximumCooldown { wait = wait * 2 }
            if let retryAfter, retryAfter > wait { wait = retryAfter }
            wait = min(wait, self.maximumCooldown)
            entry.coolingUntil = now + wait
            entry.probeStarted = nil
            entries[upstream] = entry
        }
    }
}
