package import Foundation
package import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import StreamCore
import Synchronization

/// The shared store: one PostgreSQL database for several Sluice replicas, with the same data as
/// ``SQLiteStore`` (tokens by digest only, the usage ledger, kept responses).
///
/// - Pooled connections (postgres-nio's `PostgresClient`), every statement with bound parameters.
/// - Versioned migrations, applied in one transaction under an advisory lock by whichever replica
///   starts first; the others wait for the lock and find the schema current.
/// - Durability: every write is its own transaction; PostgreSQL's default `synchronous_commit = on`
///   makes a usage row durable when ``recordUsage(_:)`` returns, as on SQLite.
/// - Token changes move the `tokens_changed` counter (the replicas' 1-second poll) and also `NOTIFY
///   sluice_tokens`, so a listener can reload at once.
package final class PostgresStore: Store {
    package static var schemaVersion: Int { Self.migrations.count }
    /// `pg_advisory_xact_lock` key of the migrations ("sluice" in ASCII).
    static let migrationLock: Int64 = 0x736C_7569_6365

    let client: PostgresClient
    package let address: PostgresAddress
    private let runner: Task<Void, Never>
    /// Usage rows: one statement per group commit, 19 parameters a row, well under PostgreSQL's 65,535.
    private let usageRows = GroupCommit<UsageRecord>(maximumBatch: 500)
    fileprivate let logger: Logger

    private init(client: PostgresClient, address: PostgresAddress, logger: Logger) {
        self.client = client
        self.address = address
        self.logger = logger
        self.runner = Task { await client.run() }
    }

    /// Connects and migrates. Fails (naming the server, never the password) when the server cannot
    /// be reached or refuses the credentials.
    package static func open(_ address: PostgresAddress, logger: Logger, maximumConnections: Int = 20) async throws -> PostgresStore {
        var configuration = PostgresClient.Configuration(
            host: address.host, port: address.port, username: address.user, password: address.password, database: address.database,
            tls: Self.tls(address.tls)
        )
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        // The first connection is made directly, not through the pool: its error says what went
        // wrong (refused, unknown host, bad password), where the pool only reports that it gave up.
        do {
            let connection = try await Self.connect(address, id: 0, logger: logger)
            do {
                try await Self.migrate(connection, logger: logger)
                try await connection.close()
            } catch {
                try? await connection.close()
                throw error
            }
        } catch {
            throw PostgresStoreError(address: address, error)
        }
        return PostgresStore(client: PostgresClient(configuration: configuration, backgroundLogger: logger), address: address, logger: logger)
    }

    /// A connection of its own, outside the pool (migrations, LISTEN).
    fileprivate static func connect(_ address: PostgresAddress, id: Int, logger: Logger) async throws -> PostgresConnection {
        try await PostgresConnection.connect(
            configuration: .init(
                host: address.host, port: address.port, username: address.user, password: address.password, database: address.database,
                tls: try Self.connectionTLS(address.tls)
            ),
            id: id, logger: logger
        )
    }

    private static func connectionTLS(_ mode: PostgresAddress.TLSMode) throws -> PostgresConnection.Configuration.TLS {
        var unverified = TLSConfiguration.makeClientConfiguration()
        unverified.certificateVerification = .none
        switch mode {
        case .disable: return .disable
        case .prefer: return .prefer(try NIOSSLContext(configuration: unverified))
        case .require: return .require(try NIOSSLContext(configuration: unverified))
        case .verifyFull: return .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
    }

    private static func tls(_ mode: PostgresAddress.TLSMode) -> PostgresClient.Configuration.TLS {
        var unverified = TLSConfiguration.makeClientConfiguration()
        unverified.certificateVerification = .none
        switch mode {
        case .disable: return .disable
        case .prefer: return .prefer(unverified)
        case .require: return .require(unverified)
        case .verifyFull: return .require(.makeClientConfiguration())
        }
    }

    package func close() async throws {
        self.runner.cancel()
        await self.runner.value
    }

    // MARK: Schema

    /// Times are seconds since 1970 as `double precision`, as in the SQLite file, so both stores
    /// share one row format and one set of queries' meaning.
    private static let migrations: [[String]] = [
        [
            """
            CREATE TABLE tokens (
                id BIGSERIAL PRIMARY KEY,
                prefix TEXT NOT NULL UNIQUE,
                digest BYTEA NOT NULL UNIQUE,
                identity TEXT NOT NULL,
                groups TEXT NOT NULL,
                label TEXT,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION,
                revoked_at DOUBLE PRECISION,
                last_used_at DOUBLE PRECISION
            )
            """,
            "CREATE INDEX tokens_identity ON tokens(identity)",
            "CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
            "INSERT INTO counters (name, value) VALUES ('tokens_changed', 0)",
            // Replicas poll the counter; `last_used_at` updates deliberately do not move it.
            """
            CREATE FUNCTION sluice_tokens_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE counters SET value = value + 1 WHERE name = 'tokens_changed';
                PERFORM pg_notify('sluice_tokens', '');
                RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER tokens_changed AFTER INSERT OR DELETE OR UPDATE OF revoked_at, expires_at, identity, groups ON tokens
            FOR EACH ROW EXECUTE FUNCTION sluice_tokens_changed()
            """,
            """
            CREATE TABLE usage (
                id BIGSERIAL PRIMARY KEY,
                at DOUBLE PRECISION NOT NULL,
                request_id TEXT NOT NULL,
                identity TEXT NOT NULL,
                token_prefix TEXT NOT NULL,
                groups TEXT NOT NULL,
                route TEXT NOT NULL,
                model_requested TEXT NOT NULL,
                model_resolved TEXT NOT NULL,
                status INTEGER NOT NULL,
                finish_reason TEXT,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                cache_read_tokens BIGINT NOT NULL,
                cache_write_tokens BIGINT NOT NULL,
                cost_usd DOUBLE PRECISION NOT NULL,
                first_byte_ms DOUBLE PRECISION,
                duration_ms DOUBLE PRECISION NOT NULL,
                upstream TEXT,
                row_key UUID UNIQUE
            )
            """,
            "CREATE INDEX usage_at ON usage(at)",
            "CREATE INDEX usage_identity ON usage(identity, id)",
            """
            CREATE TABLE responses (
                id TEXT PRIMARY KEY,
                identity TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                items BYTEA NOT NULL
            )
            """,
            "CREATE INDEX responses_expires_at ON responses(expires_at)",
        ],
        // 2: limits shared by the replicas (SharedLimitStore).
        [
            """
            CREATE TABLE limit_counters (
                scope TEXT NOT NULL,
                kind SMALLINT NOT NULL,
                slot BIGINT NOT NULL,
                amount DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (scope, kind, slot)
            )
            """,
            """
            CREATE TABLE limit_holds (
                id UUID NOT NULL,
                scope TEXT NOT NULL,
                tokens BIGINT NOT NULL,
                usd DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (id, scope)
            )
            """,
            "CREATE INDEX limit_holds_scope ON limit_holds(scope, expires_at)",
            // Locks the scopes (in one order for every caller: no deadlock) and then reads their
            // counts, in one round trip. In a function each statement takes a new snapshot, so the
            // read sees everything committed before the lock was granted; in one plain statement
            // the snapshot would predate the lock.
            """
            CREATE FUNCTION sluice_limit_counts(scopes TEXT[], oldest BIGINT, today BIGINT, this_month BIGINT, now DOUBLE PRECISION)
            RETURNS TABLE (scope TEXT, kind SMALLINT, slot BIGINT, amount DOUBLE PRECISION)
            LANGUAGE plpgsql AS $$
            DECLARE
                name TEXT;
            BEGIN
                FOR name IN SELECT DISTINCT s FROM unnest(scopes) AS s ORDER BY s LOOP
                    PERFORM pg_advisory_xact_lock(hashtextextended(name, 7));
                END LOOP;
                RETURN QUERY
                    SELECT c.scope, c.kind, c.slot, c.amount FROM limit_counters c WHERE c.scope = ANY(scopes) AND (
                        (c.kind IN (1, 2) AND c.slot >= oldest) OR (c.kind = 3 AND c.slot = today) OR (c.kind = 4 AND c.slot = this_month))
                    UNION ALL
                    -- kind 0: the reservations in flight, as count, tokens (slot) and USD.
                    SELECT h.scope, 0::smallint, sum(h.tokens)::bigint, count(*)::double precision FROM limit_holds h
                    WHERE h.scope = ANY(scopes) AND h.expires_at > now GROUP BY h.scope
                    UNION ALL
                    SELECT h.scope, -1::smallint, 0::bigint, sum(h.usd) FROM limit_holds h
                    WHERE h.scope = ANY(scopes) AND h.expires_at > now GROUP BY h.scope;
            END $$
            """,
        ],
    ]

    private static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            try await connection.query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", logger: logger)
            var current = 0
            for try await version in try await connection.query("SELECT coalesce(max(version), 0) FROM schema_version", logger: logger)
                .decode(Int.self)
            {
                current = version
            }
            guard current <= Self.migrations.count else {
                throw StoreError.unsupportedSchema(found: current, supported: Self.migrations.count)
            }
            for (index, statements) in Self.migrations.enumerated().dropFirst(current) {
                for statement in statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO schema_version (version) VALUES (\(index + 1))", logger: logger)
            }
        }
    }

    package func currentSchemaVersion() async throws -> Int {
        try await self.first("SELECT coalesce(max(version), 0) AS version FROM schema_version") { try $0["version"].decode(Int.self) } ?? 0
    }

    // MARK: Queries

    /// The rows of `query`, each read by name.
    private func rows<T: Sendable>(_ query: PostgresQuery, _ read: @escaping @Sendable (PostgresRandomAccessRow) throws -> T) async throws -> [T] {
        try await self.bounded {
            var result: [T] = []
            for try await row in try await self.client.query(query, logger: self.logger) {
                result.append(try read(row.makeRandomAccess()))
            }
            return result
        }
    }

    /// Runs a statement and waits for PostgreSQL's confirmation: `query` returns once the statement
    /// is under way, and its failure (a lost connection before the commit) arrives only through the
    /// rows, so a write that is not drained could be reported durable and then be lost.
    fileprivate func execute(_ query: PostgresQuery) async throws {
        try await self.bounded {
            for try await _ in try await self.client.query(query, logger: self.logger) {}
        }
    }

    /// How long one call of the store may take. `PostgresClient` waits without end: for a connection
    /// while the server is unreachable (by design: it keeps trying), and once for a query sent as
    /// the server restarted, which never answered (the e2e restart test, about one run in fifteen:
    /// that replica's ledger writes queued behind it for good). A call past this throws
    /// ``PostgresStoreTimeout``: the ledger queues its row, the limits answer as `whenUnavailable`
    /// says, and the next call starts afresh.
    static let operationLimit: Duration = .seconds(10)

    /// Runs `operation` within ``operationLimit``.
    private func bounded<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await Self.bounded(within: Self.operationLimit, operation)
        } catch let timeout as PostgresStoreTimeout {
            self.logger.warning("a PostgreSQL call did not answer within its time limit: abandoned", metadata: ["store.limit": "\(timeout.limit)"])
            throw timeout
        }
    }

    /// Runs `operation` within `limit`. Past it the operation is cancelled, which ends a wait for a
    /// connection; a query already sent cannot be recalled and is left to end with its connection
    /// (a write that lands late is kept once: usage rows have a unique key).
    package static func bounded<T: Sendable>(within limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let work = Task { () async -> Result<T, any Error> in
            do {
                return .success(try await operation())
            } catch {
                return .failure(error)
            }
        }
        let outcome = await withTaskCancellationHandler {
            await BoundedWait<Result<T, any Error>>.value(of: { await work.value }, within: limit)
        } onCancel: {
            work.cancel()
        }
        guard let outcome else {
            work.cancel()
            throw PostgresStoreTimeout(limit: limit)
        }
        return try outcome.get()
    }

    private func first<T: Sendable>(_ query: PostgresQuery, _ read: @escaping @Sendable (PostgresRandomAccessRow) throws -> T) async throws -> T? {
        try await self.rows(query, read).first
    }

    // MARK: Tokens

    package func insertToken(_ token: TokenRecord) async throws {
        do {
            try await self.execute(
                """
                INSERT INTO tokens (prefix, digest, identity, groups, label, created_at, expires_at, revoked_at, last_used_at)
                VALUES (\(token.prefix), \(ByteBuffer(bytes: token.digest)), \(token.identity), \(Self.joinGroups(token.groups)), \(token.label),
                    \(token.createdAt.timeIntervalSince1970), \(token.expiresAt?.timeIntervalSince1970), \(token.revokedAt?.timeIntervalSince1970),
                    \(token.lastUsedAt?.timeIntervalSince1970))
                """
            )
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StoreError.duplicatePrefix
        }
    }

    package func tokens() async throws -> [TokenRecord] {
        try await self.rows("SELECT * FROM tokens ORDER BY created_at DESC, id DESC", Self.token(from:))
    }

    package func token(digest: [UInt8]) async throws -> TokenRecord? {
        try await self.first("SELECT * FROM tokens WHERE digest = \(ByteBuffer(bytes: digest))", Self.token(from:))
    }

    package func revokeTokens(matching selector: String, at date: Date) async throws -> [String] {
        try await self.rows(
            """
            UPDATE tokens SET revoked_at = \(date.timeIntervalSince1970)
            WHERE revoked_at IS NULL AND (prefix = \(selector) OR identity = \(selector)) RETURNING prefix
            """
        ) { try $0["prefix"].decode(String.self) }.sorted()
    }

    package func revokeToken(prefix: String, at date: Date) async throws -> Bool {
        try await !self.rows(
            "UPDATE tokens SET revoked_at = \(date.timeIntervalSince1970) WHERE revoked_at IS NULL AND prefix = \(prefix) RETURNING prefix"
        ) { try $0["prefix"].decode(String.self) }.isEmpty
    }

    package func tokensVersion() async throws -> Int64 {
        try await self.first("SELECT value FROM counters WHERE name = 'tokens_changed'") { try $0["value"].decode(Int64.self) } ?? 0
    }

    package func markTokensUsed(_ lastUsed: [String: Date]) async throws {
        guard !lastUsed.isEmpty else { return }
        // One statement for the whole batch: two arrays unnested side by side.
        let prefixes = Array(lastUsed.keys)
        let times = prefixes.map { lastUsed[$0]?.timeIntervalSince1970 ?? 0 }
        try await self.execute(
            """
            UPDATE tokens SET last_used_at = greatest(coalesce(tokens.last_used_at, 0), used.at)
            FROM unnest(\(prefixes)::text[], \(times)::double precision[]) AS used(prefix, at) WHERE tokens.prefix = used.prefix
            """
        )
    }

    private static func token(from row: PostgresRandomAccessRow) throws -> TokenRecord {
        TokenRecord(
            prefix: try row["prefix"].decode(String.self), digest: Array(try row["digest"].decode(ByteBuffer.self).readableBytesView),
            identity: try row["identity"].decode(String.self), groups: Self.splitGroups(try row["groups"].decode(String.self)),
            label: try row["label"].decode(String?.self), createdAt: Date(timeIntervalSince1970: try row["created_at"].decode(Double.self)),
            expiresAt: try Self.date(row["expires_at"]), revokedAt: try Self.date(row["revoked_at"]), lastUsedAt: try Self.date(row["last_used_at"])
        )
    }

    // MARK: Usage

    /// Group commit (``GroupCommit``): returns when this row is committed.
    package func recordUsage(_ record: UsageRecord) async throws {
        try await self.usageRows.commit(record) { try await self.insert($0) }
    }

    package func recordUsage(_ record: UsageRecord, then done: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        self.usageRows.submit(record, write: { try await self.insert($0) }, done: done)
    }

    private func insert(_ records: [UsageRecord]) async throws {
        var binds = PostgresBindings(capacity: records.count * 19)
        var values: [String] = []
        values.reserveCapacity(records.count)
        for record in records {
            let first = binds.count + 1
            binds.append(record.timestamp.timeIntervalSince1970)
            binds.append(record.requestID)
            binds.append(record.identity)
            binds.append(record.tokenPrefix)
            binds.append(Self.joinGroups(record.groups))
            binds.append(record.route)
            binds.append(record.requestedModel)
            binds.append(record.resolvedModel)
            binds.append(record.status)
            binds.append(record.finishReason)
            binds.append(record.usage.inputTokens)
            binds.append(record.usage.outputTokens)
            binds.append(record.usage.cacheReadInputTokens)
            binds.append(record.usage.cacheWriteInputTokens)
            binds.append(record.costUSD)
            binds.append(record.firstByteMilliseconds)
            binds.append(record.durationMilliseconds)
            binds.append(record.upstream)
            binds.append(record.rowKey)
            values.append("(" + (first..<first + 19).map { "$\($0)" }.joined(separator: ",") + ")")
        }
        try await self.execute(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO usage (at, request_id, identity, token_prefix, groups, route, model_requested, model_resolved, status,
                        finish_reason, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, first_byte_ms, duration_ms,
                        upstream, row_key)
                    VALUES \(values.joined(separator: ","))
                    ON CONFLICT (row_key) DO NOTHING
                    """,
                binds: binds
            )
        )
    }

    package func usage(since: Date) async throws -> [UsageRecord] {
        try await self.rows("SELECT * FROM usage WHERE at >= \(since.timeIntervalSince1970) ORDER BY at, id", Self.usageRecord(from:))
    }

    package func usageTotals(since: Date, bucketSeconds: Int?) async throws -> [UsageTotal] {
        // The bucket is a whole multiple of its length in UTC, as on SQLite.
        let bucket = bucketSeconds.map { "floor(at / \($0)) * \($0)" } ?? "NULL::double precision"
        var binds = PostgresBindings()
        binds.append(since.timeIntervalSince1970)
        let query = PostgresQuery(
            unsafeSQL: """
                SELECT identity, groups, model_resolved, upstream, \(bucket) AS bucket, count(*) AS requests,
                    sum(input_tokens)::bigint AS input, sum(output_tokens)::bigint AS output, sum(cache_read_tokens)::bigint AS cache_read,
                    sum(cache_write_tokens)::bigint AS cache_write, sum(cost_usd) AS cost
                FROM usage WHERE at >= $1 GROUP BY identity, groups, model_resolved, upstream, 5
                """,
            binds: binds
        )
        return try await self.rows(query) { row in
            UsageTotal(
                identity: try row["identity"].decode(String.self), groups: Self.splitGroups(try row["groups"].decode(String.self)),
                resolvedModel: try row["model_resolved"].decode(String.self), upstream: try row["upstream"].decode(String?.self),
                bucket: try row["bucket"].decode(Double?.self).map { Date(timeIntervalSince1970: $0) }, requests: try row["requests"].decode(Int.self),
                usage: TokenUsage(
                    inputTokens: try row["input"].decode(Int.self), outputTokens: try row["output"].decode(Int.self),
                    cacheReadInputTokens: try row["cache_read"].decode(Int.self), cacheWriteInputTokens: try row["cache_write"].decode(Int.self)
                ),
                costUSD: try row["cost"].decode(Double.self)
            )
        }
    }

    package func recentRequests(_ query: RequestQuery) async throws -> [LedgerEntry] {
        var binds = PostgresBindings()
        binds.append(query.since.timeIntervalSince1970)
        var sql = "SELECT * FROM usage WHERE at >= $1"
        if let identity = query.identity {
            binds.append(identity)
            sql += " AND identity = $\(binds.count)"
        }
        if let before = query.before {
            binds.append(before)
            sql += " AND id < $\(binds.count)"
        }
        binds.append(query.limit)
        sql += " ORDER BY id DESC LIMIT $\(binds.count)"
        return try await self.rows(PostgresQuery(unsafeSQL: sql, binds: binds)) { row in
            LedgerEntry(id: try row["id"].decode(Int64.self), record: try Self.usageRecord(from: row))
        }
    }

    private static func usageRecord(from row: PostgresRandomAccessRow) throws -> UsageRecord {
        UsageRecord(
            timestamp: Date(timeIntervalSince1970: try row["at"].decode(Double.self)), requestID: try row["request_id"].decode(String.self),
            identity: try row["identity"].decode(String.self), tokenPrefix: try row["token_prefix"].decode(String.self),
            groups: Self.splitGroups(try row["groups"].decode(String.self)), route: try row["route"].decode(String.self),
            requestedModel: try row["model_requested"].decode(String.self), resolvedModel: try row["model_resolved"].decode(String.self),
            status: try row["status"].decode(Int.self), finishReason: try row["finish_reason"].decode(String?.self),
            usage: TokenUsage(
                inputTokens: try row["input_tokens"].decode(Int.self), outputTokens: try row["output_tokens"].decode(Int.self),
                cacheReadInputTokens: try row["cache_read_tokens"].decode(Int.self),
                cacheWriteInputTokens: try row["cache_write_tokens"].decode(Int.self)
            ),
            costUSD: try row["cost_usd"].decode(Double.self), firstByteMilliseconds: try row["first_byte_ms"].decode(Double?.self),
            durationMilliseconds: try row["duration_ms"].decode(Double.self), upstream: try row["upstream"].decode(String?.self),
            rowKey: try row["row_key"].decode(UUID?.self) ?? UUID()
        )
    }

    // MARK: Responses

    package func saveResponse(_ response: StoredResponse) async throws {
        try await self.bounded {
            try await self.saveResponseTransaction(response)
        }
    }

    private func saveResponseTransaction(_ response: StoredResponse) async throws {
        try await self.client.withTransaction(logger: self.logger) { connection in
            for try await _ in try await connection.query("DELETE FROM responses WHERE expires_at < \(response.createdAt.timeIntervalSince1970)", logger: self.logger) {}
            for try await _ in try await connection.query(
                """
                INSERT INTO responses (id, identity, created_at, expires_at, items)
                VALUES (\(response.id), \(response.identity), \(response.createdAt.timeIntervalSince1970), \(response.expiresAt.timeIntervalSince1970),
                    \(response.items))
                ON CONFLICT (id) DO UPDATE SET identity = excluded.identity, created_at = excluded.created_at,
                    expires_at = excluded.expires_at, items = excluded.items
                """,
                logger: self.logger
            ) {}
        }
    }

    package func storedResponse(id: String, identity: String, at now: Date) async throws -> StoredResponse? {
        try await self.first(
            "SELECT * FROM responses WHERE id = \(id) AND identity = \(identity) AND expires_at >= \(now.timeIntervalSince1970)"
        ) { row in
            StoredResponse(
                id: id, identity: identity, createdAt: Date(timeIntervalSince1970: try row["created_at"].decode(Double.self)),
                expiresAt: Date(timeIntervalSince1970: try row["expires_at"].decode(Double.self)), items: try row["items"].decode(ByteBuffer.self)
            )
        }
    }

    // MARK: Encoding

    private static func joinGroups(_ groups: [String]) -> String { groups.joined(separator: ",") }
    private static func splitGroups(_ text: String) -> [String] { text.split(separator: ",").map(String.init) }

    private static func date(_ cell: PostgresCell) throws -> Date? {
        try cell.decode(Double?.self).map { Date(timeIntervalSince1970: $0) }
    }
}

// MARK: Token changes

extension PostgresStore: TokenChangeFeed {
    /// On its own connection (a listening connection cannot go back to the pool): `LISTEN
    /// sluice_tokens`, which the tokens' trigger notifies.
    package func followTokenChanges(_ onChange: @escaping @Sendable () async -> Void) async throws {
        let connection = try await Self.connect(self.address, id: 1, logger: self.logger)
        do {
            // Cancelled (shutdown): closing the connection ends the notifications' loop.
            try await withTaskCancellationHandler {
                try await connection.listen(on: "sluice_tokens") { notifications in
                    // A change made while this connection was being set up: catch up once.
                    await onChange()
                    for try await _ in notifications { await onChange() }
                }
            } onCancel: {
                let closing: EventLoopFuture<Void> = connection.close()
                _ = closing
            }
            try await connection.close()
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

// MARK: Shared limits

extension PostgresStore: SharedLimitStore {
    /// `limit_counters.kind`: what a row counts, and what its `slot` is.
    enum CounterKind: Int16 {
        /// Per second (slot: seconds since 1970).
        case requestsPerSecond = 1, tokensPerSecond = 2
        /// Per UTC day (slot: day number).
        case tokensPerDay = 3
        /// Per month (slot: year × 12 + month − 1).
        case usdPerMonth = 4
    }

    package func admitLimits(
        scopes: [String], windows: LimitWindows, hold: LimitReservation, decide: @escaping @Sendable ([String: LimitCounts]) -> LimitRefusal?
    ) async throws -> LimitRefusal? {
        try await self.bounded {
            try await self.admitLimitsTransaction(scopes: scopes, windows: windows, hold: hold, decide: decide)
        }
    }

    private func admitLimitsTransaction(
        scopes: [String], windows: LimitWindows, hold: LimitReservation, decide: @Sendable ([String: LimitCounts]) -> LimitRefusal?
    ) async throws -> LimitRefusal? {
        let now = Date().timeIntervalSince1970
        // Four round trips: BEGIN, lock and read (sluice_limit_counts), count and reserve, COMMIT.
        return try await self.client.withTransaction(logger: self.logger) { connection -> LimitRefusal? in
            var counts: [String: LimitCounts] = [:]
            for scope in scopes { counts[scope] = LimitCounts() }
            let rows = try await connection.query(
                """
                SELECT scope, kind, slot, amount FROM sluice_limit_counts(\(scopes)::text[], \(windows.second - 59), \(windows.day),
                    \(Int64(windows.month)), \(now))
                """,
                logger: self.logger
            )
            for try await (scope, kind, slot, amount) in rows.decode((String, Int16, Int64, Double).self) {
                switch kind {
                case 0:
                    counts[scope]?.inFlight = Int(amount)
                    counts[scope]?.reservedTokens = Int(slot)
                case -1: counts[scope]?.reservedUSD = amount
                default:
                    switch CounterKind(rawValue: kind) {
                    case .requestsPerSecond: counts[scope]?.requestsBySecond[slot] = Int(amount)
                    case .tokensPerSecond: counts[scope]?.tokensBySecond[slot] = Int(amount)
                    case .tokensPerDay: counts[scope]?.dayTokens = Int(amount)
                    case .usdPerMonth: counts[scope]?.monthUSD = amount
                    case nil: break
                    }
                }
            }
            if let refusal = decide(counts) { return refusal }
            for try await _ in try await connection.query(
                """
                WITH counted AS (
                    INSERT INTO limit_counters (scope, kind, slot, amount)
                    SELECT scope, 1, \(windows.second), 1 FROM unnest(\(scopes)::text[]) AS scope
                    ON CONFLICT (scope, kind, slot) DO UPDATE SET amount = limit_counters.amount + excluded.amount
                )
                INSERT INTO limit_holds (id, scope, tokens, usd, expires_at)
                SELECT \(hold.id), scope, \(hold.tokens), \(hold.costUSD), \(hold.expiresAt) FROM unnest(\(scopes)::text[]) AS scope
                """,
                logger: self.logger
            ) {}
            return nil
        }
    }

    package func settleLimits(scopes: [String], windows: LimitWindows, reservation: UUID?, tokens: Int, costUSD: Double) async throws {
        // One statement (atomic on its own): drop the reservation, add the usage. The kinds and
        // amounts go as parallel arrays; a zero amount is left out.
        var kinds: [Int16] = []
        var slots: [Int64] = []
        var amounts: [Double] = []
        for (kind, slot, amount) in [
            (CounterKind.tokensPerSecond, windows.second, Double(tokens)), (.tokensPerDay, windows.day, Double(tokens)),
            (.usdPerMonth, Int64(windows.month), costUSD),
        ] where amount != 0 {
            kinds.append(kind.rawValue)
            slots.append(slot)
            amounts.append(amount)
        }
        let reservationID = reservation ?? UUID()
        try await self.execute(
            """
            WITH released AS (DELETE FROM limit_holds WHERE id = \(reservationID))
            INSERT INTO limit_counters (scope, kind, slot, amount)
            SELECT scope, usage.kind, usage.slot, usage.amount
            FROM unnest(\(scopes)::text[]) AS scope, unnest(\(kinds)::smallint[], \(slots)::bigint[], \(amounts)::double precision[]) AS usage(kind, slot, amount)
            ON CONFLICT (scope, kind, slot) DO UPDATE SET amount = limit_counters.amount + excluded.amount
            """
        )
        // Housekeeping now and then (about one settle in 32), for these scopes only: seconds older
        // than two minutes, past days and months, reservations past their expiry.
        guard UInt8.random(in: 0...31) == 0 else { return }
        let now = Date().timeIntervalSince1970
        try await self.execute(
            """
            WITH expired AS (DELETE FROM limit_holds WHERE scope = ANY(\(scopes)::text[]) AND expires_at < \(now))
            DELETE FROM limit_counters WHERE scope = ANY(\(scopes)::text[]) AND (
                (kind IN (1, 2) AND slot < \(windows.second - 120)) OR (kind = 3 AND slot < \(windows.day))
                OR (kind = 4 AND slot < \(Int64(windows.month))))
            """
        )
    }
}

/// A call of the PostgreSQL store that did not answer within its time limit
/// (``PostgresStore/operationLimit``).
package struct PostgresStoreTimeout: Error, CustomStringConvertible {
    let limit: Duration
    package var description: String { "the PostgreSQL store did not answer within \(self.limit)" }
}

/// Why the PostgreSQL store could not be opened: the server (never the password) and what it said.
package struct PostgresStoreError: Error, CustomStringConvertible {
    package var description: String

    init(address: PostgresAddress, _ error: any Error) {
        let detail: String
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                detail = message
            } else {
                detail = "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
            }
        } else {
            detail = "\(error)"
        }
        self.description = "cannot use the PostgreSQL store \(address.redacted): \(detail)"
    }
}
