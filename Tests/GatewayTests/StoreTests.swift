import Foundation
import Gateway
import Logging
import NIOCore
import PostgresNIO
import StreamCore
import Synchronization
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

/// The store engines the suite runs against: SQLite always, PostgreSQL when `SLUICE_TEST_POSTGRES`
/// names a server (a URL whose user may create databases; `.ci/run` starts a throwaway cluster with
/// `Tests/support/postgres.sh` and sets it).
enum StoreBackend: String, Sendable, CaseIterable, CustomTestStringConvertible {
    case sqlite, postgres

    static var postgresURL: String? { ProcessInfo.processInfo.environment["SLUICE_TEST_POSTGRES"].flatMap { $0.isEmpty ? nil : $0 } }
    static var available: [StoreBackend] { Self.postgresURL == nil ? [.sqlite] : [.sqlite, .postgres] }

    var testDescription: String { self.rawValue }
}

/// A fresh, empty store's location: a file in a temporary directory, or a new database on the test
/// server. `open()` makes another connection to the same data (a second process, a second replica).
struct TemporaryStoreLocation: Sendable {
    let backend: StoreBackend
    let directory: TemporaryDirectory
    let location: String

    func open() async throws -> any Store {
        try await StoreAddress.parse(self.location, environment: [:]).open(logger: Logger(label: "sluice-test"))
    }
}

extension TemporaryDirectory: @unchecked Sendable {}

/// Opens a store of `backend` on new, empty storage, runs `body`, closes and removes everything.
func withTemporaryStore<T>(
    _ backend: StoreBackend = .sqlite, _ body: (any Store, TemporaryStoreLocation) async throws -> T
) async throws -> T {
    let directory = try TemporaryDirectory()
    defer { directory.remove() }
    var database: String?
    let location: String
    switch backend {
    case .sqlite:
        location = directory.path("sluice.db")
    case .postgres:
        let server = try #require(StoreBackend.postgresURL, "SLUICE_TEST_POSTGRES is not set")
        let name = "sluice_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try await PostgresAdmin.execute("CREATE DATABASE \(name)", server: server)
        database = name
        location = try PostgresAdmin.url(server, database: name)
    }
    let temporary = TemporaryStoreLocation(backend: backend, directory: directory, location: location)
    do {
        let store = try await temporary.open()
        do {
            let result = try await body(store, temporary)
            try await store.close()
            if let database { try await PostgresAdmin.execute("DROP DATABASE \(database) WITH (FORCE)", server: try #require(StoreBackend.postgresURL)) }
            return result
        } catch {
            try? await store.close()
            throw error
        }
    } catch {
        if let database, let server = StoreBackend.postgresURL { try? await PostgresAdmin.execute("DROP DATABASE \(database) WITH (FORCE)", server: server) }
        throw error
    }
}

/// Statements outside any Sluice database (creating and dropping the tests' databases).
enum PostgresAdmin {
    static func execute(_ sql: String, server: String) async throws {
        guard case .postgres(let address) = try StoreAddress.parse(server, environment: [:]) else { throw StoreAddressError.notPostgres }
        let connection = try await PostgresConnection.connect(
            configuration: .init(host: address.host, port: address.port, username: address.user, password: address.password, database: address.database, tls: .disable),
            id: 1, logger: Logger(label: "sluice-test")
        )
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "sluice-test"))
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// The first column of every row, as text.
    static func rows(_ sql: String, server: String) async throws -> [String] {
        guard case .postgres(let address) = try StoreAddress.parse(server, environment: [:]) else { throw StoreAddressError.notPostgres }
        let connection = try await PostgresConnection.connect(
            configuration: .init(host: address.host, port: address.port, username: address.user, password: address.password, database: address.database, tls: .disable),
            id: 2, logger: Logger(label: "sluice-test")
        )
        do {
            var result: [String] = []
            for try await value in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: Logger(label: "sluice-test")).decode(String.self) {
                result.append(value)
            }
            try await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// `server` with its database replaced by `database`.
    static func url(_ server: String, database: String) throws -> String {
        var components = try #require(URLComponents(string: server))
        components.path = "/" + database
        return try #require(components.string)
    }
}

extension StoreAddressError {
    static let notPostgres = StoreAddressError("SLUICE_TEST_POSTGRES is not a postgres:// URL")
}

@Suite
struct StoreConfigurationCheck {
    /// CI must run the store suite on PostgreSQL too: a missing server there is a failure, not a skip.
    @Test("under CI, SLUICE_TEST_POSTGRES is set, so the store suite runs on PostgreSQL as well", .enabled(if: ProcessInfo.processInfo.environment["CI"] != nil))
    func postgresConfigured() {
        #expect(StoreBackend.postgresURL != nil)
    }
}

@Suite
struct StoreTests {
    static func schemaVersion(_ store: any Store) async throws -> Int {
        switch store {
        case let sqlite as SQLiteStore: try await sqlite.currentSchemaVersion()
        case let postgres as PostgresStore: try await postgres.currentSchemaVersion()
        default: -1
        }
    }

    @Test("a new store gets the current schema version; reopening does not migrate again", arguments: StoreBackend.available)
    func migrations(_ backend: StoreBackend) async throws {
        try await withTemporaryStore(backend) { store, location in
            let current = backend == .sqlite ? SQLiteStore.schemaVersion : PostgresStore.schemaVersion
            #expect(try await Self.schemaVersion(store) == current)
            let again = try await location.open()
            #expect(try await Self.schemaVersion(again) == current)
            try await again.close()
        }
    }

    @Test("replicas starting together: one applies the migrations under the advisory lock, the others find them done", .enabled(if: StoreBackend.postgresURL != nil))
    func concurrentMigrations() async throws {
        try await withTemporaryStore(.postgres) { _, location in
            // The first store already migrated; drop everything so four replicas race on an empty database.
            try await PostgresAdmin.execute("DROP TABLE schema_version, tokens, counters, usage, responses, limit_counters, limit_holds", server: location.location)
            try await PostgresAdmin.execute("DROP FUNCTION sluice_tokens_changed(), sluice_limit_counts(TEXT[], BIGINT, BIGINT, BIGINT, DOUBLE PRECISION)", server: location.location)
            let versions = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let store = try await location.open()
                        let version = try await Self.schemaVersion(store)
                        try await store.close()
                        return version
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(versions == Array(repeating: PostgresStore.schemaVersion, count: 4))
            #expect(try await PostgresAdmin.rows("SELECT count(*)::text FROM schema_version", server: location.location) == ["\(PostgresStore.schemaVersion)"])
        }
    }

    @Test("store addresses: a file path, a postgres:// URL (password from the URL, SLUICE_DB_PASSWORD or a file), anything else refused")
    func addresses() throws {
        #expect(try StoreAddress.parse("/var/lib/sluice/sluice.db", environment: [:]) == .sqlite(path: "/var/lib/sluice/sluice.db"))
        #expect(try StoreAddress.parse("relative.db", environment: [:]) == .sqlite(path: "relative.db"))
        let full = try StoreAddress.parse("postgres://app:p%40ss%3Aw@db.internal:6432/sluice?sslmode=verify-full", environment: ["SLUICE_DB_PASSWORD": "other"])
        #expect(full == .postgres(PostgresAddress(host: "db.internal", port: 6432, user: "app", password: "p@ss:w", database: "sluice", tls: .verifyFull)))
        #expect(full.redacted == "postgres://app:***@db.internal:6432/sluice")
        #expect(try StoreAddress.parse("postgresql://app@db/sluice", environment: ["SLUICE_DB_PASSWORD": "fromenv"])
            == .postgres(PostgresAddress(host: "db", user: "app", password: "fromenv", database: "sluice")))
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try "fromfile\n".write(toFile: directory.path("pw"), atomically: true, encoding: .utf8)
        #expect(try StoreAddress.parse("postgres://app@db/sluice", environment: ["SLUICE_DB_PASSWORD_FILE": directory.path("pw")])
            == .postgres(PostgresAddress(host: "db", user: "app", password: "fromfile", database: "sluice")))
        for (bad, problem) in [
            ("mysql://app@db/sluice", "neither a file path nor a postgres:// URL"), ("file:///tmp/x.db", "neither"),
            ("postgres://db/sluice", "no user"), ("postgres://app@db/", "no database"), ("postgres://app@db/s?sslmode=maybe", "sslmode"),
            ("postgres://app@db/s?pool=3", "unknown parameter"),
        ] {
            #expect(throws: StoreAddressError.self, "\(bad)") { try StoreAddress.parse(bad, environment: [:]) }
            #expect((try? StoreAddress.parse(bad, environment: [:])) == nil)
            do {
                _ = try StoreAddress.parse(bad, environment: [:])
            } catch {
                #expect(error.description.contains(problem), "\(bad): \(error)")
            }
        }
    }

    @Test("a wrong password or an unreachable server stops start-up naming the server and the reason, never the password", .enabled(if: StoreBackend.postgresURL != nil))
    func unreachable() async throws {
        let server = try #require(StoreBackend.postgresURL)
        var components = try #require(URLComponents(string: server))
        components.password = "not-the-password-4711"
        let wrong = try #require(components.string)
        do {
            _ = try await StoreAddress.parse(wrong, environment: [:]).open(logger: Logger(label: "sluice-test"))
            Issue.record("a wrong password was accepted")
        } catch {
            let text = "\(error)"
            #expect(text.contains("password authentication failed"), "\(text)")
            #expect(!text.contains("not-the-password-4711"))
        }
        components.port = 1
        do {
            _ = try await StoreAddress.parse(try #require(components.string), environment: [:]).open(logger: Logger(label: "sluice-test"))
            Issue.record("an unreachable server was accepted")
        } catch {
            #expect("\(error)".contains("127.0.0.1:1") && "\(error)".contains("refused"), "\(error)")
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

    @Test("tokens: create, list, revoke by prefix and by identity; the change counter moves only on changes", arguments: StoreBackend.available)
    func tokenLifecycle(_ backend: StoreBackend) async throws {
        try await withTemporaryStore(backend) { store, _ in
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

    @Test("hashed at rest: the raw token is nowhere in the database", arguments: StoreBackend.available)
    func hashedAtRest(_ backend: StoreBackend) async throws {
        try await withTemporaryStore(backend) { store, location in
            var tokens: [String] = []
            for index in 0..<20 {
                let made = ClientToken.make(identity: "user\(index)", groups: ["g"], label: nil, ttl: .seconds(60), now: Date())
                try await store.insertToken(made.record)
                tokens.append(made.token)
            }
            var bytes = Data()
            switch backend {
            case .sqlite:
                for name in ["sluice.db", "sluice.db-wal", "sluice.db-shm"] {
                    bytes.append(FileManager.default.contents(atPath: location.directory.path(name)) ?? Data())
                }
            case .postgres:
                // Every column of every row, as PostgreSQL prints it (bytea as hex, so the digest too).
                for row in try await PostgresAdmin.rows("SELECT t::text FROM tokens t", server: location.location) { bytes.append(Data(row.utf8)) }
            }
            #expect(bytes.count > 0)
            for token in tokens {
                #expect(bytes.range(of: Data(token.utf8)) == nil)
                // Not even the secret part after the public prefix.
                #expect(bytes.range(of: Data(token.dropFirst("sk-sluice-".count + 8).utf8)) == nil)
            }
        }
    }

    @Test("two connections (server and CLI, or two replicas) share one store: a write on one is seen on the other", arguments: StoreBackend.available)
    func sharedStore(_ backend: StoreBackend) async throws {
        try await withTemporaryStore(backend) { server, location in
            let cli = try await location.open()
            let made = ClientToken.make(identity: "jane", groups: [], label: nil, ttl: nil, now: Date())
            let before = try await server.tokensVersion()
            try await cli.insertToken(made.record)
            #expect(try await server.tokensVersion() == before + 1)
            #expect(try await server.token(digest: made.record.digest)?.identity == "jane")
            try await cli.close()
        }
    }

    @Test("usage rows round-trip and are read back by time", arguments: StoreBackend.available)
    func usageRows(_ backend: StoreBackend) async throws {
        try await withTemporaryStore(backend) { store, _ in
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

    @Test("usage totals are summed in the database per key and per UTC hour or day; a window leaves out older rows", arguments: StoreBackend.available)
    func usageTotals(_ backend: StoreBackend) async throws {
        try await withTemporaryStore(backend) { store, _ in
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

    @Test("recent requests: newest first, filtered by identity and window, paged with the last row's id", arguments: StoreBackend.available)
    func recentRequests(_ backend: StoreBackend) async throws {
        try await withTemporaryStore(backend) { store, _ in
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

    /// `PostgresClient` waits without end for a connection while its server is unreachable, and a
    /// query sent as the server restarted once never answered: every call of the store is bounded.
    @Test("a PostgreSQL call that does not answer gives up after its time limit, and the abandoned wait is cancelled; one that answers in time returns its value")
    func boundedCall() async throws {
        let abandoned = CancellationSeen()
        let started = ContinuousClock.now
        await #expect(throws: PostgresStoreTimeout.self) {
            try await PostgresStore.bounded(within: .milliseconds(200)) {
                do {
                    // Stands for a wait for a connection: only cancellation ends it.
                    try await Task.sleep(for: .seconds(3600))
                } catch {
                    abandoned.seen.withLock { $0 = true }
                    throw error
                }
            }
        }
        // Far below the hour the call would take: in a full parallel test run the coarse timer
        // (``Deadlines``) fired up to 23 s late while CPU-heavy tests held the task pool's threads
        // (until they let other tasks run: see `decodeStream` in StreamCoreTests); 0.6–3 s since.
        print("bounded call: gave up after \(ContinuousClock.now - started) (bound 200 ms)")
        #expect(ContinuousClock.now - started < .seconds(120))
        let deadline = ContinuousClock.now + .seconds(60)
        while !abandoned.seen.withLock({ $0 }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(abandoned.seen.withLock { $0 }, "the abandoned call was not cancelled")
        #expect(try await PostgresStore.bounded(within: .seconds(5)) { 42 } == 42)
    }

    final class CancellationSeen: Sendable {
        let seen = Mutex(false)
    }

    @Test("row keys are version-4 UUIDs, all different")
    func rowKeys() {
        let keys = (0..<1000).map { _ in UUID.random() }
        #expect(Set(keys).count == keys.count)
        for key in keys {
            let text = key.uuidString
            #expect(Array(text)[14] == "4")
            #expect("89AB".contains(Array(text)[19]))
            #expect(UUID(uuidString: text) == key)
        }
    }

    @Test("concurrent usage rows all land (both stores write them in group commits); a row written twice is stored once", arguments: StoreBackend.available)
    func concurrentUsage(_ backend: StoreBackend) async throws {
        try await withTemporaryStore(backend) { store, _ in
            let start = Date(timeIntervalSince1970: 1_800_000_000)
            let records = (0..<200).map { index in
                UsageRecord(
                    timestamp: start.addingTimeInterval(Double(index) / 1000), requestID: "c\(index)", identity: "id\(index % 7)", tokenPrefix: "p",
                    groups: ["g"], route: "/v1/messages", requestedModel: "m", resolvedModel: "m", status: 200, finishReason: "end_turn",
                    usage: TokenUsage(inputTokens: index, outputTokens: 1), costUSD: 0.001, firstByteMilliseconds: nil, durationMilliseconds: 1
                )
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for record in records { group.addTask { try await store.recordUsage(record) } }
                try await group.waitForAll()
            }
            // A retried write (the first attempt may have landed after all) is not counted twice.
            try await store.recordUsage(records[17])
            let stored = try await store.usage(since: start)
            #expect(stored.count == 200)
            #expect(Set(stored.map(\.requestID)) == Set(records.map(\.requestID)))
            #expect(stored.map(\.usage.inputTokens).reduce(0, +) == (0..<200).reduce(0, +))
        }
    }

    @Test("kept responses: read back by id for their identity only, until they expire; saving one forgets the expired", arguments: StoreBackend.available)
    func responses(_ backend: StoreBackend) async throws {
        try await withTemporaryStore(backend) { store, _ in
            let start = Date(timeIntervalSince1970: 1_800_000_000)
            let items = ByteBuffer(string: #"[{"type":"message","role":"user","content":"hi"}]"#)
            try await store.saveResponse(StoredResponse(id: "resp_1", identity: "jane", createdAt: start, expiresAt: start.addingTimeInterval(60), items: items))
            #expect(try await store.storedResponse(id: "resp_1", identity: "jane", at: start.addingTimeInterval(30))?.items == items)
            #expect(try await store.storedResponse(id: "resp_1", identity: "bob", at: start) == nil)
            #expect(try await store.storedResponse(id: "resp_1", identity: "jane", at: start.addingTimeInterval(61)) == nil)
            // Saving again under the same id replaces it.
            let other = ByteBuffer(string: "[]")
            try await store.saveResponse(StoredResponse(id: "resp_1", identity: "jane", createdAt: start, expiresAt: start.addingTimeInterval(120), items: other))
            #expect(try await store.storedResponse(id: "resp_1", identity: "jane", at: start.addingTimeInterval(90))?.items == other)
            // A later save sweeps what has expired by its time.
            try await store.saveResponse(StoredResponse(id: "resp_2", identity: "jane", createdAt: start.addingTimeInterval(500), expiresAt: start.addingTimeInterval(600), items: other))
            #expect(try await store.storedResponse(id: "resp_1", identity: "jane", at: start) == nil)
        }
    }

    @Test("revoking by prefix never revokes an identity's tokens", arguments: StoreBackend.available)
    func revokeByPrefixOnly(_ backend: StoreBackend) async throws {
        try await withTemporaryStore(backend) { store, _ in
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

@Suite
struct SharedLimitTests {
    /// Two limiters on one database stand for two replicas.
    @Test("limits shared in PostgreSQL: two replicas admitting at once let exactly the limit through; tokens and reservations count across them", .enabled(if: StoreBackend.postgresURL != nil))
    func twoReplicas() async throws {
        try await withTemporaryStore(.postgres) { store, location in
            let other = try await location.open()
            let first = UsageLimiter(shared: try #require(store as? any SharedLimitStore))
            let second = UsageLimiter(shared: try #require(other as? any SharedLimitStore))
            let limits: [LimitScope: AccessPolicy.Limits] = [.group("eng"): .init(requestsPerMinute: 10)]
            let admitted = await withTaskGroup(of: Bool.self) { group in
                for index in 0..<30 {
                    let limiter = index % 2 == 0 ? first : second
                    group.addTask { await limiter.admission(limits).refusal == nil }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(admitted == 10)
            let refusal = try #require(await second.admission(limits).refusal)
            #expect(refusal.limit == "requests_per_minute" && refusal.gatewayError.status == 429)

            // Tokens per day with reservations: one replica's stream in flight holds its estimate
            // against the other's requests.
            let tokens: [LimitScope: AccessPolicy.Limits] = [.identity("jane"): .init(tokensPerDay: 1_000)]
            let hold = try #require(await first.admission(tokens, reserving: LimitEstimate(tokens: 600, costUSD: 0)).hold)
            let squeezed = try #require(await second.admission(tokens, reserving: LimitEstimate(tokens: 600, costUSD: 0)).refusal)
            #expect(squeezed.message.contains("reserved"))
            hold.settle(tokens: 1_200, costUSD: 0)
            // The charge lands in the background; then the day is spent for both.
            var spent: LimitRefusal?
            for _ in 0..<100 {
                spent = await second.admission(tokens, reserving: LimitEstimate(tokens: 1, costUSD: 0)).refusal
                if spent?.message.contains("reached") == true { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(spent?.limit == "tokens_per_day" && spent?.message.contains("reached") == true)
            try await other.close()
        }
    }

    @Test("shared limits with the database gone: closed refuses with 503, open admits uncounted", .enabled(if: StoreBackend.postgresURL != nil))
    func unavailable() async throws {
        try await withTemporaryStore(.postgres) { _, location in
            let store = try await location.open()
            let shared = try #require(store as? any SharedLimitStore)
            try await store.close()  // the pool is gone: every call fails, as with the server down
            let limits: [LimitScope: AccessPolicy.Limits] = [.group("eng"): .init(requestsPerMinute: 10)]
            let closed = try #require(await UsageLimiter(shared: shared, whenUnavailable: .closed).admission(limits).refusal)
            #expect(closed.gatewayError.status == 503 && closed.limit == "store_unavailable")
            #expect(await UsageLimiter(shared: shared, whenUnavailable: .open).admission(limits).refusal == nil)
        }
    }
}
