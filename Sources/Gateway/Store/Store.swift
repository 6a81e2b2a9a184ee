package import Foundation
package import NIOCore
package import StreamCore

/// Where tokens and the usage ledger live. SQLite (``SQLiteStore``) is the embedded default; the
/// protocol is small so that a shared PostgreSQL store can take its place for several replicas.
///
/// Every method is one atomic operation: the gateway never holds a transaction open across calls.
package protocol Store: Sendable {
    /// Adds a token. Throws ``StoreError/duplicatePrefix`` when the public prefix is taken.
    func insertToken(_ token: TokenRecord) async throws
    /// Every token, newest first (revoked and expired ones too: the server needs them to say why a
    /// token is refused).
    func tokens() async throws -> [TokenRecord]
    /// The token with this SHA-256 digest, if any.
    func token(digest: [UInt8]) async throws -> TokenRecord?
    /// Revokes the live tokens whose prefix or identity is `selector`; returns their prefixes.
    func revokeTokens(matching selector: String, at date: Date) async throws -> [String]
    /// Revokes the live token with exactly this prefix (never an identity's tokens); whether there was one.
    func revokeToken(prefix: String, at date: Date) async throws -> Bool
    /// A number that changes whenever a token is created, revoked or deleted (not when one is used),
    /// so a server can poll it cheaply and reload its cache only on change.
    func tokensVersion() async throws -> Int64
    /// Records when tokens were last used, by prefix (batched by the server, never per request).
    func markTokensUsed(_ lastUsed: [String: Date]) async throws
    /// Appends one row to the usage ledger; durable (fsynced) when this returns. A row whose
    /// ``UsageRecord/rowKey`` is already stored is not stored again.
    func recordUsage(_ record: UsageRecord) async throws
    /// The same, for a caller that waits on its own terms: starts the write and returns; `done` is
    /// called once when the row is durable, or with the error. (The default runs ``recordUsage(_:)``
    /// in a task; the stores' own hand the row to their group commit.)
    func recordUsage(_ record: UsageRecord, then done: @escaping @Sendable (Result<Void, any Error>) -> Void)
    /// Ledger rows at or after `since`, oldest first.
    func usage(since: Date) async throws -> [UsageRecord]
    /// The ledger at or after `since` summed in the database per identity, group list, model and
    /// upstream (and per UTC bucket of `bucketSeconds` when given): what usage reports are made of,
    /// without reading every row into memory.
    func usageTotals(since: Date, bucketSeconds: Int?) async throws -> [UsageTotal]
    /// Ledger rows newest first: at most `query.limit`, at or after `query.since`, of one identity
    /// when given, older than the row `query.before` when given (paging).
    func recentRequests(_ query: RequestQuery) async throws -> [LedgerEntry]
    /// Keeps a Responses API response's conversation for `previous_response_id`; also forgets the
    /// responses that have expired.
    func saveResponse(_ response: StoredResponse) async throws
    /// The kept response with this id when it belongs to `identity` and has not expired at `now`.
    func storedResponse(id: String, identity: String, at now: Date) async throws -> StoredResponse?
    func close() async throws
}

extension Store {
    package func recordUsage(_ record: UsageRecord, then done: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        Task {
            do {
                try await self.recordUsage(record)
                done(.success(()))
            } catch {
                done(.failure(error))
            }
        }
    }
}

/// A store that can say at once that tokens changed (PostgreSQL's `LISTEN`), so a replica reloads its
/// copy within milliseconds instead of at its next poll; the poll stays as the backstop.
package protocol TokenChangeFeed: Sendable {
    /// Calls `onChange` for every change until the connection ends (then throws) or the task is cancelled.
    func followTokenChanges(_ onChange: @escaping @Sendable () async -> Void) async throws
}

/// A Responses API response as the response store keeps it (`responses.store`): its conversation,
/// the request's input items and its output items, as one JSON array of input items.
package struct StoredResponse: Sendable, Hashable {
    package var id: String
    package var identity: String
    package var createdAt: Date
    package var expiresAt: Date
    /// A JSON array of Responses input items.
    package var items: ByteBuffer

    package init(id: String, identity: String, createdAt: Date, expiresAt: Date, items: ByteBuffer) {
        self.id = id
        self.identity = identity
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.items = items
    }
}

package enum StoreError: Error, Equatable, CustomStringConvertible {
    case duplicatePrefix
    case unsupportedSchema(found: Int, supported: Int)
    case corruptRow(String)

    package var description: String {
        switch self {
        case .duplicatePrefix: "a token with this prefix already exists"
        case .unsupportedSchema(let found, let supported):
            "the database has schema version \(found); this sluice supports up to \(supported): upgrade sluice"
        case .corruptRow(let what): "unreadable row in the database: \(what)"
        }
    }
}

/// A client token as stored: never the token itself, only its SHA-256 and a short public prefix.
package struct TokenRecord: Sendable, Hashable {
    /// The first characters after `sk-sluice-`: enough to name the token in listings and logs,
    /// far too few to guess the rest from.
    package var prefix: String
    /// SHA-256 of the whole token string.
    package var digest: [UInt8]
    package var identity: String
    package var groups: [String]
    package var label: String?
    package var createdAt: Date
    package var expiresAt: Date?
    package var revokedAt: Date?
    package var lastUsedAt: Date?

    package init(
        prefix: String, digest: [UInt8], identity: String, groups: [String], label: String? = nil, createdAt: Date, expiresAt: Date?,
        revokedAt: Date? = nil, lastUsedAt: Date? = nil
    ) {
        self.prefix = prefix
        self.digest = digest
        self.identity = identity
        self.groups = groups
        self.label = label
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
        self.lastUsedAt = lastUsedAt
    }

    package enum State: String, Sendable {
        case active, expired, revoked
    }

    package func state(at now: Date) -> State {
        if self.revokedAt != nil { return .revoked }
        if let expiresAt = self.expiresAt, expiresAt <= now { return .expired }
        return .active
    }
}

/// One finished request, as the ledger keeps it (and the audit line tells it).
package struct UsageRecord: Sendable, Hashable {
    package var timestamp: Date
    package var requestID: String
    package var identity: String
    package var tokenPrefix: String
    package var groups: [String]
    /// The route template, e.g. `/v1/chat/completions` or `/bedrock/model/invoke-with-response-stream`.
    package var route: String
    package var requestedModel: String
    package var resolvedModel: String
    package var status: Int
    /// `stop`, `length`, `tool_calls`, Bedrock's stop reason on `/bedrock` routes, or how the stream
    /// ended otherwise (`client_disconnected`, an error code).
    package var finishReason: String?
    package var usage: TokenUsage
    package var costUSD: Double
    package var firstByteMilliseconds: Double?
    package var durationMilliseconds: Double
    /// The upstream that answered (or last refused), by its name in `upstreams`; `nil` when the
    /// request never reached one.
    package var upstream: String?
    /// Made once per row: a write retried after a timeout (the first attempt may still land) is
    /// stored once.
    package var rowKey: UUID

    package init(
        timestamp: Date, requestID: String, identity: String, tokenPrefix: String, groups: [String], route: String, requestedModel: String,
        resolvedModel: String, status: Int, finishReason: String?, usage: TokenUsage, costUSD: Double, firstByteMilliseconds: Double?,
        durationMilliseconds: Double, upstream: String? = nil, rowKey: UUID = .random()
    ) {
        self.rowKey = rowKey
        self.upstream = upstream
        self.timestamp = timestamp
        self.requestID = requestID
        self.identity = identity
        self.tokenPrefix = tokenPrefix
        self.groups = groups
        self.route = route
        self.requestedModel = requestedModel
        self.resolvedModel = resolvedModel
        self.status = status
        self.finishReason = finishReason
        self.usage = usage
        self.costUSD = costUSD
        self.firstByteMilliseconds = firstByteMilliseconds
        self.durationMilliseconds = durationMilliseconds
    }
}

/// The ledger's sums for one identity, group list, model and upstream (and bucket).
package struct UsageTotal: Sendable, Hashable {
    package var identity: String
    package var groups: [String]
    package var resolvedModel: String
    package var upstream: String?
    /// The start of the bucket, when totals were asked per bucket.
    package var bucket: Date?
    package var requests: Int
    package var usage: TokenUsage
    package var costUSD: Double

    package init(
        identity: String, groups: [String], resolvedModel: String, upstream: String?, bucket: Date?, requests: Int, usage: TokenUsage,
        costUSD: Double
    ) {
        self.identity = identity
        self.groups = groups
        self.resolvedModel = resolvedModel
        self.upstream = upstream
        self.bucket = bucket
        self.requests = requests
        self.usage = usage
        self.costUSD = costUSD
    }
}

/// Which ledger rows ``Store/recentRequests(_:)`` returns.
package struct RequestQuery: Sendable, Hashable {
    package var since: Date
    package var identity: String?
    /// The ``LedgerEntry/id`` of the last row of the previous page.
    package var before: Int64?
    package var limit: Int

    package init(since: Date, identity: String? = nil, before: Int64? = nil, limit: Int) {
        self.since = since
        self.identity = identity
        self.before = before
        self.limit = limit
    }
}

/// A ledger row and its id (ids grow with every row a store writes).
package struct LedgerEntry: Sendable, Hashable {
    package var id: Int64
    package var record: UsageRecord

    package init(id: Int64, record: UsageRecord) {
        self.id = id
        self.record = record
    }
}

extension UUID {
    /// A version-4 UUID from the system's generator (``IdentifierRandom``). Foundation's `UUID()` on
    /// Linux opens, reads and closes `/dev/urandom` each time: three system calls per request.
    package static func random() -> UUID {
        var generator = IdentifierRandom()
        var words = (generator.next(), generator.next())
        withUnsafeMutableBytes(of: &words) { bytes in
            bytes[6] = (bytes[6] & 0x0F) | 0x40  // version 4
            bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 4122 variant
        }
        return UUID(uuid: unsafeBitCast(words, to: uuid_t.self))
    }
}
