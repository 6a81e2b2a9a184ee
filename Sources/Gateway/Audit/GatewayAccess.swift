package import Foundation
package import HTTPTypes
import Logging
package import NIOCore
package import StreamCore

/// Where audit lines go: one JSON object per line. The server writes them to standard error; tests
/// capture them.
package struct AuditSink: Sendable {
    package var write: @Sendable (String) -> Void

    package init(write: @escaping @Sendable (String) -> Void) {
        self.write = write
    }

    /// Standard error, in the same stream (and the same envelope) as the JSON log lines.
    package static let standardError = AuditSink { line in
        LogOutput.writeLine(line)
    }
}

/// Authentication, authorization, limits and accounting for every request: the gate in front of
/// the routes and the ledger behind them.
package struct GatewayAccess: Sendable {
    package let authenticator: TokenAuthenticator
    /// Policies, prices and models: replaced by a reload, read once per request.
    package let settings: LiveSettings
    package let limiter: UsageLimiter
    package let store: any Store
    package let audit: AuditSink
    package let metrics: GatewayMetrics
    /// Streams open now, bounded in all and per identity.
    package let streams: StreamSlots
    package let lifecycle = GatewayLifecycle()
    /// Where upstream requests go, for the audit lines.
    let upstreamRegion: String
    let now: @Sendable () -> Date

    package init(
        configuration: GatewayConfiguration, store: any Store, audit: AuditSink = .standardError,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.authenticator = TokenAuthenticator(store: store, now: now)
        self.settings = LiveSettings(GatewaySettings(configuration: configuration))
        self.limiter = UsageLimiter(now: now)
        self.store = store
        self.audit = audit
        self.metrics = GatewayMetrics()
        self.streams = StreamSlots(
            maximum: configuration.server.maxConcurrentStreams, maximumPerIdentity: configuration.server.maxConcurrentStreamsPerIdentity
        )
        self.upstreamRegion = configuration.upstream.region
        self.now = now
    }

    /// Puts a reloaded configuration's policies, limits, prices and models in force for the requests
    /// that start from now on.
    package func reload(_ configuration: GatewayConfiguration) {
        self.settings.replace(with: GatewaySettings(configuration: configuration))
    }

    /// Loads this month's spend and today's tokens from the ledger into the limiter.
    package func warmUp() async throws {
        self.limiter.preload(from: try await self.store.usage(since: self.limiter.startOfMonth()))
    }

    /// The caller, or the 401 to answer (in the shape the route asks for), logged as an audit line.
    package func authenticate(_ request: HTTPRequest, route: String, requestID: String? = nil) async -> Result<Caller, GatewayError> {
        switch await self.authenticator.authenticate(request.headerFields) {
        case .success(let caller):
            return .success(caller)
        case .failure(let failure):
            var line = AuditLine(event: "refused")
            line.add("request.id", requestID ?? Self.makeRequestID())
            line.add("route", route)
            line.add("status", 401)
            line.add("reason", failure.code)
            self.audit.write(line.text)
            return .failure(failure.gatewayError)
        }
    }

    /// Applies the policies and limits to a request for a model, and opens its ledger entry.
    ///
    /// - Parameters:
    ///   - declared: what the request declares (message count, body size, `max_tokens`), for the
    ///     audit line and the limits' reservation.
    /// - Returns: the account to close when the request ends, or the 403/429 to answer (already
    ///   recorded in the ledger and the audit log).
    package func admit(
        _ caller: Caller, route: String, requested: String, resolved: String, declared: DeclaredRequest = DeclaredRequest(),
        countsAgainstLimits: Bool = true, isStream: Bool = false, requestID: String? = nil
    ) async -> Result<RequestAccount, GatewayError> {
        let settings = self.settings.current
        var account = RequestAccount(
            access: self, caller: caller, route: route, requestedModel: requested, resolvedModel: resolved, messageCount: declared.messageCount,
            prices: settings.prices, requestID: requestID
        )
        account.bodyBytes = declared.bodyBytes
        switch settings.policies.evaluate(caller, requested: requested, resolved: resolved) {
        case .denied(let reason):
            await account.finish(status: 403, finishReason: "policy_denied", usage: nil)
            return .failure(GatewayError(status: .forbidden, type: "permission_error", code: "policy_denied", message: reason, bedrockType: "AccessDeniedException"))
        case .allowed(let limits):
            if countsAgainstLimits {
                switch self.limiter.admit(limits, reserving: Self.estimate(declared, model: resolved, prices: settings.prices)) {
                case .refused(let refusal):
                    self.metrics.limitRefusal(refusal.limit)
                    await account.finish(status: 429, finishReason: refusal.limit, usage: nil)
                    return .failure(refusal.gatewayError)
                case .admitted(let hold):
                    account.hold = hold
                }
            }
            if isStream {
                switch self.streams.acquire(identity: caller.identity) {
                case .success(let slot):
                    account.slot = slot
                case .failure(let refusal):
                    self.metrics.limitRefusal(refusal.status == .serviceUnavailable ? "gateway_streams" : "concurrent_streams")
                    account.hold?.settle(tokens: 0, costUSD: 0)
                    await account.finish(status: Int(refusal.status.code), finishReason: refusal.code, usage: nil)
                    return .failure(refusal)
                }
            }
            // The request line: who asked for what, written when the request is admitted; the
            // response line follows from `RequestAccount.finish`, with the same request id.
            var line = AuditLine(event: "request")
            line.add("request.id", account.requestID)
            line.add("identity", caller.identity)
            line.add("token.prefix", caller.tokenPrefix)
            line.add("groups", caller.groups)
            line.add("route", route)
            line.add("model.requested", requested)
            line.add("model.resolved", resolved)
            if let count = declared.messageCount { line.add("messages", count) }
            line.add("upstream.region", self.upstreamRegion)
            self.audit.write(line.text)
            return .success(account)
        }
    }

    /// What the limits reserve for a request until it ends: input estimated from the body's size,
    /// output from its maximum (or a default), priced from the price table.
    static func estimate(_ declared: DeclaredRequest, model: String, prices: PriceTable) -> LimitEstimate {
        let usage = TokenUsage(
            inputTokens: LimitEstimate.tokens(bytes: declared.bodyBytes),
            outputTokens: declared.maxTokens ?? LimitEstimate.defaultOutputTokens
        )
        return LimitEstimate(tokens: usage.totalTokens, costUSD: prices.cost(of: usage, model: model))
    }

    /// Records a request refused after authentication but before any policy applies (a body too
    /// large, a malformed request): a ledger row and an audit line, like every other request.
    package func recordRejected(_ caller: Caller, route: String, requested: String, status: Int, reason: String, requestID: String? = nil) async {
        let account = RequestAccount(
            access: self, caller: caller, route: route, requestedModel: requested, resolvedModel: requested, messageCount: nil,
            prices: PriceTable(), requestID: requestID
        )
        await account.finish(status: status, finishReason: reason, usage: nil)
    }

    /// Bedrock request metadata for cost allocation: the caller's identity and first group, with
    /// characters Bedrock does not accept in tag values replaced by `_`.
    package static func requestMetadata(for caller: Caller) -> [(String, String)] {
        var pairs = [("sluice-identity", Self.sanitizeTag(caller.identity))]
        if let group = caller.groups.first { pairs.append(("sluice-group", Self.sanitizeTag(group))) }
        return pairs
    }

    /// The metadata as a JSON object (for Converse's `requestMetadata` and the invoke header).
    ///
    /// - Parameter client: the client's own `X-Amzn-Bedrock-Request-Metadata`, if it sent one: its
    ///   string pairs are kept (Bedrock allows 16 in all, so at most 14 of the client's; keys and
    ///   values sanitised like ours), and the gateway's keys win, so a caller cannot claim another
    ///   identity in the cost reports.
    package static func requestMetadataJSON(for caller: Caller, merging client: String? = nil) -> String {
        let own = Self.requestMetadata(for: caller)
        var pairs: [(String, String)] = []
        if let client, let object = try? JSONSerialization.jsonObject(with: Data(client.utf8)) as? [String: Any] {
            for key in object.keys.sorted() {
                guard pairs.count < 16 - own.count, let value = object[key] as? String else { continue }
                let safeKey = String(Self.sanitizeTag(key).prefix(256))
                guard !safeKey.isEmpty, !own.contains(where: { $0.0 == safeKey }) else { continue }
                pairs.append((safeKey, Self.sanitizeTag(value)))
            }
        }
        pairs += own
        var buffer = ByteBuffer()
        buffer.writeStaticString("{")
        for (index, (key, value)) in pairs.enumerated() {
            if index > 0 { buffer.writeStaticString(",") }
            buffer.writeJSONString(key)
            buffer.writeStaticString(":")
            buffer.writeJSONString(value)
        }
        buffer.writeStaticString("}")
        return String(buffer: buffer)
    }

    /// Adds `"requestMetadata":{…}` to a Converse request body (a JSON object the mapper wrote).
    package static func addRequestMetadata(for caller: Caller, to body: inout ByteBuffer) {
        var view = body.readableBytesView
        while let last = view.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\n") { view = view.dropLast() }
        guard view.last == UInt8(ascii: "}") else { return }
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + 96)
        let content = view.dropLast()
        out.writeBytes(content)
        let isEmptyObject = content.allSatisfy { $0 == UInt8(ascii: "{") || $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") }
        if !isEmptyObject { out.writeStaticString(",") }
        out.writeStaticString("\"requestMetadata\":")
        out.writeString(Self.requestMetadataJSON(for: caller))
        out.writeStaticString("}")
        body = out
    }

    /// Bedrock's tag alphabet: `[a-zA-Z0-9\s:_@$#=/+,.-]{0,256}`.
    private static let tagCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 :_@$#=/+,.-")

    static func sanitizeTag(_ text: String) -> String {
        String(String(text.map { Self.tagCharacters.contains($0) ? $0 : "_" }).prefix(256))
    }

    static func makeRequestID() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next(), radix: 16) + String(generator.next() & 0xFFFF_FFFF, radix: 16)
    }

}

/// What a request declares about itself before it runs.
package struct DeclaredRequest: Sendable, Hashable {
    /// Entries in its `messages` array (`nil` when it has none, or it could not be read).
    package var messageCount: Int?
    /// Its body's size in bytes.
    package var bodyBytes: Int
    /// The most output tokens it allows (`max_tokens`, `maxTokens`), when it says.
    package var maxTokens: Int?

    package init(messageCount: Int? = nil, bodyBytes: Int = 0, maxTokens: Int? = nil) {
        self.messageCount = messageCount
        self.bodyBytes = bodyBytes
        self.maxTokens = maxTokens
    }
}

/// One admitted request's ledger entry, closed with ``finish(status:finishReason:usage:firstByte:)``
/// when the request ends, however it ends.
package struct RequestAccount: Sendable {
    let access: GatewayAccess
    package let caller: Caller
    package let route: String
    package let requestedModel: String
    package let resolvedModel: String
    package let requestID: String
    /// Entries in the request's `messages`, when it has them.
    let messageCount: Int?
    let startedAt: Date
    let started = ContinuousClock.now
    /// The request's place in the limits (its reservation), settled by ``finish(status:finishReason:usage:firstByte:)``.
    var hold: LimitHold?
    /// The prices in force when the request was admitted (a reload does not reprice it).
    let prices: PriceTable
    /// The request body's size, for estimating the input of a stream cut before its usage event.
    var bodyBytes = 0
    /// A streaming request's place among the open streams, released by ``finish(status:finishReason:usage:firstByte:)``.
    var slot: StreamSlot?

    init(
        access: GatewayAccess, caller: Caller, route: String, requestedModel: String, resolvedModel: String, messageCount: Int?,
        prices: PriceTable, requestID: String?
    ) {
        self.prices = prices
        self.requestID = requestID ?? GatewayAccess.makeRequestID()
        self.access = access
        self.caller = caller
        self.route = route
        self.requestedModel = requestedModel
        self.resolvedModel = resolvedModel
        self.messageCount = messageCount
        self.startedAt = access.now()
    }

    /// The usage to charge for a stream: what the upstream reported when the stream got that far;
    /// otherwise (cut by an error, a disconnect or shutdown) an estimate of what was produced, so
    /// that cutting a stream is not a way around the limits: input from the upstream's partial
    /// count or the request's size, output from the generated bytes the client received (about four
    /// bytes per token, as for the reservation).
    func usage(of outcome: StreamOutcome) -> TokenUsage {
        if outcome.isUsageComplete, let usage = outcome.usage { return usage }
        var usage = outcome.usage ?? TokenUsage()
        if usage.inputTokens == 0 { usage.inputTokens = LimitEstimate.tokens(bytes: self.bodyBytes) }
        usage.outputTokens = max(usage.outputTokens, LimitEstimate.tokens(bytes: outcome.producedBytes))
        return usage
    }

    /// Charges the usage to the limits, writes the ledger row (durable when this returns) and the
    /// audit line. Call once, before the response's last bytes, so a request the client saw
    /// complete is always in the ledger.
    package func finish(status: Int, finishReason: String?, usage: TokenUsage?, firstByte: ContinuousClock.Instant? = nil) async {
        let end = ContinuousClock.now
        let usage = usage ?? TokenUsage()
        let cost = self.prices.cost(of: usage, model: self.resolvedModel)
        self.hold?.settle(tokens: usage.totalTokens, costUSD: cost)
        self.slot?.release()
        func milliseconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        }
        let record = UsageRecord(
            timestamp: self.startedAt, requestID: self.requestID, identity: self.caller.identity, tokenPrefix: self.caller.tokenPrefix,
            groups: self.caller.groups, route: self.route, requestedModel: self.requestedModel, resolvedModel: self.resolvedModel,
            status: status, finishReason: finishReason, usage: usage, costUSD: cost,
            firstByteMilliseconds: firstByte.map { milliseconds($0 - self.started) }, durationMilliseconds: milliseconds(end - self.started)
        )
        // The write must happen even when the client's disconnect has cancelled this task (the
        // thread pool drops cancelled work): an unstructured task does not inherit the cancellation,
        // and awaiting it keeps the write inside the request.
        let store = self.access.store
        let stored = await Task { () -> (any Error)? in
            do {
                try await store.recordUsage(record)
                return nil
            } catch {
                return error
            }
        }.value
        var line = AuditLine(event: "response")
        line.add("request.id", record.requestID)
        line.add("identity", record.identity)
        line.add("token.prefix", record.tokenPrefix)
        line.add("groups", record.groups)
        line.add("route", record.route)
        line.add("model.requested", record.requestedModel)
        line.add("model.resolved", record.resolvedModel)
        if let messageCount = self.messageCount { line.add("messages", messageCount) }
        line.add("status", record.status)
        if let finishReason { line.add("finish_reason", finishReason) }
        line.add("usage.input_tokens", usage.inputTokens)
        line.add("usage.output_tokens", usage.outputTokens)
        line.add("usage.cache_read_tokens", usage.cacheReadInputTokens)
        line.add("usage.cache_write_tokens", usage.cacheWriteInputTokens)
        line.add("cost.usd", cost)
        if let firstByte = record.firstByteMilliseconds { line.add("first_byte.ms", firstByte) }
        line.add("duration.ms", record.durationMilliseconds)
        line.add("upstream.region", self.access.upstreamRegion)
        if let stored { line.add("ledger.error", "\(type(of: stored))") }
        self.access.metrics.requestFinished(
            route: self.route, model: self.resolvedModel, identity: self.caller.identity, status: status, usage: usage,
            firstByte: firstByte.map { $0 - self.started }
        )
        self.access.audit.write(line.text)
        MemoryRelief.afterRequest(bodyBytes: self.bodyBytes)
    }
}
