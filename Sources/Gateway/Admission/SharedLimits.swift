package import Foundation

/// Limit counters kept where every replica sees them (PostgreSQL), so requests, tokens and spend
/// per minute, day and month hold across replicas, reservations of streams in flight included.
///
/// ``UsageLimiter`` decides exactly as for its own memory (one refusal rule for both); the shared
/// store only serialises the decision per scope and keeps the counts. ``PostgresStore`` is one.
package protocol SharedLimitStore: Sendable {
    /// In one transaction that holds each scope's lock (so replicas admitting at the same instant
    /// decide one after another): reads the scopes' counts, asks `decide`, and when it refuses
    /// nothing, counts the request in each scope and stores the reservation `hold` until it is
    /// settled or `expiresAt` passes (a replica that died does not hold a reservation forever).
    func admitLimits(
        scopes: [String], windows: LimitWindows, hold: LimitReservation, decide: @escaping @Sendable ([String: LimitCounts]) -> LimitRefusal?
    ) async throws -> LimitRefusal?

    /// Charges what a request used to its scopes and drops its reservation (none for a charge
    /// without one).
    func settleLimits(scopes: [String], windows: LimitWindows, reservation: UUID?, tokens: Int, costUSD: Double) async throws
}

/// The windows a decision or a charge falls in: whole seconds since 1970, the UTC day number, the
/// month number (year × 12 + month − 1).
package struct LimitWindows: Sendable, Hashable {
    package var second: Int64
    package var day: Int64
    package var month: Int
}

/// A request's reservation in the shared counts.
package struct LimitReservation: Sendable, Hashable {
    package var id: UUID
    package var tokens: Int
    package var costUSD: Double
    /// Seconds since 1970.
    package var expiresAt: Double
}

/// One scope's counts as the shared store has them.
package struct LimitCounts: Sendable, Hashable {
    /// Requests and tokens per second of the last minute.
    package var requestsBySecond: [Int64: Int] = [:]
    package var tokensBySecond: [Int64: Int] = [:]
    package var dayTokens = 0
    package var monthUSD = 0.0
    package var inFlight = 0
    package var reservedTokens = 0
    package var reservedUSD = 0.0

    package init() {}
}

/// `store.onUnavailable`: what limits do while the shared store cannot be reached.
package enum LimitsWhenUnavailable: String, Sendable {
    /// Refuse what a limit applies to (503): no one spends past a budget unseen.
    case closed
    /// Admit without counting: availability first, limits unenforced for the outage.
    case open
}
