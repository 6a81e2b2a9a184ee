package import Foundation
package import StreamCore
import Synchronization

/// Why a request was refused by a limit, and when to try again.
package struct LimitRefusal: Error, Sendable, Hashable {
    package var message: String
    /// Seconds until the limit's window ends.
    package var retryAfter: Int
    /// A bounded label: `requests_per_minute`, `tokens_per_minute`, `tokens_per_day`, `budget_per_month`
    /// (`store_unavailable` when the shared counts cannot be read).
    package var limit: String
    /// The limits could not be checked (the shared store unreachable): a 503, not the caller's 429.
    package var unavailable = false

    package var gatewayError: GatewayError {
        GatewayError(self.unavailable ? .storeUnavailable : .rateLimited, self.message, retryAfter: self.retryAfter, reason: self.limit)
    }
}

/// What an admitted request may use, estimated before it runs: reserved against the token and
/// spend limits until the request ends and its real usage is charged.
package struct LimitEstimate: Sendable, Hashable {
    package var tokens: Int
    package var costUSD: Double

    package init(tokens: Int, costUSD: Double) {
        self.tokens = tokens
        self.costUSD = costUSD
    }

    package static let zero = LimitEstimate(tokens: 0, costUSD: 0)

    /// Output tokens assumed for a request that names no maximum (Bedrock then applies the model's
    /// own, which can be far larger: such a request's reservation is an estimate, not a bound).
    package static let defaultOutputTokens = 4096

    /// Tokens estimated from a size in bytes: about four bytes per token for text and code. For a
    /// request body, JSON punctuation and base64 images make it an overestimate, which errs on the
    /// safe side.
    package static func tokens(bytes: Int) -> Int {
        (bytes + 3) / 4
    }
}

/// The outcome of ``UsageLimiter/admit(_:reserving:)``.
package enum LimitAdmission: Sendable {
    case admitted(LimitHold)
    case refused(LimitRefusal)

    package var refusal: LimitRefusal? {
        if case .refused(let refusal) = self { return refusal }
        return nil
    }

    package var hold: LimitHold? {
        if case .admitted(let hold) = self { return hold }
        return nil
    }
}

/// An admitted request's place in its scopes' counters: its reservation, released when the request
/// is charged with ``settle(tokens:costUSD:)`` — or, if the request is dropped without ending
/// normally (a response body never written), when the last copy of it goes away.
package final class LimitHold: Sendable {
    private let limiter: UsageLimiter
    package let scopes: [LimitScope]
    package let estimate: LimitEstimate
    /// The reservation's id in the shared counts, when the limits are shared.
    let reservation: UUID?
    private let settled = Atomic<Bool>(false)

    init(limiter: UsageLimiter, scopes: [LimitScope], estimate: LimitEstimate, reservation: UUID? = nil) {
        self.limiter = limiter
        self.scopes = scopes
        self.estimate = estimate
        self.reservation = reservation
    }

    /// Charges the request's real usage and releases its reservation; later calls do nothing.
    package func settle(tokens: Int, costUSD: Double) {
        guard !self.settled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        self.release(tokens: tokens, costUSD: costUSD)
    }

    private func release(tokens: Int, costUSD: Double) {
        if let reservation, let shared = self.limiter.shared {
            // Off the request's path: a charge that fails (the store gone) leaves the reservation
            // to expire, and the ledger still has the usage.
            let scopes = self.scopes.map(\.description)
            let windows = UsageLimiter.windows(at: self.limiter.now()).shared
            Task { try? await shared.settleLimits(scopes: scopes, windows: windows, reservation: reservation, tokens: tokens, costUSD: costUSD) }
        } else {
            self.limiter.settle(self.scopes, tokens: tokens, costUSD: costUSD, releasing: self.estimate)
        }
    }

    deinit {
        if !self.settled.load(ordering: .acquiring) { self.release(tokens: 0, costUSD: 0) }
    }
}

/// Counts requests, tokens and spend per identity and per group and refuses what would go over a
/// limit: per minute over the last 60 seconds (a sliding window of one-second buckets, so no burst
/// can straddle a minute boundary and get twice the limit), per day and per month in the UTC day and
/// calendar month.
///
/// Requests are counted when admitted; tokens and spend when the request ends, from the usage the
/// upstream reported. So that concurrent streams cannot all overshoot a token or spend limit, each
/// admitted request also reserves an estimate of what it may use (input from the body size, output
/// from its `max_tokens`) until it ends. A request is admitted when its scope is under every limit
/// and either nothing is in flight for the scope or the used amount plus every reservation,
/// its own included, stays within the limit. The one request admitted alone may overshoot (its
/// real usage is charged in full when it ends); a request admitted beside others fits by
/// reservation, so at most one request per scope overshoots. All state is behind one lock held for
/// a few dictionary operations, never across an `await`.
package final class UsageLimiter: Sendable {
    struct Counters {
        var minuteRequests = SlidingMinute()
        var minuteTokens = SlidingMinute()
        var day: Int64 = .min
        var dayTokens = 0
        var month = Int.min
        var monthUSD = 0.0
        /// Requests admitted and not yet settled, and what they reserved (not windowed: a request
        /// is charged in the window where it ends).
        var inFlight = 0
        var reservedTokens = 0
        var reservedUSD = 0.0
    }

    /// Retry-After for a refusal caused by reservations: requests in flight end within seconds to
    /// minutes, and their real usage is usually below what they reserved.
    static let reservationRetryAfter = 5

    let now: @Sendable () -> Date
    /// The counts every replica shares (PostgreSQL); `nil`: this process's memory.
    let shared: (any SharedLimitStore)?
    let whenUnavailable: LimitsWhenUnavailable
    /// How long a shared reservation outlives a request that never settles (its replica died).
    let holdLifetime: TimeInterval
    private let counters = Mutex<[LimitScope: Counters]>([:])
    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        return calendar
    }()

    package init(
        now: @escaping @Sendable () -> Date = { Date() }, shared: (any SharedLimitStore)? = nil, whenUnavailable: LimitsWhenUnavailable = .closed,
        holdLifetime: Duration = .seconds(960)
    ) {
        self.now = now
        self.shared = shared
        self.whenUnavailable = whenUnavailable
        self.holdLifetime = Double(holdLifetime.components.seconds)
    }

    /// Whether the counts are shared by replicas (then they live in the store, not in memory).
    package var isShared: Bool { self.shared != nil }

    /// Admits the request against the shared counts when the limits are shared, else against this
    /// process's (``admit(_:reserving:)``). Shared: the decision is the same rule, made inside the
    /// store's per-scope lock, so replicas admitting at the same instant cannot all take the last
    /// place; at most one request per scope overshoots a token or spend limit, as in one process.
    package func admission(_ limits: [LimitScope: AccessPolicy.Limits], reserving estimate: LimitEstimate = .zero) async -> LimitAdmission {
        guard let shared = self.shared, !limits.isEmpty else { return self.admit(limits, reserving: estimate) }
        let now = self.now()
        let windows = Self.windows(at: now)
        let ordered = limits.sorted { $0.key.description < $1.key.description }
        let reservation = LimitReservation(
            id: .random(), tokens: estimate.tokens, costUSD: estimate.costUSD, expiresAt: now.timeIntervalSince1970 + self.holdLifetime
        )
        do {
            let refusal = try await shared.admitLimits(scopes: ordered.map(\.key.description), windows: windows.shared, hold: reservation) { counts in
                for (scope, limit) in ordered {
                    let counters = Self.counters(counts[scope.description] ?? LimitCounts(), windows: windows)
                    if let refusal = Self.refusal(scope: scope, limit: limit, counters: counters, estimate: estimate, windows: windows) {
                        return refusal
                    }
                }
                return nil
            }
            if let refusal { return .refused(refusal) }
            return .admitted(LimitHold(limiter: self, scopes: Array(limits.keys), estimate: estimate, reservation: reservation.id))
        } catch {
            switch self.whenUnavailable {
            case .open:
                return .admitted(LimitHold(limiter: self, scopes: [], estimate: .zero))
            case .closed:
                return .refused(
                    LimitRefusal(
                        message: "the gateway cannot check your limits right now (its database is unreachable); try again shortly", retryAfter: 5,
                        limit: "store_unavailable", unavailable: true
                    )
                )
            }
        }
    }

    /// The shared counts of a scope as this limiter's counters, rolled to `windows`.
    private static func counters(_ counts: LimitCounts, windows: Windows) -> Counters {
        var counters = Self.rolled(Counters(), to: windows)
        for (second, count) in counts.requestsBySecond { counters.minuteRequests.add(count, at: second) }
        for (second, count) in counts.tokensBySecond { counters.minuteTokens.add(count, at: second) }
        counters.dayTokens = counts.dayTokens
        counters.monthUSD = counts.monthUSD
        counters.inFlight = counts.inFlight
        counters.reservedTokens = counts.reservedTokens
        counters.reservedUSD = counts.reservedUSD
        return counters
    }

    /// Admits the request (counting it and holding its reservation) or says which limit it would break.
    package func admit(_ limits: [LimitScope: AccessPolicy.Limits], reserving estimate: LimitEstimate = .zero) -> LimitAdmission {
        guard !limits.isEmpty else { return .admitted(LimitHold(limiter: self, scopes: [], estimate: .zero)) }
        let now = self.now()
        let windows = Self.windows(at: now)
        let refusal: LimitRefusal? = self.counters.withLock { table in
            for (scope, limit) in limits.sorted(by: { $0.key.description < $1.key.description }) {
                let counters = Self.rolled(table[scope] ?? Counters(), to: windows)
                if let refusal = Self.refusal(scope: scope, limit: limit, counters: counters, estimate: estimate, windows: windows) {
                    return refusal
                }
            }
            for scope in limits.keys {
                var counters = Self.rolled(table[scope] ?? Counters(), to: windows)
                counters.minuteRequests.add(1, at: windows.second)
                counters.inFlight += 1
                counters.reservedTokens += estimate.tokens
                counters.reservedUSD += estimate.costUSD
                table[scope] = counters
            }
            return nil
        }
        if let refusal { return .refused(refusal) }
        return .admitted(LimitHold(limiter: self, scopes: Array(limits.keys), estimate: estimate))
    }

    private static func refusal(
        scope: LimitScope, limit: AccessPolicy.Limits, counters: Counters, estimate: LimitEstimate, windows: Windows
    ) -> LimitRefusal? {
        if let maximum = limit.requestsPerMinute, counters.minuteRequests.total >= maximum {
            return LimitRefusal(
                message: "requests-per-minute limit (\(maximum)) reached for \(scope)",
                retryAfter: counters.minuteRequests.secondsUntilBelow(maximum, at: windows.second), limit: "requests_per_minute"
            )
        }
        let minuteTokensRetry = limit.tokensPerMinute.map { counters.minuteTokens.secondsUntilBelow($0, at: windows.second) } ?? 1
        // Each token and spend limit: spent → refused until the window ends; room left but taken
        // by requests in flight → refused until they end.
        let tokenLimits: [(maximum: Int?, used: Int, name: String, label: String, retryAfter: Int)] = [
            (limit.tokensPerMinute, counters.minuteTokens.total, "tokens-per-minute limit", "tokens_per_minute", minuteTokensRetry),
            (limit.tokensPerDay, counters.dayTokens, "tokens-per-day limit", "tokens_per_day", windows.secondsToDayEnd),
        ]
        for check in tokenLimits {
            guard let maximum = check.maximum else { continue }
            if check.used >= maximum {
                return LimitRefusal(message: "\(check.name) (\(maximum)) reached for \(scope)", retryAfter: check.retryAfter, limit: check.label)
            }
            if counters.inFlight > 0, check.used + counters.reservedTokens + estimate.tokens > maximum {
                return LimitRefusal(
                    message: "\(check.name) (\(maximum)) for \(scope): \(check.used) used and \(counters.reservedTokens) reserved by "
                        + "\(counters.inFlight) request(s) in progress leave no room for this one (about \(estimate.tokens) tokens)",
                    retryAfter: min(Self.reservationRetryAfter, check.retryAfter), limit: check.label
                )
            }
        }
        if let budget = limit.budgetUSDPerMonth {
            if counters.monthUSD >= budget {
                return LimitRefusal(
                    message: "monthly budget (\(budget) USD) spent for \(scope)", retryAfter: windows.secondsToMonthEnd, limit: "budget_per_month"
                )
            }
            if counters.inFlight > 0, counters.monthUSD + counters.reservedUSD + estimate.costUSD > budget {
                return LimitRefusal(
                    message: "monthly budget (\(budget) USD) for \(scope): what is spent and reserved by \(counters.inFlight) request(s) "
                        + "in progress leaves no room for this one",
                    retryAfter: min(Self.reservationRetryAfter, windows.secondsToMonthEnd), limit: "budget_per_month"
                )
            }
        }
        return nil
    }

    /// Charges what a finished request used to each of its scopes (without a reservation to release).
    package func charge(_ scopes: some Sequence<LimitScope>, tokens: Int, costUSD: Double, at date: Date? = nil) {
        self.settle(Array(scopes), tokens: tokens, costUSD: costUSD, releasing: nil, at: date)
    }

    fileprivate func settle(_ scopes: [LimitScope], tokens: Int, costUSD: Double, releasing estimate: LimitEstimate?, at date: Date? = nil) {
        guard !scopes.isEmpty else { return }
        let windows = Self.windows(at: date ?? self.now())
        self.counters.withLock { table in
            for scope in scopes {
                var counters = Self.rolled(table[scope] ?? Counters(), to: windows)
                counters.minuteTokens.add(tokens, at: windows.second)
                counters.dayTokens += tokens
                counters.monthUSD += costUSD
                if let estimate {
                    counters.inFlight -= 1
                    counters.reservedTokens -= estimate.tokens
                    counters.reservedUSD -= estimate.costUSD
                    // Rounding of summed doubles must not leave a phantom reservation behind.
                    if counters.inFlight == 0 { counters.reservedUSD = 0 }
                }
                table[scope] = counters
            }
        }
    }

    /// Requests in flight for a scope (for tests and metrics).
    package func inFlight(_ scope: LimitScope) -> Int {
        self.counters.withLock { $0[scope]?.inFlight ?? 0 }
    }

    /// Loads this day's tokens and this month's spend from the ledger, so a restart does not
    /// hand out a fresh budget.
    package func preload(from records: [UsageRecord]) {
        for record in records {
            var scopes: [LimitScope] = [.identity(record.identity)]
            scopes += record.groups.map { .group($0) }
            let windows = Self.windows(at: record.timestamp)
            let current = Self.windows(at: self.now())
            guard windows.month == current.month else { continue }
            self.counters.withLock { table in
                for scope in scopes {
                    var counters = Self.rolled(table[scope] ?? Counters(), to: current)
                    if windows.day == current.day { counters.dayTokens += record.usage.totalTokens }
                    if current.second - windows.second < 60 { counters.minuteTokens.add(record.usage.totalTokens, at: windows.second) }
                    counters.monthUSD += record.costUSD
                    table[scope] = counters
                }
            }
        }
    }

    /// The first instant of the current UTC month (for loading the ledger).
    package func startOfMonth() -> Date {
        let components = Self.calendar.dateComponents([.year, .month], from: self.now())
        return Self.calendar.date(from: components) ?? self.now()
    }

    struct Windows {
        /// Whole seconds since 1970: the per-minute buckets' clock.
        var second: Int64
        var day: Int64
        var month: Int
        var secondsToDayEnd: Int
        var secondsToMonthEnd: Int

        var shared: LimitWindows { LimitWindows(second: self.second, day: self.day, month: self.month) }
    }

    static func windows(at date: Date) -> Windows {
        let seconds = date.timeIntervalSince1970
        let second = Int64(seconds.rounded(.down))
        let day = Int64((seconds / 86_400).rounded(.down))
        let components = Self.calendar.dateComponents([.year, .month], from: date)
        let month = (components.year ?? 0) * 12 + (components.month ?? 1) - 1
        let nextMonth = Self.calendar.date(byAdding: .month, value: 1, to: Self.calendar.date(from: components) ?? date) ?? date
        func until(_ end: Double) -> Int { max(1, Int((end - seconds).rounded(.up))) }
        return Windows(
            second: second, day: day, month: month, secondsToDayEnd: until(Double(day + 1) * 86_400), secondsToMonthEnd: until(nextMonth.timeIntervalSince1970)
        )
    }

    private static func rolled(_ counters: Counters, to windows: Windows) -> Counters {
        var counters = counters
        counters.minuteRequests.advance(to: windows.second)
        counters.minuteTokens.advance(to: windows.second)
        if counters.day != windows.day {
            counters.day = windows.day
            counters.dayTokens = 0
        }
        if counters.month != windows.month {
            counters.month = windows.month
            counters.monthUSD = 0
        }
        return counters
    }
}

/// A count over the last 60 seconds, in one-second buckets: what is older than a minute drops out a
/// second at a time instead of all at once at the top of the minute.
struct SlidingMinute {
    private var buckets = [Int](repeating: 0, count: 60)
    /// The second of the newest bucket.
    private var latest: Int64 = .min
    private(set) var total = 0

    /// Empties the buckets of seconds that are now more than a minute old.
    mutating func advance(to second: Int64) {
        guard second > self.latest else { return }
        if self.latest == .min || second - self.latest >= 60 {
            if self.total != 0 { self.buckets = [Int](repeating: 0, count: 60) }
            self.total = 0
        } else {
            var passed = self.latest + 1
            while passed <= second {
                let index = Int(passed % 60)
                self.total -= self.buckets[index]
                self.buckets[index] = 0
                passed += 1
            }
        }
        self.latest = second
    }

    /// Adds `amount` at `second` (the present, or a recent second when preloading the ledger).
    mutating func add(_ amount: Int, at second: Int64) {
        self.advance(to: second)
        guard self.latest - second < 60 else { return }
        self.buckets[Int(((second % 60) + 60) % 60)] += amount
        self.total += amount
    }

    /// Seconds from `now` until enough of the count has aged out for it to be below `limit` (at
    /// least 1).
    func secondsUntilBelow(_ limit: Int, at now: Int64) -> Int {
        guard self.total >= limit, self.latest != .min else { return 1 }
        var remaining = self.total
        var second = self.latest - 59
        while second <= self.latest {
            remaining -= self.buckets[Int(((second % 60) + 60) % 60)]
            if remaining < limit { return max(1, Int(second + 60 - now)) }
            second += 1
        }
        return 60
    }
}

/// Prices per million tokens, by model glob; the first matching entry wins.
package struct PriceTable: Sendable, Hashable {
    package struct Price: Sendable, Hashable {
        package var input: Double
        package var output: Double
        package var cacheRead: Double
        package var cacheWrite: Double

        package init(input: Double, output: Double, cacheRead: Double = 0, cacheWrite: Double = 0) {
            self.input = input
            self.output = output
            self.cacheRead = cacheRead
            self.cacheWrite = cacheWrite
        }
    }

    package var entries: [(model: String, price: Price)]

    package init(entries: [(model: String, price: Price)] = []) {
        self.entries = entries
    }

    package static func == (lhs: PriceTable, rhs: PriceTable) -> Bool {
        lhs.entries.map(\.model) == rhs.entries.map(\.model) && lhs.entries.map(\.price) == rhs.entries.map(\.price)
    }

    package func hash(into hasher: inout Hasher) {
        for entry in self.entries {
            hasher.combine(entry.model)
            hasher.combine(entry.price)
        }
    }

    /// The USD cost of `usage` on `model` (a Bedrock id); 0 when the table has no price for it.
    package func cost(of usage: TokenUsage, model: String) -> Double {
        let bare = ModelCatalog.foundationModelID(model)
        guard
            let price = self.entries.first(where: {
                Glob.matches($0.model, model) || Glob.matches(ModelCatalog.foundationModelID($0.model), bare)
            })?.price
        else { return 0 }
        let perToken = 1.0 / 1_000_000
        return (Double(usage.inputTokens) * price.input + Double(usage.outputTokens) * price.output
            + Double(usage.cacheReadInputTokens) * price.cacheRead + Double(usage.cacheWriteInputTokens) * price.cacheWrite) * perToken
    }
}
