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
            let report = UsageReport(records: all, by: .group)
            #expect(report.rows.map(\.key).sorted() == ["eng", "ops"])
            #expect(report.rows.first?.requests == 3)
            #expect(report.rows.first?.costUSD == 1.5)
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
