import Foundation
import Gateway
import Logging
import StreamCore
import Testing

/// A temporary directory removed when the test ends.
struct TemporaryDirectory {
    let url: URL

    init() throws {
        self.url = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: self.url, withIntermediateDirectories: true)
    }

    func path(_ name: String) -> String { self.url.appendingPathComponent(name).path }

    func remove() { try? FileManager.default.removeItem(at: self.url) }
}

/// Opens a store on a new temporary file, runs `body`, closes and removes everything.
func withTemporaryStore<T>(_ body: (SQLiteStore, TemporaryDirectory) async throws -> T) async throws -> T {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    let store = try await SQLiteStore.open(path: directory.path("sluice.db"), logger: Logger(label: "sluice-test"))
    do {
        let result = try await body(store, directory)
        try await store.close()
        return result
    } catch {
        try? await store.close()
        throw error
    }
}

@Suite
struct SQLiteStoreTests {
    @Test("a new file gets the current schema version; reopening does not migrate again")
    func migrations() async throws {
        try await withTemporaryStore { store, directory in
            #expect(try await store.currentSchemaVersion() == SQLiteStore.schemaVersion)
            let again = try await SQLiteStore.open(path: directory.path("sluice.db"), logger: Logger(label: "sluice-test"))
            #expect(try await again.currentSchemaVersion() == SQLiteStore.schemaVersion)
            try await again.close()
        }
    }

    @Test("the store is created in a directory that does not exist yet")
    func createsDirectory() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try await SQLiteStore.open(path: directory.path("a/b/sluice.db"), logger: Logger(label: "sluice-test"))
        try await store.close()
        #expect(FileManager.default.fileExists(atPath: directory.path("a/b/sluice.db")))
        let mode = try FileManager.default.attributesOfItem(atPath: directory.path("a/b/sluice.db"))[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    @Test("tokens: create, list, revoke by prefix and by identity; the change counter moves only on changes")
    func tokenLifecycle() async throws {
        try await withTemporaryStore { store, _ in
            let now = Date(timeIntervalSince1970: 1_800_000_000)
            let jane = ClientToken.make(identity: "jane@corp", groups: ["engineering", "admins"], label: "laptop", ttl: .seconds(86_400), now: now)
            let bot = ClientToken.make(identity: "ci-bot", groups: [], label: nil, ttl: nil, now: now.addingTimeInterval(1))
            let version0 = try await store.tokensVersion()
            try await store.insertToken(jane.record)
            try await store.insertToken(bot.record)
            let version2 = try await store.tokensVersion()
            #expect(version2 == version0 + 2)
            let listed = try await store.tokens()
            #expect(listed.map(\.identity) == ["ci-bot", "jane@corp"])
            #expect(listed.last == jane.record)
            #expect(try await store.token(digest: ClientToken.digestBytes(jane.token)) == jane.record)
            // Using a token is not a change the servers need to reload for.
            try await store.markTokensUsed([jane.record.prefix: now.addingTimeInterval(5)])
            #expect(try await store.tokensVersion() == version2)
            #expect(try await store.token(digest: jane.record.digest)?.lastUsedAt == now.addingTimeInterval(5))

            #expect(try await store.revokeTokens(matching: jane.record.prefix, at: now) == [jane.record.prefix])
            #expect(try await store.tokensVersion() == version2 + 1)
            #expect(try await store.revokeTokens(matching: jane.record.prefix, at: now).isEmpty)
            #expect(try await store.revokeTokens(matching: "ci-bot", at: now) == [bot.record.prefix])
            let states = try await store.tokens().map { $0.state(at: now) }
            #expect(states == [.revoked, .revoked])
        }
    }

    @Test("expiry: a token is active until its TTL has passed")
    func expiry() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let made = ClientToken.make(identity: "a", groups: [], label: nil, ttl: .seconds(60), now: now)
        #expect(made.record.state(at: now.addingTimeInterval(59)) == .active)
        #expect(made.record.state(at: now.addingTimeInterval(60)) == .expired)
        #expect(ClientToken.parseDuration("30d") == .seconds(30 * 86_400))
        #expect(ClientToken.parseDuration("12h") == .seconds(43_200))
        #expect(ClientToken.parseDuration("0d") == nil)
        #expect(ClientToken.parseDuration("d") == nil)
        #expect(ClientToken.parseDuration("5y") == nil)
    }

    @Test("tokens look like sk-sluice- + 43 base64url characters, with an 8-character public prefix")
    func tokenShape() {
        let made = ClientToken.make(identity: "a", groups: [], label: nil, ttl: nil, now: Date())
        #expect(made.token.hasPrefix("sk-sluice-"))
        let rest = made.token.dropFirst("sk-sluice-".count)
        #expect(rest.count == 43)
        #expect(rest.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(made.record.prefix == String(rest.prefix(8)))
        #expect(made.record.digest.count == 32)
    }

    @Test("hashed at rest: the raw token is nowhere in the database files")
    func hashedAtRest() async throws {
        try await withTemporaryStore { store, directory in
            var tokens: [String] = []
            for index in 0..<20 {
                let made = ClientToken.make(identity: "user\(index)", groups: ["g"], label: nil, ttl: .seconds(60), now: Date())
                try await store.insertToken(made.record)
                tokens.append(made.token)
            }
            var bytes = Data()
            for name in ["sluice.db", "sluice.db-wal", "sluice.db-shm"] {
                bytes.append(FileManager.default.contents(atPath: directory.path(name)) ?? Data())
            }
            #expect(bytes.count > 0)
            for token in tokens {
                #expect(bytes.range(of: Data(token.utf8)) == nil)
                // Not even the secret part after the public prefix.
                #expect(bytes.range(of: Data(token.dropFirst("sk-sluice-".count + 8).utf8)) == nil)
            }
        }
    }

    @Test("two processes' connections (server and CLI) share one file: a write on one is seen on the other")
    func sharedFile() async throws {
        try await withTemporaryStore { server, directory in
            let cli = try await SQLiteStore.open(path: directory.path("sluice.db"), logger: Logger(label: "sluice-test"))
            let made = ClientToken.make(identity: "jane", groups: [], label: nil, ttl: nil, now: Date())
            let before = try await server.tokensVersion()
            try await cli.insertToken(made.record)
            #expect(try await server.tokensVersion() == before + 1)
            #expect(try await server.token(digest: made.record.digest)?.identity == "jane")
            try await cli.close()
        }
    }

    @Test("usage rows round-trip and are read back by time")
    func usageRows() async throws {
        try await withTemporaryStore { store, _ in
            let start = Date(timeIntervalSince1970: 1_800_000_000)
            for index in 0..<3 {
                try await store.recordUsage(
                    UsageRecord(
                        timestamp: start.addingTimeInterval(Double(index) * 60), requestID: "r\(index)", identity: "jane", tokenPrefix: "abcdefgh",
                        groups: ["eng", "ops"], route: "/v1/chat/completions", requestedModel: "claude-sonnet", resolvedModel: "us.x",
                        status: 200, finishReason: "stop", usage: TokenUsage(inputTokens: 10, outputTokens: 5, cacheReadInputTokens: 2, cacheWriteInputTokens: 1),
                        costUSD: 0.5, firstByteMilliseconds: index == 0 ? nil : 12.5, durationMilliseconds: 100
                    )
                )
            }
            let all = try await store.usage(since: start)
            #expect(all.map(\.requestID) == ["r0", "r1", "r2"])
            #expect(all[0].groups == ["eng", "ops"])
            #expect(all[0].firstByteMilliseconds == nil)
            #expect(all[1].firstByteMilliseconds == 12.5)
            #expect(all[2].usage.totalTokens == 18)
            #expect(try await store.usage(since: start.addingTimeInterval(61)).map(\.requestID) == ["r2"])
            let report = UsageReport(totals: try await store.usageTotals(since: start, bucketSeconds: nil), by: .group)
            #expect(report.rows.map(\.key).sorted() == ["eng", "ops"])
            #expect(report.rows.first?.requests == 3)
            #expect(report.rows.first?.costUSD == 1.5)
            #expect(report.rows.first?.bucket == nil)
        }
    }

    @Test("usage totals are summed in the database per key and per UTC hour or day; a window leaves out older rows")
    func usageTotals() async throws {
        try await withTemporaryStore { store, _ in
            // 2027-01-15T00:00:00Z, a whole day and hour.
            let midnight = Date(timeIntervalSince1970: 1_800_000_000 - 1_800_000_000.truncatingRemainder(dividingBy: 86_400))
            let rows: [(offset: Double, identity: String, groups: [String], model: String, upstream: String?, cost: Double)] = [
                (-60, "old", ["eng"], "m1", "east", 9),  // before the window
                (10, "jane", ["eng", "ops"], "m1", "east", 0.25),
                (20, "jane", ["eng", "ops"], "m2", "east", 0.5),
                (3_700, "bob", [], "m1", nil, 1),
                (3_800, "jane", ["eng", "ops"], "m1", "west", 0.125),
                (90_000, "bob", [], "m1", nil, 2),
            ]
            for (index, row) in rows.enumerated() {
                try await store.recordUsage(
                    UsageRecord(
                        timestamp: midnight.addingTimeInterval(row.offset), requestID: "r\(index)", identity: row.identity, tokenPrefix: "p",
                        groups: row.groups, route: "/v1/messages", requestedModel: row.model, resolvedModel: row.model, status: 200, finishReason: "stop",
                        usage: TokenUsage(inputTokens: 100, outputTokens: 10, cacheReadInputTokens: 1, cacheWriteInputTokens: 2), costUSD: row.cost,
                        firstByteMilliseconds: 5, durationMilliseconds: 50, upstream: row.upstream
                    )
                )
            }
            let totals = try await store.usageTotals(since: midnight, bucketSeconds: nil)
            let byIdentity = UsageReport(totals: totals, by: .identity).rows
            #expect(byIdentity.map(\.key) == ["bob", "jane"])
            #expect(byIdentity.map(\.requests) == [2, 3])
            #expect(byIdentity.map(\.costUSD) == [3, 0.875])
            #expect(byIdentity[1].inputTokens == 300 && byIdentity[1].outputTokens == 30)
            #expect(byIdentity[1].cacheReadTokens == 3 && byIdentity[1].cacheWriteTokens == 6)
            #expect(UsageReport(totals: totals, by: .group).rows.map { "\($0.key)=\($0.requests)" } == ["(none)=2", "eng=3", "ops=3"])
            #expect(UsageReport(totals: totals, by: .upstream).rows.map { "\($0.key)=\($0.requests)" } == ["(none)=2", "east=2", "west=1"])

            let hourly = UsageReport(totals: try await store.usageTotals(since: midnight, bucketSeconds: 3_600), by: .identity).rows
            #expect(hourly.map { "\($0.key)@\(Int($0.bucket?.timeIntervalSince(midnight) ?? -1))=\($0.requests)" } == [
                "jane@0=2", "bob@3600=1", "jane@3600=1", "bob@90000=1",
            ])
            let daily = UsageReport(totals: try await store.usageTotals(since: midnight, bucketSeconds: 86_400), by: .model).rows
            #expect(daily.map { "\($0.key)@\(Int($0.bucket?.timeIntervalSince(midnight) ?? -1))=\($0.requests)" } == ["m1@0=3", "m2@0=1", "m1@86400=1"])
        }
    }

    @Test("recent requests: newest first, filtered by identity and window, paged with the last row's id")
    func recentRequests() async throws {
        try await withTemporaryStore { store, _ in
            let start = Date(timeIntervalSince1970: 1_800_000_000)
            for index in 0..<7 {
                try await store.recordUsage(
                    UsageRecord(
                        timestamp: start.addingTimeInterval(Double(index)), requestID: "r\(index)", identity: index % 2 == 0 ? "jane" : "bob",
                        tokenPrefix: "p", groups: [], route: "/v1/chat/completions", requestedModel: "m", resolvedModel: "m", status: 200,
                        finishReason: nil, usage: TokenUsage(), costUSD: 0, firstByteMilliseconds: nil, durationMilliseconds: 1
                    )
                )
            }
            let first = try await store.recentRequests(RequestQuery(since: start, limit: 3))
            #expect(first.map(\.record.requestID) == ["r6", "r5", "r4"])
            let second = try await store.recentRequests(RequestQuery(since: start, before: first.last?.id, limit: 3))
            #expect(second.map(\.record.requestID) == ["r3", "r2", "r1"])
            let last = try await store.recentRequests(RequestQuery(since: start, before: second.last?.id, limit: 3))
            #expect(last.map(\.record.requestID) == ["r0"])
            #expect(try await store.recentRequests(RequestQuery(since: start, identity: "jane", limit: 10)).map(\.record.requestID) == ["r6", "r4", "r2", "r0"])
            #expect(try await store.recentRequests(RequestQuery(since: start.addingTimeInterval(5), limit: 10)).map(\.record.requestID) == ["r6", "r5"])
        }
    }

    @Test("revoking by prefix never revokes an identity's tokens")
    func revokeByPrefixOnly() async throws {
        try await withTemporaryStore { store, _ in
            let now = Date()
            let one = ClientToken.make(identity: "alpha", groups: [], label: nil, ttl: .seconds(3_600), now: now)
            try await store.insertToken(one.record)
            // A second identity whose name is the first token's prefix.
            let two = ClientToken.make(identity: one.record.prefix, groups: [], label: nil, ttl: .seconds(3_600), now: now)
            try await store.insertToken(two.record)
            #expect(try await store.revokeToken(prefix: one.record.prefix, at: now))
            #expect(try await store.revokeToken(prefix: one.record.prefix, at: now) == false)
            let states = Dictionary(uniqueKeysWithValues: try await store.tokens().map { ($0.prefix, $0.state(at: now)) })
            #expect(states[one.record.prefix] == .revoked)
            #expect(states[two.record.prefix] == .active)
        }
    }

    @Test("store location: --db, then SLUICE_DB, then store.path, then the per-user data directory")
    func location() {
        #expect(StoreLocation.resolve(flag: "/a.db", environment: ["SLUICE_DB": "/b.db"], configuredPath: "/c.db") == "/a.db")
        #expect(StoreLocation.resolve(flag: nil, environment: ["SLUICE_DB": "/b.db"], configuredPath: "/c.db") == "/b.db")
        #expect(StoreLocation.resolve(flag: nil, environment: [:], configuredPath: "/c.db") == "/c.db")
        #expect(StoreLocation.resolve(flag: nil, environment: ["XDG_DATA_HOME": "/x", "HOME": "/h"], configuredPath: nil) == "/x/sluice/sluice.db")
        #expect(StoreLocation.resolve(flag: nil, environment: ["HOME": "/h"], configuredPath: nil) == "/h/.local/share/sluice/sluice.db")
    }
}
