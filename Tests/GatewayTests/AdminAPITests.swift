import AsyncHTTPClient
import BedrockSimulator
import Foundation
import Gateway
import NIOCore
import NIOHTTP1
import StreamCore
import Testing

/// The console's API (`/admin/api/*`, docs/admin-api.yaml) and page (`/admin`) on the real server.
@Suite
struct AdminAPITests {
    static func object(_ body: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(String(buffer: body).utf8)) as? [String: Any])
    }

    static func rows(_ body: ByteBuffer, _ key: String) throws -> [[String: Any]] {
        try #require(try Self.object(body)[key] as? [[String: Any]])
    }

    /// The OpenAI error body's `error.param` and `error.code`.
    static func error(_ body: ByteBuffer) throws -> (param: String?, code: String?, message: String) {
        let error = try #require(try Self.object(body)["error"] as? [String: Any])
        return (error["param"] as? String, error["code"] as? String, try #require(error["message"] as? String))
    }

    static let routes: [(HTTPMethod, String)] = [
        (.GET, "/admin/api/me"), (.GET, "/admin/api/usage"), (.GET, "/admin/api/requests"), (.GET, "/admin/api/status"),
        (.GET, "/admin/api/tokens"), (.POST, "/admin/api/tokens"), (.DELETE, "/admin/api/tokens/abcdefgh"),
    ]

    static func call(_ stack: LiveStack, _ method: HTTPMethod, _ path: String, headers: [(String, String)]) async throws -> (HTTPResponseStatus, ByteBuffer) {
        switch method {
        case .POST:
            let (status, _, body) = try await stack.post(path, json: #"{"identity":"x"}"#, headers: headers)
            return (status, body)
        case .DELETE:
            let (status, _, body) = try await stack.delete(path, headers: headers)
            return (status, body)
        default:
            let (status, _, body) = try await stack.get(path, headers: headers)
            return (status, body)
        }
    }

    @Test("every admin route: 401 without a valid token, 403 for a valid non-admin token, both in OpenAI's shape; admin.groups decides who is admin")
    func refusals() async throws {
        try await LiveStack.run(configure: { $0.adminGroups = ["ops", "admins"] }) { stack in
            let user = try await stack.makeToken(identity: "jane", groups: ["eng"])
            let ops = try await stack.makeToken(identity: "olga", groups: ["ops"])
            let tokensBefore = try await stack.store.tokens().count
            for (method, path) in Self.routes {
                let (missing, missingBody) = try await Self.call(stack, method, path, headers: [("x-sluice-test-no-token", "")])
                #expect(missing == .unauthorized, "\(method) \(path)")
                #expect(try Self.error(missingBody).code == "invalid_api_key")
                let (forged, _) = try await Self.call(stack, method, path, headers: [("Authorization", "Bearer sk-sluice-forgedforgedforgedforgedforgedforgedforge")])
                #expect(forged == .unauthorized, "\(method) \(path)")
                let (denied, deniedBody) = try await Self.call(stack, method, path, headers: [("Authorization", "Bearer \(user)")])
                #expect(denied == .forbidden, "\(method) \(path)")
                #expect(try Self.error(deniedBody).code == "policy_denied")
            }
            // Nothing was created by the refused POSTs.
            #expect(try await stack.store.tokens().count == tokensBefore)
            // A member of any listed group is an admin.
            let (me, _, meBody) = try await stack.get("/admin/api/me", headers: [("Authorization", "Bearer \(ops)")])
            #expect(me == .ok)
            #expect(try Self.object(meBody)["identity"] as? String == "olga")
            #expect(try await stack.get("/admin/api/me").0 == .ok)
            // Every call by an authenticated caller leaves an audit line.
            let lines = stack.audit.all.filter { $0.contains("\"event\":\"admin\"") }
            #expect(lines.count == Self.routes.count + 2)
            #expect(lines.filter { $0.contains("\"status\":403") }.count == Self.routes.count)
        }
        try await LiveStack.run(configure: { $0.adminGroups = ["ops"] }) { stack in
            // The stack's token is in `admins`, which is no longer an admin group.
            let (status, _, _) = try await stack.get("/admin/api/status")
            #expect(status == .forbidden)
        }
    }

    @Test("usage: by identity, group, model and upstream, in hour buckets, the same numbers as the report sluice usage prints")
    func usage() async throws {
        try await LiveStack.run(configure: {
            $0.policies = [AccessPolicy(source: .group("admins")), AccessPolicy(source: .group("eng"))]
            $0.prices = PriceTable(entries: [(model: "*", price: .init(input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75))])
        }) { stack in
            let jane = try await stack.makeToken(identity: "jane", groups: ["eng", "web"])
            for _ in 0..<3 {
                #expect(try await stack.post("/v1/chat/completions", json: chatRequest("hi [[sim chunks=4]]", includeUsage: true)).0 == .ok)
            }
            for _ in 0..<2 {
                let (status, _, _) = try await stack.post(
                    "/v1/chat/completions", json: chatRequest("hello [[sim chunks=2]]", stream: false), headers: [("Authorization", "Bearer \(jane)")]
                )
                #expect(status == .ok)
            }
            let (status, headers, body) = try await stack.get("/admin/api/usage?by=identity&since=1h")
            #expect(status == .ok)
            #expect(headers.first(name: "content-type") == "application/json")
            #expect(headers.first(name: "cache-control") == "no-store")
            let rows = try Self.rows(body, "rows")
            let counts = Dictionary(uniqueKeysWithValues: rows.map { ($0["key"] as? String ?? "", $0["requests"] as? Int ?? -1) })
            #expect(counts == ["test-admin": 3, "jane": 2])
            #expect(rows.allSatisfy { ($0["costUSD"] as? Double ?? 0) > 0 && ($0["outputTokens"] as? Int ?? 0) > 0 && $0["bucket"] == nil })

            // The CLI's report over the same ledger (UsageCommand prints these rows).
            for grouping in UsageReport.Grouping.allCases {
                let (_, _, body) = try await stack.get("/admin/api/usage?by=\(grouping.rawValue)&since=1h")
                let api = try Self.rows(body, "rows")
                let totals = try await stack.store.usageTotals(since: Date().addingTimeInterval(-3_600), bucketSeconds: nil)
                let report = UsageReport(totals: totals, by: grouping).rows
                #expect(api.count == report.count, "\(grouping)")
                for (row, expected) in zip(api, report) {
                    #expect(row["key"] as? String == expected.key)
                    #expect(row["requests"] as? Int == expected.requests)
                    #expect(row["inputTokens"] as? Int == expected.inputTokens && row["outputTokens"] as? Int == expected.outputTokens)
                    #expect(row["cacheReadTokens"] as? Int == expected.cacheReadTokens && row["cacheWriteTokens"] as? Int == expected.cacheWriteTokens)
                    // JSON carries the shortest exact decimal; Foundation's reader may round its last digit.
                    #expect(abs((row["costUSD"] as? Double ?? -1) - expected.costUSD) <= expected.costUSD * 1e-12)
                }
            }
            let (_, _, groups) = try await stack.get("/admin/api/usage?by=group")
            #expect(Set(try Self.rows(groups, "rows").map { $0["key"] as? String ?? "" }) == ["admins", "eng", "web"])

            let (_, _, hourly) = try await stack.get("/admin/api/usage?by=model&bucket=hour&since=24h")
            let object = try Self.object(hourly)
            #expect(object["bucket"] as? String == "hour")
            let buckets = try Self.rows(hourly, "rows")
            #expect(buckets.map { $0["requests"] as? Int ?? 0 }.reduce(0, +) == 5)
            for row in buckets {
                let start = try #require((row["bucket"] as? String).flatMap { try? Date($0, strategy: .iso8601) })
                #expect(start.timeIntervalSince1970.truncatingRemainder(dividingBy: 3_600) == 0)
                #expect(start <= Date() && start > Date().addingTimeInterval(-7_200))
            }
        }
    }

    @Test("bad parameters are 400s naming the parameter; a huge since is cut to 400 days")
    func badParameters() async throws {
        try await LiveStack.run { stack in
            for (path, param) in [
                ("/admin/api/usage?by=team", "by"), ("/admin/api/usage?since=yesterday", "since"), ("/admin/api/usage?since=-5d", "since"),
                ("/admin/api/usage?bucket=week", "bucket"), ("/admin/api/requests?limit=0", "limit"), ("/admin/api/requests?limit=501", "limit"),
                ("/admin/api/requests?limit=ten", "limit"), ("/admin/api/requests?before=-3", "before"), ("/admin/api/requests?since=0d", "since"),
            ] {
                let (status, _, body) = try await stack.get(path)
                #expect(status == .badRequest, "\(path)")
                let error = try Self.error(body)
                #expect(error.param == param, "\(path)")
                #expect(error.message.contains(param), "\(path)")
            }
            for huge in ["99999999999999999999d", "100000w", "1900-01-01T00:00:00Z"] {
                let (status, _, body) = try await stack.get("/admin/api/usage?since=\(huge)")
                #expect(status == .ok, "\(huge)")
                let since = try #require((try Self.object(body)["since"] as? String).flatMap { try? Date($0, strategy: .iso8601) })
                #expect(abs(since.timeIntervalSinceNow + 400 * 86_400) < 60, "\(huge)")
            }
            #expect(try await stack.get("/admin/api/usage?since=2026-12-01T00:00:00Z").0 == .ok)
            #expect(try await stack.get("/admin/api/requests?limit=500").0 == .ok)
        }
    }

    @Test("requests: newest first with what the ledger knows, filtered by identity, paged by next")
    func requests() async throws {
        try await LiveStack.run(configure: { $0.policies = [AccessPolicy(source: .group("admins")), AccessPolicy(source: .group("eng"))] }) { stack in
            let jane = try await stack.makeToken(identity: "jane", groups: ["eng"])
            for index in 0..<5 {
                let headers = index % 2 == 0 ? [] : [("Authorization", "Bearer \(jane)")]
                #expect(try await stack.post("/v1/chat/completions", json: chatRequest("n\(index) [[sim chunks=2]]", includeUsage: true), headers: headers).0 == .ok)
            }
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("x [[sim status=500]]")).0 == .badGateway)
            let (_, _, first) = try await stack.get("/admin/api/requests?limit=4")
            let page = try Self.rows(first, "requests")
            #expect(page.count == 4)
            let newest = page[0]
            #expect(newest["status"] as? Int == 502)
            #expect(newest["identity"] as? String == "test-admin")
            #expect(newest["route"] as? String == "/v1/chat/completions")
            #expect(newest["model"] as? String == "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
            #expect(newest["requestedModel"] as? String == "claude-sonnet")
            #expect((newest["requestId"] as? String)?.isEmpty == false)
            #expect(newest["durationMs"] is Double)
            let ok = page[1]
            #expect(ok["status"] as? Int == 200)
            #expect(ok["finishReason"] as? String == "stop")
            #expect((ok["outputTokens"] as? Int ?? 0) > 0)
            #expect(ok["firstByteMs"] is Double)
            let next = try #require(try Self.object(first)["next"] as? String)
            let (_, _, second) = try await stack.get("/admin/api/requests?limit=4&before=\(next)")
            #expect(try Self.rows(second, "requests").count == 2)
            #expect(try Self.object(second)["next"] is NSNull)
            let ids = (page + (try Self.rows(second, "requests"))).compactMap { Int($0["id"] as? String ?? "") }
            #expect(ids == ids.sorted(by: >) && Set(ids).count == 6)

            let (_, _, janes) = try await stack.get("/admin/api/requests?identity=jane")
            #expect(try Self.rows(janes, "requests").map { $0["identity"] as? String } == ["jane", "jane"])
        }
    }

    @Test("tokens: create shows the token once and it works at once; list never shows a secret; revoke is refused from the next request; bad bodies are 400s")
    func tokens() async throws {
        try await LiveStack.run(configure: { $0.policies = [AccessPolicy(source: .group("admins")), AccessPolicy(source: .group("eng"))] }) { stack in
            let (status, _, body) = try await stack.post(
                "/admin/api/tokens", json: #"{"identity":"ci-bot","groups":["eng","eng"],"ttl":"2h","label":"nightly"}"#
            )
            #expect(status == .created)
            let created = try Self.object(body)
            let token = try #require(created["token"] as? String)
            let prefix = try #require(created["prefix"] as? String)
            #expect(token.hasPrefix("sk-sluice-\(prefix)"))
            #expect(created["groups"] as? [String] == ["eng"])
            #expect(created["label"] as? String == "nightly")
            #expect(created["state"] as? String == "active")
            let expires = try #require((created["expiresAt"] as? String).flatMap { try? Date($0, strategy: .iso8601) })
            #expect(abs(expires.timeIntervalSinceNow - 7_200) < 60)
            let auth = [("Authorization", "Bearer \(token)")]
            #expect(try await stack.post("/v1/chat/completions", json: chatRequest("hi [[sim chunks=1]]"), headers: auth).0 == .ok)

            let (_, _, list) = try await stack.get("/admin/api/tokens")
            let text = String(buffer: list)
            #expect(!text.contains(token) && !text.contains("digest"))
            let listed = try Self.rows(list, "tokens")
            #expect(listed.first?["prefix"] as? String == prefix, "newest first")
            #expect(Set(listed.compactMap { $0["identity"] as? String }) == ["ci-bot", "test-admin"])

            let (revoked, _, revokedBody) = try await stack.delete("/admin/api/tokens/\(prefix)")
            #expect(revoked == .ok)
            #expect(try Self.object(revokedBody)["revoked"] as? [String] == [prefix])
            // Refused from the very next request on this replica (no wait for the refresher).
            let (refused, _, refusedBody) = try await stack.post("/v1/chat/completions", json: chatRequest("hi"), headers: auth)
            #expect(refused == .unauthorized)
            #expect(try Self.error(refusedBody).message.contains("revoked"))
            #expect(try await stack.delete("/admin/api/tokens/\(prefix)").0 == .notFound)
            #expect(try await stack.delete("/admin/api/tokens/nosuchpf").0 == .notFound)

            for (json, param) in [
                (#"{"groups":["eng"]}"#, "identity"), (#"{"identity":"  "}"#, "identity"), (#"{"identity":"a","groups":["x,y"]}"#, "groups"),
                (#"{"identity":"a","groups":"eng"}"#, "groups"), (#"{"identity":"a","ttl":"forever"}"#, "ttl"), (#"{"identity":"a","ttl":"0d"}"#, "ttl"),
                (#"{"identity":"a","label":7}"#, "label"), (#"{"identity":"a","admin":true}"#, "admin"),
                // Control characters would go into audit lines, metrics labels and the console as they are.
                (#"{"identity":"a\u0000b"}"#, "identity"), (#"{"identity":"a","groups":["eng\nops"]}"#, "groups"),
            ] {
                let (status, _, body) = try await stack.post("/admin/api/tokens", json: json)
                #expect(status == .badRequest, "\(json)")
                #expect(try Self.error(body).param == param, "\(json)")
            }
            for json in ["not json", "[1,2]", #"{"identity":"a""#] {
                #expect(try await stack.post("/admin/api/tokens", json: json).0 == .badRequest, "\(json)")
            }
            #expect(try await stack.post("/admin/api/tokens", json: #"{"identity":""# + String(repeating: "a", count: 70_000) + #""}"#).0 == .payloadTooLarge)
            #expect(try await stack.store.tokens().count == 2)

            // The audit names the token by prefix, never the token itself.
            let admin = stack.audit.all.filter { $0.contains("\"event\":\"admin\"") }
            #expect(admin.contains { $0.contains("\"route\":\"/admin/api/tokens\"") && $0.contains("\"token.prefix\":\"\(prefix)\"") && $0.contains("\"status\":201") })
            #expect(admin.contains { $0.contains("\"route\":\"/admin/api/tokens/{prefix}\"") && $0.contains("\"status\":200") })
            #expect(!stack.audit.all.contains { $0.contains(token) })
        }
    }

    @Test("status: open streams, requests and percentiles of the last minutes, upstream health, version and uptime")
    func status() async throws {
        try await LiveStack.run(more: [.init()]) { stack in
            for _ in 0..<4 {
                #expect(try await stack.post("/v1/chat/completions", json: chatRequest("hi [[sim chunks=5]]")).0 == .ok)
            }
            let (status, _, body) = try await stack.get("/admin/api/status")
            #expect(status == .ok)
            let object = try Self.object(body)
            #expect(object["version"] as? String == SluiceVersion.current)
            #expect(object["activeStreams"] as? Int == 0)
            #expect(object["windowSeconds"] as? Int == 300)
            #expect((object["maxStreams"] as? Int ?? 0) > 0)
            #expect((object["uptimeSeconds"] as? Int ?? -1) >= 0)
            #expect(object["requests"] as? Int == 4)
            #expect((object["requestsPerSecond"] as? Double ?? 0) > 0)
            let firstByte = try #require(object["firstByteMs"] as? [String: Any])
            #expect(firstByte["count"] as? Int == 4)
            #expect((firstByte["p50"] as? Double ?? 0) > 0)
            let chunks = try #require(object["chunkMicroseconds"] as? [String: Any])
            #expect((chunks["count"] as? Int ?? 0) >= 4 * 5)
            #expect((chunks["p99"] as? Double ?? 0) >= (chunks["p50"] as? Double ?? 1))
            let upstreams = try #require(object["upstreams"] as? [[String: Any]])
            #expect(upstreams.map { $0["name"] as? String } == ["east", "west"])
            #expect(upstreams.allSatisfy { $0["healthy"] as? Bool == true && $0["region"] is String })
        }
    }

    @Test("the page and its assets: no token needed, right types, a strict CSP, ETag revalidation; the page loads only same-origin files")
    func page() async throws {
        try await LiveStack.run { stack in
            let noToken = [("x-sluice-test-no-token", "")]
            var etags: [String: String] = [:]
            for (path, type) in [
                ("/admin", "text/html; charset=utf-8"), ("/admin/console.js", "text/javascript; charset=utf-8"),
                ("/admin/console.css", "text/css; charset=utf-8"),
            ] {
                let (status, headers, body) = try await stack.get(path, headers: noToken)
                #expect(status == .ok, "\(path)")
                #expect(headers.first(name: "content-type") == type)
                #expect(body.readableBytes > 1_000, "\(path)")
                let csp = try #require(headers.first(name: "content-security-policy"))
                #expect(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"))
                #expect(headers.first(name: "x-content-type-options") == "nosniff")
                #expect(headers.first(name: "cache-control") == "no-cache")
                let etag = try #require(headers.first(name: "etag"))
                etags[path] = etag
                let (again, _, empty) = try await stack.get(path, headers: noToken + [("If-None-Match", etag)])
                #expect(again == .notModified)
                #expect(empty.readableBytes == 0)
            }
            #expect(Set(etags.values).count == 3)
            let (_, _, page) = try await stack.get("/admin", headers: noToken)
            let html = String(buffer: page)
            #expect(html.contains("/admin/console.js") && html.contains("/admin/console.css"))
            #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("<script>") && !html.contains("style=\""))
        }
    }
}

@Suite
struct RecentActivityTests {
    @Test("histogram buckets: a value lands in the bucket whose range holds it, within an eighth")
    func buckets() {
        for value: Int64 in [0, 1, 3, 4, 7, 8, 100, 1_000, 12_345, 999_999, 5_000_000_000] {
            let middle = RecentActivity.value(ofBucket: RecentActivity.bucket(nanoseconds: value))
            #expect(abs(middle - Double(value)) <= max(1, Double(value) / 8), "\(value) → \(middle)")
        }
        #expect(RecentActivity.bucket(nanoseconds: .max) == RecentActivity.bucketCount - 1)
        #expect(RecentActivity.bucket(nanoseconds: -5) == 0)
    }

    @Test("percentiles and counts of the last five minutes; older slots drop out, a reused slot starts empty")
    func window() {
        let origin = ContinuousClock.now
        let activity = RecentActivity(origin: origin)
        for index in 0..<100 {
            activity.requestEnded(firstByte: .milliseconds(index < 98 ? 10 : 900), at: origin + .seconds(5))
            activity.chunkProcessed(nanoseconds: 20_000)
        }
        var summary = activity.summary(at: origin + .seconds(30))
        #expect(summary.requests == 100)
        #expect(abs((summary.requestsPerSecond) - 100 / 30) < 0.01)
        #expect(abs((summary.firstByteMilliseconds.p50 ?? 0) - 10) < 1.25)
        #expect(abs((summary.firstByteMilliseconds.p99 ?? 0) - 900) < 112.5)
        #expect(summary.chunkMicroseconds.count == 100)
        #expect(abs((summary.chunkMicroseconds.p50 ?? 0) - 20) < 2.5)
        // Two minutes on: still in the window, but not in the last minute's rate.
        summary = activity.summary(at: origin + .seconds(125))
        #expect(summary.requests == 100)
        #expect(summary.requestsPerSecond == 0)
        // Past five minutes: gone. The same ring entry, reused, starts from zero.
        summary = activity.summary(at: origin + .seconds(320))
        #expect(summary.requests == 0)
        #expect(summary.firstByteMilliseconds.count == 0 && summary.firstByteMilliseconds.p50 == nil)
        #expect(summary.chunkMicroseconds.count == 0)
        activity.requestEnded(firstByte: nil, at: origin + .seconds(315))
        summary = activity.summary(at: origin + .seconds(320))
        #expect(summary.requests == 1)
        #expect(summary.firstByteMilliseconds.count == 0)
    }
}
