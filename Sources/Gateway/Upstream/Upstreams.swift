#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The upstreams requests are routed over, and the rules of routing (README, "Several upstreams"):
///
/// - **Affinity.** Each request has a key (its session, its cache key, or its identity and the start
///   of its conversation). Upstreams are ranked for the key by weighted rendezvous hashing: the same
///   key ranks them the same way in every replica and every process, so a session stays where its
///   prompt cache is, and removing an upstream moves only the keys it had first.
/// - **Health.** An upstream that throttled or failed is skipped for a cooldown; when it is over one
///   request tries it again (``UpstreamHealthBoard``). Healthy upstreams come first in rank order;
///   ones cooling down follow, as a last resort.
/// - **Failover** (``Exchange``): before the client has a byte, a throttle, an overload, a server
///   error, a refused connection or a first-byte timeout moves the request to the next upstream in
///   its ranking, within ``Routing/maximumAttempts`` and ``Routing/budget``.
package final class Upstreams: Sendable {
    package let members: [UpstreamClient]
    package let routing: Routing
    package let health: any UpstreamHealthBoard

    /// The limits of failover.
    package struct Routing: Sendable {
        /// Upstream calls one request may make (the beta-flag repair's resend is not counted).
        package var maximumAttempts = 3
        /// From the first upstream call to a response head: no new attempt starts after it, and each
        /// attempt's first-byte limit is cut to what is left of it.
        package var budget: Duration = .seconds(90)
        /// The first cooldown of a failed upstream; it doubles with each failure in a row.
        package var cooldown: Duration = .seconds(5)
        package var maximumCooldown: Duration = .seconds(300)
        /// The longest `Retry-After` the gateway waits out itself when every upstream it may try has
        /// refused; a longer one goes back to the client, whose retry loop knows its own patience.
        package var maximumRetryAfterWait: Duration = .seconds(2)

        package init() {}
    }

    package init(members: [UpstreamClient], routing: Routing = Routing(), health: (any UpstreamHealthBoard)? = nil) {
        precondition(!members.isEmpty, "at least one upstream")
        self.members = members
        self.routing = routing
        self.health =
            health ?? LocalHealthBoard(cooldown: routing.cooldown, maximumCooldown: routing.maximumCooldown, probeTimeout: routing.budget)
    }

    /// The first upstream: its region answers the region-bound questions that are not routed (the
    /// inference-profile listing, the Anthropic model table's prefix).
    package var primary: UpstreamClient { self.members[0] }

    /// The upstreams to try for a request, in order, with their health now: the ones serving the
    /// model, healthy (or due a trial) first in the key's rendezvous order, then the ones cooling
    /// down in the same order. Empty when no upstream serves the model.
    package func candidates(key: String, requested: String, resolved: String, now: ContinuousClock.Instant) -> [Candidate] {
        let serving = self.members.filter { $0.serves(requested: requested, resolved: resolved) }
        guard serving.count > 1 else {
            return serving.map { Candidate(upstream: $0, state: self.health.state(of: $0.name, now: now)) }
        }
        let keyHash = RendezvousHash.hash(key)
        let ranked = serving.map { ($0, RendezvousHash.score(keyHash: keyHash, name: $0.name, weight: $0.weight)) }
            .sorted { $0.1 > $1.1 }
            .map { Candidate(upstream: $0.0, state: self.health.state(of: $0.0.name, now: now)) }
        return ranked.filter { $0.state != .coolingDown } + ranked.filter { $0.state == .coolingDown }
    }

    package struct Candidate: Sendable {
        package var upstream: UpstreamClient
        package var state: UpstreamHealthState
    }

    /// Each upstream and whether it takes requests now (false while it cools down): the metrics'
    /// gauge and the console's status.
    package func healthGauge(now: ContinuousClock.Instant = .now) -> [(name: String, region: String, healthy: Bool)] {
        self.members.map { ($0.name, $0.region, self.health.state(of: $0.name, now: now) != .coolingDown) }
    }

    package func shutdown() async throws {
        var first: (any Error)?
        for member in self.members {
            do { try await member.shutdown() } catch { first = first ?? error }
        }
        if let first { throw first }
    }
}

/// Weighted rendezvous (highest-random-weight) hashing with a fixed hash function, so that every
/// replica and every restart ranks the upstreams of a key the same way (Swift's `Hasher` is seeded
/// per process).
package enum RendezvousHash {
    /// FNV-1a over the key's bytes.
    package static func hash(_ key: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in key.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// The key's score for one upstream: `-weight / ln(u)`, `u` uniform in (0, 1) from the key and the
    /// name, so each upstream is first for a share of keys proportional to its weight.
    package static func score(keyHash: UInt64, name: String, weight: Double) -> Double {
        var hash = keyHash ^ 0xff
        for byte in name.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        // SplitMix64's finalizer: FNV's low bits alone are not uniform enough for short names.
        hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
        hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
        hash ^= hash >> 31
        let unit = (Double(hash >> 11) + 0.5) / 9_007_199_254_740_992.0
        return -weight / log(unit)
    }
}
