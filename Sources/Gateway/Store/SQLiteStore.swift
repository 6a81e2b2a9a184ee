package import Foundation
package import Logging
import NIOCore
import SQLiteNIO
import StreamCore

/// The embedded store: one SQLite file in WAL mode, shared safely by `sluice serve` and the CLI.
///
/// - WAL lets readers (the CLI's `token list`, `usage`) run while the server writes; `busy_timeout`
///   makes a writer wait for another process's write lock instead of failing.
/// - Durability: `synchronous=FULL`, so when ``recordUsage(_:)`` returns, the row is fsynced to the
///   WAL and survives `kill -9` or a power cut. Usage rows are group-committed (``GroupCommit``): the
///   rows that arrive while one insert is being written and fsynced go together in the next, as one
///   statement (its own transaction); a lone row goes at once. Under load an fsync, and a hop to the
///   store's thread, per request was most of the store's CPU (the row is written after the stream's
///   last chunk, before the response ends).
/// - All statements run on one dedicated thread, one after another. SQLite commits an implicit
///   transaction only when the connection's last active statement finishes; sharing the connection
///   between threads could let a concurrent read delay a write's commit past the moment we report it
///   durable.
package final class SQLiteStore: Store {
    /// The schema this build writes. Migrations run in order from the file's version up to this.
    package static var schemaVersion: Int { Self.migrations.count }

    private let connection: SQLiteConnection
    private let threadPool: NIOThreadPool
    package let path: String

    private init(connection: SQLiteConnection, threadPool: NIOThreadPool, path: String) {
        self.connection = connection
        self.threadPool = threadPool
        self.path = path
    }

    /// Opens (creating it and its directory if needed) and migrates the database at `path`.
    /// - Throws: ``SQLiteStoreError``, naming the file and what is wrong with it.
    package static func open(path: String, logger: Logger) async throws -> SQLiteStore {
        do {
            return try await Self.openFile(path: path, logger: logger)
        } catch let error as SQLiteStoreError {
            throw error
        } catch {
            throw SQLiteStoreError(path: path, error)
        }
    }

    private static func openFile(path: String, logger: Logger) async throws -> SQLiteStore {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw SQLiteStoreError(path: path, problem: "its folder \(directory) cannot be made")
            }
        }
        // A new file is readable by its owner only (the ledger names people; SQLite gives its -wal
        // and -shm files the same mode).
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        do {
            let connection = try await SQLiteConnection.open(
                storage: .file(path: path), threadPool: threadPool, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any()
            )
            let store = SQLiteStore(connection: connection, threadPool: threadPool, path: path)
            do {
                try await store.configure()
                try await store.migrate()
            } catch {
                try? await connection.close()
                throw error
            }
            return store
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
    }

    package func close() async throws {
        try await self.connection.close()
        try await self.threadPool.shutdownGracefully()
    }

    private func configure() async throws {
        // Wait up to 5 s for another process's lock (the CLI and the server share the file).
        _ = try await self.connection.query("PRAGMA busy_timeout = 5000")
        _ = try await self.connection.query("PRAGMA journal_mode = WAL")
        _ = try await self.connection.query("PRAGMA synchronous = FULL")
        _ = try await self.connection.query("PRAGMA foreign_keys = ON")
    }

    /// Versioned migrations, each applied once, in one write transaction so that two processes
    /// opening a new file at the same time cannot both apply them.
    private static let migrations: [[String]] = [
        // 1: tokens, a change counter for them, the usage ledger.
        [
            """
            CREATE TABLE tokens (
                id INTEGER PRIMARY KEY,
                prefix TEXT NOT NULL UNIQUE,
                digest BLOB NOT NULL UNIQUE,
                identity TEXT NOT NULL,
                groups TEXT NOT NULL,
                label TEXT,
                created_at REAL NOT NULL,
                expires_at REAL,
                revoked_at REAL,
                last_used_at REAL
            )
            """,
            "CREATE INDEX tokens_identity ON tokens(identity)",
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            "INSERT INTO counters (name, value) VALUES ('tokens_changed', 0)",
            // Servers poll this counter; `last_used_at` updates deliberately do not move it.
            """
            CREATE TRIGGER tokens_inserted AFTER INSERT ON tokens
            BEGIN UPDATE counters SET value = value + 1 WHERE name = 'tokens_changed'; END
            """,
            """
            CREATE TRIGGER tokens_updated AFTER UPDATE OF revoked_at, expires_at, identity, groups ON tokens
            BEGIN UPDATE counters SET value = value + 1 WHERE name = 'tokens_changed'; END
            """,
            """
            CREATE TRIGGER tokens_deleted AFTER DELETE ON tokens
            BEGIN UPDATE counters SET value = value + 1 WHERE name = 'tokens_changed'; END
            """,
            """
            CREATE TABLE usage (
                id INTEGER PRIMARY KEY,
                at REAL NOT NULL,
                request_id TEXT NOT NULL,
                identity TEXT NOT NULL,
                token_prefix TEXT NOT NULL,
                groups TEXT NOT NULL,
                route TEXT NOT NULL,
                model_requested TEXT NOT NULL,
                model_resolved TEXT NOT NULL,
                status INTEGER NOT NULL,
                finish_reason TEXT,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cache_read_tokens INTEGER NOT NULL,
                cache_write_tokens INTEGER NOT NULL,
                cost_usd REAL NOT NULL,
                first_byte_ms REAL,
                duration_ms REAL NOT NULL
            )
            """,
            "CREATE INDEX usage_at ON usage(at)",
        ],
        // 2: kept Responses API conversations (`responses.store`).
        [
            """
            CREATE TABLE responses (
                id TEXT PRIMARY KEY,
                identity TEXT NOT NULL,
                created_at REAL NOT NULL,
                expires_at REAL NOT NULL,
                items BLOB NOT NULL
            )
            """,
            "CREATE INDEX responses_expires_at ON responses(expires_at)",
        ],
        // 3: the upstream that served each request (`upstreams`).
        ["ALTER TABLE usage ADD COLUMN upstream TEXT"],
        // 4: the console's recent requests of one identity, newest first.
        ["CREATE INDEX usage_identity ON usage(identity, id)"],
        // 5: a key per row, so a write retried after a timeout lands once.
        ["ALTER TABLE usage ADD COLUMN row_key TEXT", "CREATE UNIQUE INDEX usage_row_key ON usage(row_key)"],
    ]

    private func migrate() async throws {
        _ = try await self.connection.query("BEGIN IMMEDIATE")
        do {
            _ = try await self.connection.query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            let rows = try await self.connection.query("SELECT coalesce(max(version), 0) AS version FROM schema_version")
            let current = rows.first?.column("version")?.integer ?? 0
            guard current <= Self.migrations.count else {
                throw StoreError.unsupportedSchema(found: current, supported: Self.migrations.count)
            }
            for (index, statements) in Self.migrations.enumerated().dropFirst(current) {
                for statement in statements {
                    _ = try await self.connection.query(statement)
                }
                _ = try await self.connection.query("INSERT INTO schema_version (version) VALUES (?)", [.integer(index + 1)])
            }
            _ = try await self.connection.query("COMMIT")
        } catch {
            _ = try? await self.connection.query("ROLLBACK")
            throw error
        }
    }

    /// The schema version recorded in the file.
    package func currentSchemaVersion() async throws -> Int {
        let rows = try await self.connection.query("SELECT coalesce(max(version), 0) AS version FROM schema_version")
        return rows.first?.column("version")?.integer ?? 0
    }

    // MARK: Tokens

    package func insertToken(_ token: TokenRecord) async throws {
        do {
            _ = try await self.connection.query(
                """
                INSERT INTO tokens (prefix, digest, identity, groups, label, created_at, expires_at, revoked_at, last_used_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(token.prefix), .blob(ByteBuffer(bytes: token.digest)), .text(token.identity), .text(Self.joinGroups(token.groups)),
                    token.label.map { .text($0) } ?? .null, .float(token.createdAt.timeIntervalSince1970), Self.date(token.expiresAt),
                    Self.date(token.revokedAt), Self.date(token.lastUsedAt),
                ]
            )
        } catch let error as SQLiteError where error.reason == .constraintUniqueFailed || error.reason == .constraint {
            throw StoreError.duplicatePrefix
        }
    }

    package func tokens() async throws -> [TokenRecord] {
        try await self.connection.query("SELECT * FROM tokens ORDER BY created_at DESC, id DESC").map(Self.token(from:))
    }

    package func token(digest: [UInt8]) async throws -> TokenRecord? {
        try await self.connection.query("SELECT * FROM tokens WHERE digest = ?", [.blob(ByteBuffer(bytes: digest))]).first.map(Self.token(from:))
    }

    package func revokeTokens(matching selector: String, at date: Date) async throws -> [String] {
        let rows = try await self.connection.query(
            "UPDATE tokens SET revoked_at = ? WHERE revoked_at IS NULL AND (prefix = ? OR identity = ?) RETURNING prefix",
            [.float(date.timeIntervalSince1970), .text(selector), .text(selector)]
        )
        return rows.compactMap { $0.column("prefix")?.string }.sorted()
    }

    package func revokeToken(prefix: String, at date: Date) async throws -> Bool {
        let rows = try await self.connection.query(
            "UPDATE tokens SET revoked_at = ? WHERE revoked_at IS NULL AND prefix = ? RETURNING prefix",
            [.float(date.timeIntervalSince1970), .text(prefix)]
        )
        return !rows.isEmpty
    }

    package func tokensVersion() async throws -> Int64 {
        let rows = try await self.connection.query("SELECT value FROM counters WHERE name = 'tokens_changed'")
        return Int64(rows.first?.column("value")?.integer ?? 0)
    }

    package func markTokensUsed(_ lastUsed: [String: Date]) async throws {
        for (prefix, date) in lastUsed {
            _ = try await self.connection.query(
                "UPDATE tokens SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE prefix = ?",
                [.float(date.timeIntervalSince1970), .text(prefix)]
            )
        }
    }

    private static func token(from row: SQLiteRow) throws -> TokenRecord {
        guard let prefix = row.column("prefix")?.string, let digest = row.column("digest")?.blob,
            let identity = row.column("identity")?.string, let groups = row.column("groups")?.string,
            let created = row.column("created_at")?.double
        else { throw StoreError.corruptRow("tokens") }
        return TokenRecord(
            prefix: prefix, digest: Array(digest.readableBytesView), identity: identity, groups: Self.splitGroups(groups),
            label: row.column("label")?.string, createdAt: Date(timeIntervalSince1970: created),
            expiresAt: Self.date(row.column("expires_at")), revokedAt: Self.date(row.column("revoked_at")),
            lastUsedAt: Self.date(row.column("last_used_at"))
        )
    }

    // MARK: Usage

    package func recordUsage(_ record: UsageRecord) async throws {
        try await self.usageRows.commit(record) { try await self.insert($0) }
    }

    package func recordUsage(_ record: UsageRecord, then done: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        self.usageRows.submit(record, write: { try await self.insert($0) }, done: done)
    }

    /// Rows per statement: 19 parameters each, far under SQLite's 32,766.
    private let usageRows = GroupCommit<UsageRecord>(maximumBatch: 200)

    /// One autocommit statement for all of `records`: with synchronous=FULL it returns after the WAL
    /// is fsynced. (One statement, not BEGIN … COMMIT around several: another task's statement on the
    /// shared connection could otherwise run inside the transaction and be reported durable early.)
    private func insert(_ records: [UsageRecord]) async throws {
        var binds: [SQLiteData] = []
        binds.reserveCapacity(records.count * 19)
        for record in records {
            binds += [
                .float(record.timestamp.timeIntervalSince1970), .text(record.requestID), .text(record.identity), .text(record.tokenPrefix),
                .text(Self.joinGroups(record.groups)), .text(record.route), .text(record.requestedModel), .text(record.resolvedModel),
                .integer(record.status), record.finishReason.map { .text($0) } ?? .null, .integer(record.usage.inputTokens),
                .integer(record.usage.outputTokens), .integer(record.usage.cacheReadInputTokens), .integer(record.usage.cacheWriteInputTokens),
                .float(record.costUSD), record.firstByteMilliseconds.map { .float($0) } ?? .null, .float(record.durationMilliseconds),
                record.upstream.map { .text($0) } ?? .null, .text(record.rowKey.uuidString),
            ]
        }
        let row = "(" + Array(repeating: "?", count: 19).joined(separator: ", ") + ")"
        _ = try await self.connection.query(
            """
            INSERT INTO usage (at, request_id, identity, token_prefix, groups, route, model_requested, model_resolved, status,
                finish_reason, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, first_byte_ms, duration_ms, upstream, row_key)
            VALUES \(Array(repeating: row, count: records.count).joined(separator: ", "))
            ON CONFLICT (row_key) DO NOTHING
            """,
            binds
        )
    }

    package func usage(since: Date) async throws -> [UsageRecord] {
        let rows = try await self.connection.query("SELECT * FROM usage WHERE at >= ? ORDER BY at, id", [.float(since.timeIntervalSince1970)])
        return try rows.map(Self.usageRecord(from:))
    }

    package func usageTotals(since: Date, bucketSeconds: Int?) async throws -> [UsageTotal] {
        // Timestamps are positive, so the integer cast is the floor: a bucket starts on a whole
        // multiple of its length in UTC.
        let bucket = bucketSeconds.map { "CAST(at / \($0) AS INTEGER) * \($0)" } ?? "NULL"
        let rows = try await self.connection.query(
            """
            SELECT identity, groups, model_resolved, upstream, \(bucket) AS bucket, count(*) AS requests,
                sum(input_tokens) AS input, sum(output_tokens) AS output, sum(cache_read_tokens) AS cache_read,
                sum(cache_write_tokens) AS cache_write, sum(cost_usd) AS cost
            FROM usage WHERE at >= ? GROUP BY identity, groups, model_resolved, upstream, bucket
            """,
            [.float(since.timeIntervalSince1970)]
        )
        return try rows.map { row in
            guard let identity = row.column("identity")?.string, let groups = row.column("groups")?.string,
                let model = row.column("model_resolved")?.string, let requests = row.column("requests")?.integer
            else { throw StoreError.corruptRow("usage") }
            let bucket = row.column("bucket").flatMap { $0.isNull ? nil : $0.double }
            return UsageTotal(
                identity: identity, groups: Self.splitGroups(groups), resolvedModel: model, upstream: row.column("upstream")?.string,
                bucket: bucket.map { Date(timeIntervalSince1970: $0) }, requests: requests,
                usage: TokenUsage(
                    inputTokens: row.column("input")?.integer ?? 0, outputTokens: row.column("output")?.integer ?? 0,
                    cacheReadInputTokens: row.column("cache_read")?.integer ?? 0, cacheWriteInputTokens: row.column("cache_write")?.integer ?? 0
                ),
                costUSD: row.column("cost")?.double ?? 0
            )
        }
    }

    package func recentRequests(_ query: RequestQuery) async throws -> [LedgerEntry] {
        var sql = "SELECT * FROM usage WHERE at >= ?"
        var binds: [SQLiteData] = [.float(query.since.timeIntervalSince1970)]
        if let identity = query.identity {
            sql += " AND identity = ?"
            binds.append(.text(identity))
        }
        if let before = query.before {
            sql += " AND id < ?"
            binds.append(.integer(Int(before)))
        }
        sql += " ORDER BY id DESC LIMIT ?"
        binds.append(.integer(query.limit))
        return try await self.connection.query(sql, binds).map { row in
            guard let id = row.column("id")?.integer else { throw StoreError.corruptRow("usage") }
            return LedgerEntry(id: Int64(id), record: try Self.usageRecord(from: row))
        }
    }

    private static func usageRecord(from row: SQLiteRow) throws -> UsageRecord {
        guard let at = row.column("at")?.double, let requestID = row.column("request_id")?.string,
            let identity = row.column("identity")?.string, let prefix = row.column("token_prefix")?.string,
            let groups = row.column("groups")?.string, let route = row.column("route")?.string,
            let requested = row.column("model_requested")?.string, let resolved = row.column("model_resolved")?.string,
            let status = row.column("status")?.integer, let duration = row.column("duration_ms")?.double
        else { throw StoreError.corruptRow("usage") }
        return UsageRecord(
            timestamp: Date(timeIntervalSince1970: at), requestID: requestID, identity: identity, tokenPrefix: prefix,
            groups: Self.splitGroups(groups), route: route, requestedModel: requested, resolvedModel: resolved, status: status,
            finishReason: row.column("finish_reason")?.string,
            usage: TokenUsage(
                inputTokens: row.column("input_tokens")?.integer ?? 0, outputTokens: row.column("output_tokens")?.integer ?? 0,
                cacheReadInputTokens: row.column("cache_read_tokens")?.integer ?? 0,
                cacheWriteInputTokens: row.column("cache_write_tokens")?.integer ?? 0
            ),
            costUSD: row.column("cost_usd")?.double ?? 0, firstByteMilliseconds: row.column("first_byte_ms")?.double,
            durationMilliseconds: duration, upstream: row.column("upstream")?.string,
            rowKey: row.column("row_key")?.string.flatMap(UUID.init(uuidString:)) ?? UUID()
        )
    }

    // MARK: Responses

    package func saveResponse(_ response: StoredResponse) async throws {
        _ = try await self.connection.query("DELETE FROM responses WHERE expires_at < ?", [.float(response.createdAt.timeIntervalSince1970)])
        _ = try await self.connection.query(
            "INSERT OR REPLACE INTO responses (id, identity, created_at, expires_at, items) VALUES (?, ?, ?, ?, ?)",
            [
                .text(response.id), .text(response.identity), .float(response.createdAt.timeIntervalSince1970),
                .float(response.expiresAt.timeIntervalSince1970), .blob(response.items),
            ]
        )
    }

    package func storedResponse(id: String, identity: String, at now: Date) async throws -> StoredResponse? {
        let rows = try await self.connection.query(
            "SELECT * FROM responses WHERE id = ? AND identity = ? AND expires_at >= ?",
            [.text(id), .text(identity), .float(now.timeIntervalSince1970)]
        )
        guard let row = rows.first else { return nil }
        guard let created = row.column("created_at")?.double, let expires = row.column("expires_at")?.double,
            let items = row.column("items")?.blob
        else { throw StoreError.corruptRow("responses") }
        return StoredResponse(
            id: id, identity: identity, createdAt: Date(timeIntervalSince1970: created), expiresAt: Date(timeIntervalSince1970: expires),
            items: items
        )
    }

    // MARK: Encoding

    /// Groups are stored as one comma-separated text; group names never contain commas (the CLI
    /// refuses them).
    private static func joinGroups(_ groups: [String]) -> String { groups.joined(separator: ",") }
    private static func splitGroups(_ text: String) -> [String] { text.split(separator: ",").map(String.init) }

    private static func date(_ date: Date?) -> SQLiteData {
        date.map { .float($0.timeIntervalSince1970) } ?? .null
    }

    private static func date(_ data: SQLiteData?) -> Date? {
        guard let data, !data.isNull, let seconds = data.double else { return nil }
        return Date(timeIntervalSince1970: seconds)
    }
}

/// Why the SQLite store could not be opened, for the person starting the gateway: the file and what
/// is wrong with it, not SQLite's bare result code.
package struct SQLiteStoreError: Error, CustomStringConvertible {
    package var description: String

    init(path: String, problem: String) {
        self.description = "cannot use the SQLite store \(path): \(problem)"
    }

    init(path: String, _ error: any Error) {
        let problem: String
        switch (error as? SQLiteError)?.reason {
        case .cantOpen: problem = "it cannot be opened (a folder, or a file or folder this user may not write?)"
        case .notADatabase: problem = "the file is not a SQLite database"
        case .readOnly, .permission: problem = "this user may not write it"
        case .busy, .locked: problem = "another process holds it locked"
        default: problem = "\(error)"
        }
        self.init(path: path, problem: problem)
    }
}
