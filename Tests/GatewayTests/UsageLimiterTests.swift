import AsyncHTTPClient
import Foundation
import BedrockSimulator
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

@Suite
struct UsageLimiterTests {
    /// 2027-01-15T10:00:00Z: the start of a minute, mid-month.
    static let start = Date(timeIntervalSince1970: 1_800_000_000 - 1_800_000_000.truncatingRemainder(dividingBy: 60))

    @Test("requests per minute: trips at the limit, resets in the next minute, Retry-After to the minute's end")
    func requestsPerMinute() {
        let clock = TestClock(Self.start)
        let limiter = UsageLimiter(now: clock.function)
        let limits: [LimitScope: AccessPolicy.Limits] = [.identity("jane"): .init(requestsPerMinute: 3)]
        for _ in 0..<3 { #expect(limiter.admit(limits).refusal == nil) }
        clock.advance(by: 20)
        let refusal = limiter.admit(limits).refusal
        #expect(refusal?.limit == "requests_per_minute")
        #expect(refusal?.retryAfter == 40)
        #expect(refusal?.message.contains("identity jane") == true)
        clock.advance(by: 40)
        #expect(limiter.admit(limits).refusal == nil)
    }

    @Test("per-minute limits slide: a burst at the end of one UTC minute and another at the start of the next cannot get twice the limit")
    func slidingMinute() {
        let clock = TestClock(Self.start.addingTimeInterval(59.5))
        let limiter = UsageLimiter(now: clock.function)
        let limits: [LimitScope: AccessPolicy.Limits] = [.group("eng"): .init(requestsPerMinute: 5, tokensPerMinute: 1_000)]
        for _ in 0..<5 { #expect(limiter.admit(limits).refusal == nil) }
        // One second later the clock's minute has changed; the five are still within the last 60 s.
        clock.advance(by: 1)
        let refusal = limiter.admit(limits).refusal
        #expect(refusal?.limit == "requests_per_minute")
        #expect(refusal?.retryAfter == 59)
        // They age out a second at a time: at 60 s after the burst there is room again.
        clock.advance(by: 58)
        #expect(limiter.admit(limits).refusal != nil)
        clock.advance(by: 1)
        #expect(limiter.admit(limits).refusal == nil)
        // Tokens slide the same way: 1,000 charged over 30 s, refused until the first of them is a minute old.
        let tokens: [LimitScope: AccessPolicy.Limits] = [.identity("t"): .init(tokensPerMinute: 1_000)]
        for _ in 0..<4 {
            limiter.charge([.identity("t")], tokens: 250, costUSD: 0)
            clock.advance(by: 10)
        }
        let tokenRefusal = limiter.admit(tokens).refusal
        #expect(tokenRefusal?.limit == "tokens_per_minute")
        #expect(tokenRefusal?.retryAfter == 20)
        clock.advance(by: 20)
        #expect(limiter.admit(tokens).refusal == nil)
    }

    @Test("tokens per minute and per day: counted at the end of each request, reset with their windows")
    func tokens() {
        let clock = TestClock(Self.start)
        let limiter = UsageLimiter(now: clock.function)
        let perMinute: [LimitScope: AccessPolicy.Limits] = [.identity("a"): .init(tokensPerMinute: 100)]
        #expect(limiter.admit(perMinute).refusal == nil)
        limiter.charge([.identity("a")], tokens: 99, costUSD: 0)
        #expect(limiter.admit(perMinute).refusal == nil)
        limiter.charge([.identity("a")], tokens: 1, costUSD: 0)
        #expect(limiter.admit(perMinute).refusal?.limit == "tokens_per_minute")
        clock.advance(by: 60)
        #expect(limiter.admit(perMinute).refusal == nil)

        let perDay: [LimitScope: AccessPolicy.Limits] = [.group("eng"): .init(tokensPerDay: 1000)]
        limiter.charge([.group("eng")], tokens: 1000, costUSD: 0)
        clock.advance(by: 3600)
        let refusal = limiter.admit(perDay).refusal
        #expect(refusal?.limit == "tokens_per_day")
        #expect(refusal?.message.contains("group eng") == true)
        #expect((refusal?.retryAfter ?? 0) > 0)
        clock.advance(by: Double(refusal?.retryAfter ?? 0))
        #expect(limiter.admit(perDay).refusal == nil)
    }

    @Test("monthly budget: cost from the price table; the stream that crosses it finishes, the next request is refused until the month ends")
    func budget() throws {
        let clock = TestClock(Self.start)
        let limiter = UsageLimiter(now: clock.function)
        let prices = PriceTable(entries: [
            ("anthropic.claude-sonnet-*", .init(input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75)),
            ("*", .init(input: 1, output: 1)),
        ])
        let usage = TokenUsage(inputTokens: 1_000_000, outputTokens: 100_000, cacheReadInputTokens: 1_000_000, cacheWriteInputTokens: 0)
        let cost = prices.cost(of: usage, model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
        #expect(abs(cost - (3 + 1.5 + 0.3)) < 1e-9)
        #expect(prices.cost(of: TokenUsage(inputTokens: 1_000_000), model: "other") == 1)
        #expect(PriceTable().cost(of: usage, model: "x") == 0)

        let limits: [LimitScope: AccessPolicy.Limits] = [.identity("jane"): .init(budgetUSDPerMonth: 5)]
        #expect(limiter.admit(limits).refusal == nil)
        limiter.charge([.identity("jane")], tokens: usage.totalTokens, costUSD: cost)
        // 4.80 spent: still under budget, so the next stream is admitted and may overshoot.
        #expect(limiter.admit(limits).refusal == nil)
        limiter.charge([.identity("jane")], tokens: usage.totalTokens, costUSD: cost)
        let refusal = try #require(limiter.admit(limits).refusal)
        #expect(refusal.limit == "budget_per_month")
        clock.advance(by: Double(refusal.retryAfter))
        #expect(limiter.admit(limits).refusal == nil)
    }

    @Test("concurrent requests: the one admitted alone may overshoot; the others must fit beside the reservations in flight")
    func reservations() throws {
        let clock = TestClock(Self.start)
        let limiter = UsageLimiter(now: clock.function)
        let jane = LimitScope.identity("jane")
        let limits: [LimitScope: AccessPolicy.Limits] = [jane: .init(tokensPerDay: 10_000, budgetUSDPerMonth: 1)]
        let large = LimitEstimate(tokens: 20_000, costUSD: 0.01)
        let small = LimitEstimate(tokens: 3_000, costUSD: 0.01)

        // Nothing in flight: admitted whatever it may use (the one allowed to overshoot).
        let first = try #require(limiter.admit(limits, reserving: large).hold)
        #expect(limiter.inFlight(jane) == 1)
        // Beside it, nothing fits: 0 used + 20,000 reserved + 3,000 > 10,000.
        let refusal = try #require(limiter.admit(limits, reserving: small).refusal)
        #expect(refusal.limit == "tokens_per_day")
        #expect(refusal.retryAfter == 5)
        #expect(refusal.message.contains("in progress"))
        // It ends having used less than it reserved; the reservation goes with it.
        first.settle(tokens: 2_000, costUSD: 0.01)
        first.settle(tokens: 2_000, costUSD: 0.01)  // a second settle charges nothing
        #expect(limiter.inFlight(jane) == 0)

        // 2,000 used: two small ones fit side by side (2,000 + 3,000 + 3,000 ≤ 10,000), a third does not.
        let a = try #require(limiter.admit(limits, reserving: small).hold)
        let b = try #require(limiter.admit(limits, reserving: small).hold)
        #expect(limiter.admit(limits, reserving: small).refusal?.limit == "tokens_per_day")
        // What fits by reservation cannot overshoot; only the total of real usage counts afterwards.
        a.settle(tokens: 3_000, costUSD: 0.01)
        b.settle(tokens: 3_000, costUSD: 0.01)
        // 8,000 used, nothing in flight: the next is admitted alone and may overshoot…
        let last = try #require(limiter.admit(limits, reserving: small).hold)
        last.settle(tokens: 3_000, costUSD: 0.01)
        // …and after it the day is spent: refused until the day ends.
        let spent = try #require(limiter.admit(limits, reserving: .zero).refusal)
        #expect(spent.limit == "tokens_per_day")
        #expect(spent.retryAfter > 3600)
    }

    @Test("a request dropped without settling releases its reservation (no identity stays blocked)")
    func droppedHoldReleases() throws {
        let limiter = UsageLimiter(now: TestClock(Self.start).function)
        let jane = LimitScope.identity("jane")
        let limits: [LimitScope: AccessPolicy.Limits] = [jane: .init(tokensPerMinute: 1_000)]
        do {
            let hold = try #require(limiter.admit(limits, reserving: LimitEstimate(tokens: 5_000, costUSD: 0)).hold)
            #expect(limiter.inFlight(jane) == 1)
            #expect(limiter.admit(limits, reserving: LimitEstimate(tokens: 10, costUSD: 0)).refusal != nil)
            _ = hold
        }
        #expect(limiter.inFlight(jane) == 0)
        #expect(limiter.admit(limits, reserving: LimitEstimate(tokens: 10, costUSD: 0)).refusal == nil)
    }

    @Test("budget reservations are priced from the price table: a concurrent stream that could cross the budget is refused")
    func liveBudgetReservation() async throws {
        try await LiveStack.run(configure: {
            $0.policies = [AccessPolicy(source: .group("admins"), limits: .init(budgetUSDPerMonth: 1))]
            $0.prices = PriceTable(entries: [("*", .init(input: 1, output: 10_000))])
        }) { stack in
            // 1 output token costs 0.01 USD here: max_tokens 60 reserves 0.60, so one such stream is
            // admitted alone, and a second one beside it is refused (0.60 + 0.60 > 1).
            var slow = HTTPClientRequest(url: stack.gateway + "/v1/chat/completions")
            slow.method = .POST
            slow.headers.add(name: "Content-Type", value: "application/json")
            stack.authorize(&slow.headers, unless: [])
            // 30 s long: Swift Testing's parallel CPU-heavy suites can hold the cooperative threads
            // for ~20 s early in a run, and the second request must still find this one open.
            slow.body = .bytes(ByteBuffer(string: chatRequest("first [[sim chunks=10 gap_ms=3000]]", extra: #","max_tokens":60"#)))
            let response = try await stack.client.execute(slow, timeout: .seconds(30))
            #expect(response.status == .ok)
            let second = try await stack.post("/v1/chat/completions", json: chatRequest("second [[sim chunks=2]]", extra: #","max_tokens":60"#))
            #expect(second.0 == .tooManyRequests)
            #expect(errorMessage(second.2)?.contains("in progress") == true)
            #expect(second.1.first(name: "retry-after") == "5")
            _ = try await response.body.collect(upTo: 1 << 20)
            // The first has ended (10 output tokens: 0.10 USD spent): the next fits again.
            let third = try await stack.post("/v1/chat/completions", json: chatRequest("third [[sim chunks=2]]", extra: #","max_tokens":60"#))
            #expect(third.0 == .ok)
        }
    }

    @Test("a group's limit is shared by its members; an identity's is not")
    func groupShared() {
        let limiter = UsageLimiter(now: TestClock(Self.start).function)
        let group: AccessPolicy.Limits = .init(requestsPerMinute: 2)
        #expect(limiter.admit([.group("eng"): group, .identity("a"): .init(requestsPerMinute: 5)]).refusal == nil)
        #expect(limiter.admit([.group("eng"): group, .identity("b"): .init(requestsPerMinute: 5)]).refusal == nil)
        #expect(limiter.admit([.group("eng"): group, .identity("c"): .init(requestsPerMinute: 5)]).refusal?.message.contains("group eng") == true)
        #expect(limiter.admit([.identity("c"): .init(requestsPerMinute: 5)]).refusal == nil)
    }

    @Test("a restart loads this month's spend and today's tokens from the ledger")
    func preload() {
        let clock = TestClock(Self.start)
        let limiter = UsageLimiter(now: clock.function)
        let record = UsageRecord(
            timestamp: Self.start.addingTimeInterval(-120), requestID: "r", identity: "jane", tokenPrefix: "p", groups: ["eng"], route: "/v1/chat/completions",
            requestedModel: "m", resolvedModel: "m", status: 200, finishReason: "stop", usage: TokenUsage(inputTokens: 600, outputTokens: 400),
            costUSD: 7, firstByteMilliseconds: nil, durationMilliseconds: 1
        )
        limiter.preload(from: [record])
        #expect(limiter.admit([.identity("jane"): .init(tokensPerDay: 1000)]).refusal?.limit == "tokens_per_day")
        #expect(limiter.admit([.group("eng"): .init(budgetUSDPerMonth: 7)]).refusal?.limit == "budget_per_month")
        #expect(limiter.admit([.identity("jane"): .init(tokensPerMinute: 1000)]).refusal == nil)
    }

    @Test("over a limit, the gateway answers 429 with Retry-After naming the limit, in each API's shape")
    func liveTooManyRequests() async throws {
        let clock = TestClock(Self.start)
        try await LiveStack.run(configure: {
            $0.policies = [AccessPolicy(source: .group("admins"), limits: .init(requestsPerMinute: 2))]
        }, now: clock.function) { stack in
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("a [[sim chunks=2]]")).0 == .ok)
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("b [[sim chunks=2]]")).0 == .ok)
            let (status, headers, body) = try await stack.post("/v1/chat/completions", json: chatRequest("c"))
            #expect(status == .tooManyRequests)
            #expect(headers.first(name: "retry-after") == "60")
            #expect(errorMessage(body)?.contains("requests-per-minute") == true)
            let bedrock = try await stack.post(
                "/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
                json: #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#
            )
            #expect(bedrock.0 == .tooManyRequests)
            #expect(bedrock.1.first(name: "x-amzn-errortype")?.hasPrefix("ThrottlingException") == true)
            clock.advance(by: 60)
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("d [[sim chunks=2]]")).0 == .ok)
            #expect(stack.recorder.entries.count == 3)
        }
    }
}
