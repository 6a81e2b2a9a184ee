import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import StreamCore

/// The console's API, `/admin/api/*` (`docs/admin-api.yaml`): usage, recent requests, live status
/// and tokens, for callers in `admin.groups`.
///
/// Every call is authenticated like a model request (Sluice or IdP token), refused with 403 for a
/// valid token outside the admin groups, and written as an `admin` audit line (who, what, status;
/// for token changes, which token). Errors have the OpenAI shape, like the gateway's own routes.
struct AdminAPI: Sendable {
    let access: GatewayAccess
    let upstreams: Upstreams
    let adminGroups: Set<String>
    let maxStreams: Int
    let startedAt = Date()
    let started = ContinuousClock.now
    let limits: ExchangeLimits
    let logger: Logger

    /// A token-creation body is a few hundred bytes; anything near this is not one.
    static let maxBodyBytes = 64 * 1024

    func register(on router: Router<GatewayRequestContext>) {
        router.get("/admin/api/me") { request, context in
            await self.handle(request, context, route: "/admin/api/me") { caller, _ in self.me(caller) }
        }
        router.get("/admin/api/usage") { request, context in
            await self.handle(request, context, route: "/admin/api/usage") { _, _ in try await self.usage(request.uri) }
        }
        router.get("/admin/api/requests") { request, context in
            await self.handle(request, context, route: "/admin/api/requests") { _, _ in try await self.requests(request.uri) }
        }
        router.get("/admin/api/status") { request, context in
            await self.handle(request, context, route: "/admin/api/status") { _, _ in self.status() }
        }
        router.get("/admin/api/tokens") { request, context in
            await self.handle(request, context, route: "/admin/api/tokens") { _, _ in try await self.tokens() }
        }
        router.post("/admin/api/tokens") { request, context in
            await self.handle(request, context, route: "/admin/api/tokens") { caller, audit in
                try await self.createToken(request, caller: caller, audit: &audit)
            }
        }
        router.delete("/admin/api/tokens/:prefix") { request, context in
            await self.handle(request, context, route: "/admin/api/tokens/{prefix}") { _, audit in
                try await self.revokeToken(context.parameters.get("prefix") ?? "", audit: &audit)
            }
        }
    }

    /// What an admin action adds to its audit line.
    struct AuditDetails {
        var tokenPrefix: String?
        var tokenIdentity: String?
    }

    private func handle(
        _ request: Request, _ context: GatewayRequestContext, route: String,
        _ body: (Caller, inout AuditDetails) async throws -> (status: HTTPResponse.Status, json: AdminJSON)
    ) async -> Response {
        let caller: Caller
        switch await self.access.authenticate(request.head, route: route, requestID: context.requestID) {
        case .success(let authenticated): caller = authenticated
        case .failure(let error): return ErrorShape.openAI.response(error)
        }
        var details = AuditDetails()
        let response: Response
        if self.adminGroups.isDisjoint(with: caller.groups) {
            response = ErrorShape.openAI.response(
                GatewayError(.policyDenied, "the admin API is only for the gateway's administrators (the groups in admin.groups)")
            )
        } else {
            do {
                let (status, json) = try await body(caller, &details)
                response = Response(
                    status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: .init(byteBuffer: json.buffer)
                )
            } catch let error as GatewayError {
                response = ErrorShape.openAI.response(error)
            } catch {
                // Only the store throws anything else: the gateway's failure, never shown raw.
                self.logger.error("admin API store call failed", metadata: ["store.error": "\(error)", "request.id": "\(context.requestID)"])
                response = ErrorShape.openAI.response(GatewayError(.storeUnavailable, "the gateway's database did not answer; try again shortly"))
            }
        }
        self.access.ledger.recordAdmin(
            caller, method: request.method.rawValue, route: route, status: response.status.code, requestID: context.requestID,
            tokenPrefix: details.tokenPrefix, tokenIdentity: details.tokenIdentity
        )
        return response
    }

    // MARK: Routes

    private func me(_ caller: Caller) -> (HTTPResponse.Status, AdminJSON) {
        var json = AdminJSON()
        json.object { json in
            json.string("identity", caller.identity)
            json.strings("groups", caller.groups)
            json.string("authentication", caller.authentication)
        }
        return (.ok, json)
    }

    private func usage(_ uri: URI) async throws -> (HTTPResponse.Status, AdminJSON) {
        let query = uri.queryParameters
        let grouping = try AdminQuery.grouping(query["by"])
        let since = try AdminQuery.since(query["since"], defaultSeconds: 7 * 86_400, now: Date())
        let bucket = try AdminQuery.bucket(query["bucket"])
        let totals = try await self.access.store.usageTotals(since: since, bucketSeconds: bucket?.seconds)
        let report = UsageReport(totals: totals, by: grouping)
        var json = AdminJSON()
        json.object { json in
            json.date("since", since)
            json.string("by", grouping.rawValue)
            json.string("bucket", bucket?.rawValue)
            json.array("rows") { json in
                for row in report.rows {
                    json.object { json in
                        json.string("key", row.key)
                        if let bucket = row.bucket { json.date("bucket", bucket) }
                        json.int("requests", row.requests)
                        json.int("inputTokens", row.inputTokens)
                        json.int("outputTokens", row.outputTokens)
                        json.int("cacheReadTokens", row.cacheReadTokens)
                        json.int("cacheWriteTokens", row.cacheWriteTokens)
                        json.number("costUSD", row.costUSD)
                    }
                }
            }
        }
        return (.ok, json)
    }

    private func requests(_ uri: URI) async throws -> (HTTPResponse.Status, AdminJSON) {
        let query = uri.queryParameters
        let since = try AdminQuery.since(query["since"], defaultSeconds: 86_400, now: Date())
        let identity = try AdminQuery.identity(query["identity"])
        let limit = try AdminQuery.limit(query["limit"])
        let before = try AdminQuery.before(query["before"])
        // One row more than the page says whether there is a next page.
        let entries = try await self.access.store.recentRequests(RequestQuery(since: since, identity: identity, before: before, limit: limit + 1))
        let page = entries.prefix(limit)
        var json = AdminJSON()
        json.object { json in
            json.array("requests") { json in
                for entry in page {
                    let record = entry.record
                    json.object { json in
                        json.string("id", String(entry.id))
                        json.date("at", record.timestamp)
                        json.string("requestId", record.requestID)
                        json.string("identity", record.identity)
                        json.string("tokenPrefix", record.tokenPrefix)
                        json.string("route", record.route)
                        json.string("model", record.resolvedModel)
                        json.string("requestedModel", record.requestedModel)
                        json.int("status", record.status)
                        json.string("finishReason", record.finishReason)
                        json.int("inputTokens", record.usage.inputTokens)
                        json.int("outputTokens", record.usage.outputTokens)
                        json.int("cacheReadTokens", record.usage.cacheReadInputTokens)
                        json.int("cacheWriteTokens", record.usage.cacheWriteInputTokens)
                        json.number("costUSD", record.costUSD)
                        json.number("firstByteMs", record.firstByteMilliseconds)
                        json.number("durationMs", record.durationMilliseconds)
                        json.string("upstream", record.upstream)
                    }
                }
            }
            json.string("next", entries.count > limit ? page.last.map { String($0.id) } : nil)
        }
        return (.ok, json)
    }

    private func status() -> (HTTPResponse.Status, AdminJSON) {
        let now = ContinuousClock.now
        let recent = self.access.metrics.recent.summary(at: now)
        var json = AdminJSON()
        json.object { json in
            json.string("version", SluiceVersion.current)
            json.date("startedAt", self.startedAt)
            json.int("uptimeSeconds", Int((now - self.started).components.seconds))
            json.int("windowSeconds", RecentActivity.windowSeconds)
            json.int("activeStreams", self.access.streams.open)
            json.int("maxStreams", self.maxStreams)
            json.int("requests", recent.requests)
            json.number("requestsPerSecond", recent.requestsPerSecond)
            json.object("firstByteMs") { json in Self.describe(recent.firstByteMilliseconds, into: &json) }
            json.object("chunkMicroseconds") { json in Self.describe(recent.chunkMicroseconds, into: &json) }
            json.array("upstreams") { json in
                for upstream in self.upstreams.healthGauge(now: now) {
                    json.object { json in
                        json.string("name", upstream.name)
                        json.string("region", upstream.region)
                        json.bool("healthy", upstream.healthy)
                    }
                }
            }
        }
        return (.ok, json)
    }

    private static func describe(_ latency: RecentActivity.Latency, into json: inout AdminJSON) {
        json.int("count", latency.count)
        json.number("p50", latency.p50)
        json.number("p99", latency.p99)
    }

    private func tokens() async throws -> (HTTPResponse.Status, AdminJSON) {
        let tokens = try await self.access.store.tokens()
        let now = Date()
        var json = AdminJSON()
        json.object { json in
            json.array("tokens") { json in
                for token in tokens {
                    json.object { json in Self.describe(token, now: now, into: &json) }
                }
            }
        }
        return (.ok, json)
    }

    /// A token's public facts: never its digest, never the token.
    private static func describe(_ token: TokenRecord, now: Date, into json: inout AdminJSON) {
        json.string("prefix", token.prefix)
        json.string("identity", token.identity)
        json.strings("groups", token.groups)
        json.string("label", token.label)
        json.date("createdAt", token.createdAt)
        json.date("expiresAt", token.expiresAt)
        json.date("revokedAt", token.revokedAt)
        json.date("lastUsedAt", token.lastUsedAt)
        json.string("state", token.state(at: now).rawValue)
    }

    private func createToken(_ request: Request, caller: Caller, audit: inout AuditDetails) async throws -> (
        HTTPResponse.Status, AdminJSON
    ) {
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: Self.maxBodyBytes, timeout: self.limits.bodyTimeout, drain: Self.maxBodyBytes)
        } catch {
            throw error.gatewayError(limit: Self.maxBodyBytes, timeout: self.limits.bodyTimeout)
        }
        let order = try NewTokenOrder(body: body)
        let made = try await ClientToken.issue(
            in: self.access.store, identity: order.identity, groups: order.groups, label: order.label, ttl: order.ttl, now: Date()
        )
        audit.tokenPrefix = made.record.prefix
        audit.tokenIdentity = made.record.identity
        var json = AdminJSON()
        json.object { json in
            json.string("token", made.token)
            Self.describe(made.record, now: Date(), into: &json)
        }
        return (.created, json)
    }

    private func revokeToken(_ prefix: String, audit: inout AuditDetails) async throws -> (HTTPResponse.Status, AdminJSON) {
        audit.tokenPrefix = String(prefix.prefix(64))
        let revoked = try await self.access.store.revokeToken(prefix: prefix, at: Date())
        guard revoked else { throw GatewayError.notFound("no live token has the prefix '\(prefix.prefix(64))'") }
        // This replica refuses it from the next request on, not at the next poll.
        await self.access.authenticator.refresh(logger: self.logger)
        var json = AdminJSON()
        json.object { json in json.strings("revoked", [prefix]) }
        return (.ok, json)
    }
}

/// `POST /admin/api/tokens`' body, checked field by field.
struct NewTokenOrder {
    var identity: String
    var groups: [String]
    var ttl: Duration
    var label: String?

    init(body: ByteBuffer) throws(GatewayError) {
        let parsed: Result<ParsedJSON, JSONParseError> = body.withUnsafeReadableBytes { bytes in
            Result { () throws(JSONParseError) -> ParsedJSON in try JSONParser.parse(bytes, maximumNestingDepth: 8) }
        }
        let document: ParsedJSON
        switch parsed {
        case .success(let value): document = value
        case .failure(let error): throw GatewayError.badRequest("the body is not valid JSON: \(error.reason) at byte \(error.offset)")
        }
        guard let object = document.objectValue else { throw GatewayError.badRequest("the body must be a JSON object") }
        for member in object.members where !["identity", "groups", "ttl", "label"].contains(member.key) {
            throw GatewayError.badRequest("unknown field '\(member.key.prefix(64))': expected identity, groups, ttl, label", param: String(member.key.prefix(64)))
        }
        let identity = object.present("identity")?.stringValue?.trimmingCharacters(in: .whitespaces) ?? ""
        if let problem = ClientToken.identityProblem(identity) { throw GatewayError.badRequest(problem, param: "identity") }
        self.identity = identity
        self.groups = []
        if let groups = object.present("groups") {
            guard let list = groups.arrayValue, list.count <= 64 else {
                throw GatewayError.badRequest("groups must be an array of at most 64 group names", param: "groups")
            }
            for item in list {
                let name = item.stringValue ?? ""
                if let problem = ClientToken.groupProblem(name) { throw GatewayError.badRequest(problem, param: "groups") }
                if !self.groups.contains(name) { self.groups.append(name) }
            }
        }
        self.ttl = .seconds(30 * 86_400)
        if let ttl = object.present("ttl") {
            guard let text = ttl.stringValue, let duration = ClientToken.parseDuration(text) else {
                throw GatewayError.badRequest("ttl must be a positive number followed by s, m, h, d or w (e.g. 30d)", param: "ttl")
            }
            self.ttl = duration
        }
        if let label = object.present("label") {
            guard let text = label.stringValue, text.utf8.count <= 256 else {
                throw GatewayError.badRequest("label must be a string of at most 256 bytes", param: "label")
            }
            self.label = text.isEmpty ? nil : text
        }
    }
}
