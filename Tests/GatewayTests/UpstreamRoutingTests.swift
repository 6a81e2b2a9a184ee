import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// Several upstreams (README, "Several upstreams"): affinity by rendezvous hashing, failover before
/// the first byte, cooldowns with a half-open trial, models per upstream. The live tests run the real
/// gateway in front of two or three real simulators, each an upstream of its own.
@Suite
struct UpstreamRoutingTests {
    // MARK: Rendezvous hashing

    static func first(_ key: String, _ upstreams: [(String, Double)]) -> String {
        let hash = RendezvousHash.hash(key)
        return upstreams.max { RendezvousHash.score(keyHash: hash, name: $0.0, weight: $0.1) < RendezvousHash.score(keyHash: hash, name: $1.0, weight: $1.1) }!.0
    }

    @Test("rendezvous: keys spread evenly, weights take their share, removing an upstream moves only its keys")
    func rendezvous() {
        let three = [("east", 1.0), ("west", 1.0), ("central", 1.0)]
        let keys = (0..<6_000).map { "session-\($0)" }
        var counts: [String: Int] = [:]
        for key in keys { counts[Self.first(key, three), default: 0] += 1 }
        for (name, count) in counts { #expect((1_700...2_300).contains(count), "\(name) got \(count) of 6,000 keys") }
        #expect(counts.count == 3)

        // Without `central`, only its keys move; the others stay where they were.
        let two = [("east", 1.0), ("west", 1.0)]
        var moved = 0
        for key in keys {
            let before = Self.first(key, three)
            let after = Self.first(key, two)
            if before == "central" { moved += 1 } else { #expect(before == after) }
        }
        #expect(moved == counts["central"])

        // Weight 3 against 1: about three quarters.
        let weighted = keys.filter { Self.first($0, [("big", 3), ("small", 1)]) == "big" }.count
        #expect((4_200...4_800).contains(weighted), "weight 3 of 4 got \(weighted) of 6,000")

        // The same key ranks the same way every time (a fixed hash, not Swift's per-process seed).
        #expect(RendezvousHash.hash("abc") == 0xe71f_a219_0541_574b)
    }

    @Test("affinity key: the session, then the API's key, then identity + the conversation's start, which cache markers do not move")
    func affinityKey() {
        let first = ByteBuffer(string: #"{"system":[{"text":"You are helpful."}],"messages":[{"role":"user","content":[{"text":"Fix the bug"}]}]}"#)
        // The next turn: the first message gained a cache point, and more messages follow.
        let later = ByteBuffer(
            string:
                #"{"messages":[{"role":"user","content":[{"text":"Fix the bug"},{"cachePoint":{"type":"default"}}]},{"role":"assistant","content":[{"text":"Done"}]}],"system":[{"text":"You are helpful."}]}"#
        )
        let other = ByteBuffer(string: #"{"system":[{"text":"You are helpful."}],"messages":[{"role":"user","content":"Write a poem"}]}"#)
        let a = AffinityKey.make(session: nil, declared: nil, identity: "ana", upstreamBody: first)
        #expect(a == AffinityKey.make(session: nil, declared: nil, identity: "ana", upstreamBody: later))
        #expect(a != AffinityKey.make(session: nil, declared: nil, identity: "ana", upstreamBody: other))
        #expect(a != AffinityKey.make(session: nil, declared: nil, identity: "bo", upstreamBody: first))
        #expect(AffinityKey.make(session: "s1", declared: "k", identity: "ana", upstreamBody: first) == "session:s1")
        #expect(AffinityKey.make(session: nil, declared: "k", identity: "ana", upstreamBody: first) == "key:k")
        // Malformed bodies still give a key.
        #expect(AffinityKey.make(session: nil, declared: nil, identity: "ana", upstreamBody: ByteBuffer(string: "{\"messages\":[")).hasPrefix("conversation:ana:"))
    }

    // MARK: Health

    @Test("health: a failure cools an upstream down, doubling and capped, Retry-After when longer; then one trial; success restores it")
    func healthBoard() {
        let board = LocalHealthBoard(cooldown: .seconds(5), maximumCooldown: .seconds(30), probeTimeout: .seconds(60))
        let t0 = ContinuousClock.now
        #expect(board.state(of: "east", now: t0) == .healthy)
        board.failed("east", now: t0, retryAfter: nil)
        #expect(board.state(of: "east", now: t0 + .seconds(4)) == .coolingDown)
        #expect(board.state(of: "east", now: t0 + .seconds(5)) == .probeDue)
        // One trial at a time.
        #expect(board.claimProbe("east", now: t0 + .seconds(5)))
        #expect(!board.claimProbe("east", now: t0 + .seconds(5)))
        #expect(board.state(of: "east", now: t0 + .seconds(6)) == .coolingDown)
        // The trial failed: 10 s now, then 20, then capped at 30.
        board.failed("east", now: t0 + .seconds(6), retryAfter: nil)
        #expect(board.state(of: "east", now: t0 + .seconds(15)) == .coolingDown)
        #expect(board.state(of: "east", now: t0 + .seconds(16)) == .probeDue)
        board.failed("east", now: t0 + .seconds(16), retryAfter: nil)
        #expect(board.state(of: "east", now: t0 + .seconds(35)) == .coolingDown)
        #expect(board.state(of: "east", now: t0 + .seconds(36)) == .probeDue)
        board.failed("east", now: t0 + .seconds(36), retryAfter: nil)
        #expect(board.state(of: "east", now: t0 + .seconds(66)) == .probeDue)
        board.succeeded("east")
        #expect(board.state(of: "east", now: t0 + .seconds(66)) == .healthy)
        // Retry-After longer than the cooldown wins (still capped).
        board.failed("west", now: t0, retryAfter: .seconds(12))
        #expect(board.state(of: "west", now: t0 + .seconds(11)) == .coolingDown)
        #expect(board.state(of: "west", now: t0 + .seconds(12)) == .probeDue)
        board.failed("north", now: t0, retryAfter: .seconds(3_600))
        #expect(board.state(of: "north", now: t0 + .seconds(30)) == .probeDue)
        #expect(board.state(of: "east", now: t0) == .healthy)
    }

    @Test("models per upstream: the geographic profile prefix follows the region for ids the gateway chose; model lists are globs")
    func modelsPerUpstream() async throws {
        let timeouts = GatewayConfiguration().timeouts
        let url = URL(string: "http://127.0.0.1:1")!
        let eu = UpstreamClient(name: "eu", endpoint: url, region: "eu-central-1", authentication: .none, timeouts: timeouts, models: ["*haiku*"])
        let ap = UpstreamClient(name: "ap", endpoint: url, region: "ap-northeast-1", authentication: .none, timeouts: timeouts)
        let us = UpstreamClient(name: "us", endpoint: url, region: "us-west-2", authentication: .none, timeouts: timeouts)
        let sonnet = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
        #expect(eu.modelID(for: sonnet, regional: true) == "eu.anthropic.claude-sonnet-4-5-20250929-v1:0")
        #expect(ap.modelID(for: sonnet, regional: true) == "apac.anthropic.claude-sonnet-4-5-20250929-v1:0")
        #expect(us.modelID(for: sonnet, regional: true) == sonnet)
        #expect(eu.modelID(for: sonnet, regional: false) == sonnet)
        #expect(eu.modelID(for: "global.anthropic.claude-sonnet-4-5-20250929-v1:0", regional: true) == "global.anthropic.claude-sonnet-4-5-20250929-v1:0")
        #expect(eu.modelID(for: "anthropic.claude-3-haiku-20240307-v1:0", regional: true) == "anthropic.claude-3-haiku-20240307-v1:0")
        #expect(eu.serves(requested: "claude-haiku", resolved: "us.anthropic.claude-haiku-4-5-20251001-v1:0"))
        #expect(!eu.serves(requested: "claude-sonnet", resolved: sonnet))
        #expect(us.serves(requested: "anything", resolved: "anything"))
        try await Upstreams(members: [eu, ap, us]).shutdown()
    }

    // MARK: Configuration

    static func load(_ json: String, environment: [String: String] = [:]) throws -> GatewayConfiguration {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-upstreams-\(UUID().uuidString).json").path
        try Data(json.utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try GatewayConfiguration.load(file: path, environment: environment)
    }

    @Test("config: upstreams and routing are read; both upstream and upstreams, duplicate names, bad weights and conflicts are refused by key")
    func configuration() throws {
        let configuration = try Self.load(
            #"""
            {"upstreams": [{"name": "east", "region": "us-east-1", "endpoint": "http://127.0.0.1:18180"},
                           {"name": "west", "region": "us-west-2", "endpoint": "http://127.0.0.1:18184", "weight": 2, "models": ["*haiku*"]}],
             "routing": {"maxAttempts": 2, "budgetSeconds": 20, "cooldownSeconds": 1, "maxCooldownSeconds": 8, "maxRetryAfterWaitSeconds": 0},
             "policies": [{"source": "group:admins"}]}
            """#
        )
        #expect(configuration.effectiveUpstreams.map(\.name) == ["east", "west"])
        #expect(configuration.upstreams[1].weight == 2)
        #expect(configuration.upstreams[1].models == ["*haiku*"])
        #expect(configuration.routing.maximumAttempts == 2)
        #expect(configuration.routing.budget == .seconds(20))
        #expect(configuration.routing.maximumRetryAfterWait == .zero)
        let plan = try UpstreamPlan(configuration: configuration, environment: [:], simulatorEndpoint: nil)
        #expect(plan.members.map(\.endpoint.absoluteString) == ["http://127.0.0.1:18180", "http://127.0.0.1:18184"])
        #expect(!plan.usesSimulator)

        func refusal(_ json: String, environment: [String: String] = [:]) -> ConfigurationError? {
            do {
                let configuration = try Self.load(json, environment: environment)
                _ = try UpstreamPlan(configuration: configuration, environment: environment, simulatorEndpoint: nil)
                return nil
            } catch {
                return error as? ConfigurationError
            }
        }
        let east = #"{"name": "east", "region": "us-east-1", "endpoint": "http://127.0.0.1:1"}"#
        #expect(refusal(#"{"upstream": {"region": "us-east-1"}, "upstreams": [\#(east)]}"#)?.key == "upstreams")
        #expect(refusal(#"{"upstreams": [\#(east), \#(east)]}"#)?.key == "upstreams[1].name")
        #expect(refusal(#"{"upstreams": [{"name": "x", "endpoint": "http://127.0.0.1:1"}]}"#)?.key == "upstreams[0].region")
        #expect(refusal(#"{"upstreams": [{"name": "x y", "region": "us-east-1"}]}"#)?.key == "upstreams[0].name")
        #expect(refusal(#"{"upstreams": [{"name": "x", "region": "us-east-1", "weight": 0}]}"#)?.key == "upstreams[0].weight")
        #expect(refusal(#"{"upstreams": []}"#)?.key == "upstreams")
        #expect(refusal(#"{"upstreams": [\#(east)]}"#, environment: ["SLUICE_UPSTREAM": "http://127.0.0.1:2"])?.key == "SLUICE_UPSTREAM")
        // No endpoint and no credentials anywhere: named, not silently the simulator.
        #expect(refusal(#"{"upstreams": [{"name": "x", "region": "us-east-1"}]}"#, environment: ["HOME": "/nonexistent"])?.key == "upstreams[0]")
        // The global key covers listed upstreams that bring none of their own; each gets its region's endpoint.
        let keyed = try Self.load(#"{"upstreams": [{"name": "x", "region": "eu-west-1"}]}"#, environment: ["AWS_BEARER_TOKEN_BEDROCK": "k"])
        let keyedPlan = try UpstreamPlan(configuration: keyed, environment: ["AWS_BEARER_TOKEN_BEDROCK": "k"], simulatorEndpoint: nil)
        #expect(keyedPlan.endpoint.absoluteString == "https://bedrock-runtime.eu-west-1.amazonaws.com")
        #expect("\(keyedPlan.authentication)" == "Bedrock API key")
    }

    // MARK: Live

    /// A chat request in session `session` (Claude Code's header), streamed.
    static func sessionRequest(_ stack: LiveStack, session: String, prompt: String = "hi [[sim chunks=2]]") async throws -> (HTTPResponseStatus, HTTPHeaders, ByteBuffer) {
        try await stack.post("/v1/chat/completions", json: chatRequest(prompt), headers: [("X-Claude-Code-Session-Id", session)])
    }

    /// The audit `response` lines, parsed.
    static func responses(_ stack: LiveStack) -> [[String: Any]] {
        stack.audit.all.compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], object["event"] as? String == "response" else {
                return nil
            }
            return object
        }
    }

    @Test("affinity: every request of a session reaches one upstream, sessions spread over all three; audit and ledger name it")
    func affinityLive() async throws {
        try await LiveStack.run(more: [.init(), .init()]) { stack in
            var upstreamOfSession: [String: String] = [:]
            for round in 0..<3 {
                for session in 0..<12 {
                    let (status, _, _) = try await Self.sessionRequest(stack, session: "s-\(session)", prompt: "session \(session) round \(round) [[sim chunks=2]]")
                    #expect(status == .ok)
                }
            }
            // Which simulator saw each session's requests (the prompt names the session).
            for (index, recorder) in stack.recorders.enumerated() {
                for entry in recorder.entries {
                    let text = String(buffer: entry.body)
                    guard let range = text.range(of: #"session \d+"#, options: .regularExpression) else { continue }
                    let session = String(text[range])
                    let name = LiveStack.upstreamNames[index].0
                    #expect(upstreamOfSession[session, default: name] == name, "\(session) reached two upstreams")
                    upstreamOfSession[session] = name
                }
            }
            #expect(upstreamOfSession.count == 12)
            #expect(Set(upstreamOfSession.values).count == 3, "12 sessions should reach all three upstreams: \(upstreamOfSession)")
            #expect(stack.recorders.map { $0.entries.count }.reduce(0, +) == 36)
            let lines = Self.responses(stack)
            #expect(lines.count == 36)
            #expect(lines.allSatisfy { $0["upstream.attempts"] as? Int == 1 && $0["upstream"] is String && $0["upstream.region"] is String })
            // The ledger: `sluice usage --by upstream`.
            let report = UsageReport(totals: try await stack.store.usageTotals(since: Date(timeIntervalSinceNow: -60), bucketSeconds: nil), by: .upstream)
            #expect(Set(report.rows.map(\.key)) == ["east", "west", "central"])
            #expect(report.rows.map(\.requests).reduce(0, +) == 36)
        }
    }

    @Test("a region that throttles everything costs the client nothing and is skipped after its first throttle; recovery brings its keys back")
    func throttlingRegion() async throws {
        let east = SimulatorFaults(.init(failurePercent: 100))
        try await LiveStack.run(
            simulator: .init(faults: east), more: [.init()],
            configure: {
                $0.metricsToken = MetricsTests.metricsToken
                $0.routing.cooldown = .seconds(2)
                $0.routing.maximumCooldown = .seconds(2)
            }
        ) { stack in
            // Sessions that rank east first.
            let eastSessions = (0..<200).map { "t-\($0)" }.filter { Self.first("session:" + $0, [("east", 1), ("west", 1)]) == "east" }.prefix(10)
            #expect(eastSessions.count == 10)
            let started = ContinuousClock.now
            for session in eastSessions {
                let (status, _, body) = try await Self.sessionRequest(stack, session: session)
                #expect(status == .ok)
                #expect(String(buffer: body).hasSuffix("data: [DONE]\n\n"))
            }
            // East saw the first request, and then only a trial request each time its 2 s cooldown
            // ran out (none while these requests take less than that, as they do on an idle machine).
            let elapsed = ContinuousClock.now - started
            let eastCount = stack.recorders[0].entries.count
            let trials = Int(elapsed / .seconds(2))
            #expect((1...1 + trials).contains(eastCount), "east saw \(eastCount) requests in \(elapsed)")
            #expect(stack.recorders[1].entries.count == 10)
            let attempts = Self.responses(stack).compactMap { $0["upstream.attempts"] as? Int }
            #expect(attempts.first == 2)
            #expect(attempts.filter { $0 == 2 }.count == eastCount)
            #expect(Self.responses(stack).allSatisfy { $0["upstream"] as? String == "west" && $0["status"] as? Int == 200 })

            let (_, _, metrics) = try await stack.get("/metrics", headers: [("Authorization", "Bearer \(MetricsTests.metricsToken)")])
            let text = String(buffer: metrics)
            #expect((MetricsTests.value(text, #"sluice_failovers_total{from="east",reason="upstream_throttled"}"#) ?? 0) >= 1)
            #expect((MetricsTests.value(text, #"sluice_upstream_requests_total{upstream="east",outcome="upstream_throttled"}"#) ?? 0) >= 1)
            #expect(MetricsTests.value(text, #"sluice_upstream_requests_total{upstream="west",outcome="ok"}"#) == 10)

            // East recovers: after its cooldown one trial request finds it well, and its keys come back.
            east.set(.init())
            try await Task.sleep(for: .milliseconds(2_100))
            for session in eastSessions {
                #expect(try await Self.sessionRequest(stack, session: session).0 == .ok)
            }
            #expect(stack.recorders[0].entries.count == eastCount + 10)
            #expect(stack.recorders[1].entries.count == 10)
            let (_, _, after) = try await stack.get("/metrics", headers: [("Authorization", "Bearer \(MetricsTests.metricsToken)")])
            #expect(MetricsTests.value(String(buffer: after), #"sluice_upstream_healthy{upstream="east"}"#) == 1)
        }
    }

    @Test("a region that is down (connection refused) is skipped too, and shows as unhealthy")
    func downRegion() async throws {
        try await LiveStack.run(
            more: [.init()],
            configure: {
                $0.metricsToken = MetricsTests.metricsToken
                // Nothing listens on port 9 (discard) on the loopback here.
                $0.upstreams[0].endpoint = URL(string: "http://127.0.0.1:9")
                $0.timeouts.connect = .seconds(30)
                // Longer than the test can take with the whole suite on 2 cores (it took 44 s once,
                // and east's default 5 s cooldown was over when the gauge was read).
                $0.routing.cooldown = .seconds(300)
            }
        ) { stack in
            // Sessions that rank east first: each would go there if it were up.
            let sessions = (0..<200).map { "d-\($0)" }.filter { Self.first("session:" + $0, [("east", 1), ("west", 1)]) == "east" }.prefix(8)
            var firstRequest: Duration?
            for session in sessions {
                let started = ContinuousClock.now
                let (status, _, _) = try await Self.sessionRequest(stack, session: session)
                firstRequest = firstRequest ?? ContinuousClock.now - started
                #expect(status == .ok)
            }
            let firstTook = try #require(firstRequest)
            #expect(stack.recorders[1].entries.count == 8)
            let lines = Self.responses(stack)
            #expect(lines.allSatisfy { $0["upstream"] as? String == "west" })
            // Only the first request that ranked east first paid for it; east cooled down after.
            #expect(lines.compactMap { $0["upstream.attempts"] as? Int }.filter { $0 == 2 }.count == 1)
            let (_, _, metrics) = try await stack.get("/metrics", headers: [("Authorization", "Bearer \(MetricsTests.metricsToken)")])
            let text = String(buffer: metrics)
            #expect(MetricsTests.value(text, #"sluice_upstream_healthy{upstream="east"}"#) == 0)
            #expect(MetricsTests.value(text, #"sluice_upstream_healthy{upstream="west"}"#) == 1)
            #expect(MetricsTests.value(text, #"sluice_failovers_total{from="east",reason="upstream_unreachable"}"#) == 1)
            // A refused connection costs a round trip, not the connect timeout (30 s here).
            #expect(firstTook < .seconds(15), "the request that found east down took \(firstTook)")
        }
    }

    @Test("after the first byte nothing is retried: a mid-stream throttle ends the stream; a 400 is the caller's and is not retried either")
    func noRetryAfterFirstByte() async throws {
        try await LiveStack.run(more: [.init()]) { stack in
            let (status, _, body) = try await Self.sessionRequest(
                stack, session: "m-1", prompt: "x [[sim chunks=5 exception_after=2 exception=throttlingException]]"
            )
            #expect(status == .ok)
            #expect(String(buffer: body).contains("throttlingException"))
            #expect(!String(buffer: body).contains("[DONE]"))
            let (refused, _, _) = try await Self.sessionRequest(stack, session: "m-2", prompt: "x [[sim status=400]]")
            #expect(refused == .badRequest)
            #expect(stack.recorders.map { $0.entries.count }.reduce(0, +) == 2)
        }
    }

    @Test("Retry-After: a short one is waited out when no other upstream may take the request; a long one goes back to the client")
    func retryAfter() async throws {
        // Every second request is refused with Retry-After: 1.
        let faults = SimulatorFaults(.init(failurePercent: 50, retryAfterSeconds: 1))
        try await LiveStack.run(simulator: .init(faults: faults)) { stack in
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("a [[sim chunks=1]]")).0 == .ok)
            let started = ContinuousClock.now
            let (status, _, _) = try await stack.post("/v1/chat/completions", json: chatRequest("b [[sim chunks=1]]"))
            let waited = ContinuousClock.now - started
            #expect(status == .ok)
            #expect(waited >= .milliseconds(950), "the gateway answered after \(waited), before Retry-After")
            // Once, not again and again (loose: the whole suite shares 2 cores).
            #expect(waited < .seconds(10))
            #expect(Self.responses(stack).last?["upstream.attempts"] as? Int == 2)

            // Longer than routing.maxRetryAfterWaitSeconds (2 s): the client gets the 429 and the header.
            faults.set(.init(failurePercent: 100, retryAfterSeconds: 30))
            let start = ContinuousClock.now
            let (throttled, headers, _) = try await stack.post("/v1/chat/completions", json: chatRequest("c"))
            #expect(throttled == .tooManyRequests)
            #expect(headers.first(name: "retry-after") == "30")
            #expect(ContinuousClock.now - start < .seconds(10))
        }
    }

    @Test("a first-byte timeout moves the request on: a slow region costs its first-byte limit once, then is skipped")
    func firstByteTimeout() async throws {
        try await LiveStack.run(
            simulator: .init(faults: SimulatorFaults(.init(firstByteDelay: .seconds(30)))), more: [.init()],
            // 3 s: a bound the healthy simulator meets even on a loaded 2-core machine.
            configure: { $0.timeouts.firstByte = .seconds(3) }
        ) { stack in
            let sessions = (0..<200).map { "f-\($0)" }.filter { Self.first("session:" + $0, [("east", 1), ("west", 1)]) == "east" }.prefix(3)
            for session in sessions {
                let (status, _, _) = try await Self.sessionRequest(stack, session: session)
                #expect(status == .ok)
            }
            let lines = Self.responses(stack)
            #expect(lines.map { $0["upstream"] as? String } == ["west", "west", "west"])
            #expect(lines.map { $0["upstream.attempts"] as? Int } == [2, 1, 1])
            // East saw at most the first request: 0 when, with the whole suite on 2 cores, the request
            // had not reached its handler yet when the 3 s first-byte limit ran out (seen once).
            #expect(stack.recorders[0].entries.count <= 1)
        }
    }

    @Test("the routing time budget is kept: slow upstreams are cut off when it runs out, not after each one's own first-byte limit")
    func budget() async throws {
        let slow = SimulatorFaults.Settings(firstByteDelay: .seconds(30))
        try await LiveStack.run(
            simulator: .init(faults: SimulatorFaults(slow)), more: [.init(faults: SimulatorFaults(slow))],
            configure: { $0.routing.budget = .milliseconds(1_500) }
        ) { stack in
            let started = ContinuousClock.now
            let (status, _, body) = try await Self.sessionRequest(stack, session: "b-1")
            let took = ContinuousClock.now - started
            #expect(status == .gatewayTimeout, "\(String(buffer: body))")
            // Well before the upstreams' 30 s or the first-byte limit of 60 s (loose for a loaded machine).
            #expect(took >= .milliseconds(1_400) && took < .seconds(12), "took \(took)")
            // The first attempt had the whole budget as its time limit: no second one was started.
            #expect(stack.recorders.map { $0.entries.count }.reduce(0, +) <= 1)
        }
    }

    @Test("models per upstream: a model only one upstream serves goes there; one no upstream serves is 404 naming it; ids follow the region")
    func modelsLive() async throws {
        try await LiveStack.run(
            more: [.init()],
            configure: {
                $0.upstreams[0].models = ["*haiku*"]
                $0.upstreams[1].region = "eu-west-1"
                $0.upstreams[1].models = ["*haiku*", "*sonnet*"]
            }
        ) { stack in
            for session in 0..<4 {
                let (status, _, _) = try await stack.post(
                    "/v1/chat/completions", json: chatRequest("s [[sim chunks=1]]", model: "claude-sonnet"),
                    headers: [("X-Claude-Code-Session-Id", "m-\(session)")]
                )
                #expect(status == .ok)
            }
            // Only west (eu-west-1) serves Sonnet: the alias's `us.` profile became `eu.` there.
            #expect(stack.recorders[0].entries.isEmpty)
            #expect(stack.recorders[1].entries.map(\.modelID) == Array(repeating: "eu.anthropic.claude-sonnet-4-5-20250929-v1:0", count: 4))
            // A Bedrock id the client named itself passes unchanged.
            let invoke = #"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"x [[sim chunks=1]]"}]}"#
            let literal = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
            #expect(try await stack.post("/bedrock/model/\(percentEncodePathSegment(literal))/invoke", json: invoke).0 == .ok)
            #expect(stack.recorders[1].entries.last?.modelID == literal)

            let (status, _, body) = try await stack.post("/v1/chat/completions", json: chatRequest("o", model: "claude-opus"))
            #expect(status == .notFound)
            #expect(String(buffer: body).contains("no upstream of this gateway serves the model 'claude-opus'"))
            #expect(stack.recorders.map { $0.entries.count }.reduce(0, +) == 5)
        }
    }
}
