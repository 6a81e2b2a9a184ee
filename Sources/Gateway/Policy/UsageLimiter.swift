package import Foundation
package import StreamCore
import HTTPTypes
import Synchronization

/// Why a request was refused by a limit, and when to try again.
package struct LimitRefusal: Error, Sendable, Hashable {
    package var message: String
    /// Seconds until the limit's window ends.
    package var retryAfter: Int
    /// A bounded label: `requests_per_minute`, `tokens_per_minute`, `tokens_per_day`, `budget_per_month`.
    package var limit: String

    package var gatewayError: GatewayError {
        GatewayError(
            status: .tooManyRequests, type: "rate_limit_error", code: "rate_limit_exceeded", message: self.message,
            bedrockType: "ThrottlingException", retryAfter: self.retryAfter
        )
    }
}

/// Counts requests, tokens and spend per identity and per group in fixed windows (the UTC minute,
/// day and calendar month) and refuses what would go over a limit.
///
/// Requests are counted when admitted; tokens and spend when the request ends, from the usage the
/// upstream reported. A request is admitted while its scope is under every limit, so a stream that
/// starts with budget left runs to its end and is charged in full: it may overshoot, the next one
/// is refused. All state is behind one lock held for a few dictionary operations, never across an
/// `await`.
package final class UsageLimiter: Sendable {
    struct Counters {
        var minute: Int64 = .min
        var minuteRequests = 0
        var minuteTokens = 0
        var day: Int64 = .min
        var dayTokens = 0
        var month = Int.min
        var monthUSD = 0.0
    }

    let now: @Sendable () -> Date
    private let counters = Mutex<[LimitScope: Counters]>([:])
    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        return calendar
    }()

    package init(now: @escaping @Sendable () -> Date = { Date() }) {
        self.now = now
    }

    /// Admits the request (counting it) or says which limit it would break.
    package func admit(_ limits: [LimitScope: AccessPolicy.Limits]) -> LimitRefusal? {
        guard !limits.isEmpty else { return nil }
        let now = self.now()
        let windows = Self.windows(at: now)
        return self.counters.withLock { table in
            for (scope, limit) in limits.sorted(by: { $0.key.description < $1.key.description }) {
                let counters = Self.rolled(table[scope] ?? Counters(), to: windows)
                if let maximum = limit.requestsPerMinute, counters.minuteRequests >= maximum {
                    return LimitRefusal(
                        message: "requests-per-minute limit (\(maximum)) reached for \(scope)", retryAfter: windows.secondsToMinuteEnd,
                        limit: "requests_per_minute"
                    )
                }
                if let maximum = limit.tokensPerMinute, counters.minuteTokens >= maximum {
                    return LimitRefusal(
                        message: "tokens-per-minute limit (\(maximum)) reached for \(scope)", retryAfter: windows.secondsToMinuteEnd,
                        limit: "tokens_per_minute"
                    )
                }
                if let maximum = limit.tokensPerDay, counters.dayTokens >= maximum {
                    return LimitRefusal(
                        message: "tokens-per-day limit (\(maximum)) reached for \(scope)", retryAfter: windows.secondsToDayEnd,
                        limit: "tokens_per_day"
                    )
                }
                if let budget = limit.budgetUSDPerMonth, counters.monthUSD >= budget {
                    return LimitRefusal(
                        message: "monthly budget (\(budget) USD) spent for \(scope)", retryAfter: windows.secondsToMonthEnd,
                        limit: "budget_per_month"
                    )
                }
            }
            for scope in limits.keys {
                var counters = Self.rolled(table[scope] ?? Counters(), to: windows)
                counters.minuteRequests += 1
                table[scope] = counters
            }
            return nil
        }
    }

    /// Charges what a finished request used to each of its scopes.
    package func charge(_ scopes: some Sequence<LimitScope>, tokens: Int, costUSD: Double, at date: Date? = nil) {
        let windows = Self.windows(at: date ?? self.now())
        self.counters.withLock { table in
            for scope in scopes {
                var counters = Self.rolled(table[scope] ?? Counters(), to: windows)
                counters.minuteTokens += tokens
                counters.dayTokens += tokens
                counters.monthUSD += costUSD
                table[scope] = counters
            }
        }
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
                    if windows.minute == current.minute { counters.minuteTokens += record.usage.totalTokens }
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
        var minute: Int64
        var day: Int64
        var month: Int
        var secondsToMinuteEnd: Int
        var secondsToDayEnd: Int
        var secondsToMonthEnd: Int
    }

    static func windows(at date: Date) -> Windows {
        let seconds = date.timeIntervalSince1970
        let minute = Int64((seconds / 60).rounded(.down))
        let day = Int64((seconds / 86_400).rounded(.down))
        let components = Self.calendar.dateComponents([.year, .month], from: date)
        let month = (components.year ?? 0) * 12 + (components.month ?? 1) - 1
        let nextMonth = Self.calendar.date(byAdding: .month, value: 1, to: Self.calendar.date(from: components) ?? date) ?? date
        func until(_ end: Double) -> Int { max(1, Int((end - seconds).rounded(.up))) }
        return Windows(
            minute: minute, day: day, month: month, secondsToMinuteEnd: until(Double(minute + 1) * 60),
            secondsToDayEnd: until(Double(day + 1) * 86_400), secondsToMonthEnd: until(nextMonth.timeIntervalSince1970)
        )
    }

    private static func rolled(_ counters: Counters, to windows: Windows) -> Counters {
        var counters = counters
        if counters.minute != windows.minute {
            counters.minute = windows.minute
            counters.minuteRequests = 0
            counters.minuteTokens = 0
        }
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
