package import HTTPTypes
package import Hummingbird
import Logging
package import NIOCore
package import NIOHTTP1
package import StreamCore

/// One client API on the exchange pipeline: how its requests map onto a Bedrock call, how Bedrock's
/// answer is turned into its own, and how its errors look. Nothing else is per API.
package protocol APIShape: Sendable {
    /// What the mapper learned about a request that the answer needs (ids, options).
    associatedtype Mapped: Sendable
    associatedtype Processor: StreamProcessor

    /// The errors' shape before the response head.
    var errors: ErrorShape { get }
    /// The route label for the ledger, audit lines and metrics (bounded).
    func route(for head: HTTPRequest) -> String
    /// Reads the client's request body: the Bedrock call to make, or why not (a 4xx).
    func map(_ body: ByteBuffer, head: HTTPRequest, caller: Caller, settings: GatewaySettings) throws(GatewayError) -> MappedRequest<Mapped>
    /// The head of a streamed answer.
    func streamHead(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders) -> HTTPFields
    /// The processor of a streamed answer (made where the stream runs: processors are not `Sendable`).
    func makeProcessor(_ request: MappedRequest<Mapped>) -> Processor
    /// What of the shape's data a streamed answer keeps for its whole life (its processor is made
    /// from it, ``streamEnded(_:request:outcome:)`` reads it): not what only the call needed, such
    /// as a copy of the body, which is hundreds of KiB for a coding agent, and a stream lasts minutes.
    func keptWhileStreaming(_ mapped: Mapped) -> Mapped
    /// A whole answer, from Bedrock's whole answer.
    func complete(_ request: MappedRequest<Mapped>, upstreamHeaders: HTTPHeaders, body: ByteBuffer) -> Result<Completion, GatewayError>
    /// The one retry of a request Bedrock refused before the first byte, when the shape can repair it
    /// (an `anthropic_beta` value the model does not take); `nil` to answer the error.
    func retry(_ request: MappedRequest<Mapped>, after error: GatewayError, settings: GatewaySettings) -> Retry<Mapped>?
    /// What needs the store before admission (the Responses API's `previous_response_id`): the
    /// request to send, or why not.
    func resolve(
        _ request: MappedRequest<Mapped>, body: ByteBuffer, caller: Caller, settings: GatewaySettings
    ) async throws(GatewayError) -> MappedRequest<Mapped>
    /// Called once a streamed answer ended, however it ended, before the response's end: what the
    /// shape keeps of it (a kept Responses API response).
    func streamEnded(_ processor: Processor, request: MappedRequest<Mapped>, outcome: StreamOutcome) async
}

extension APIShape {
    package func retry(_ request: MappedRequest<Mapped>, after error: GatewayError, settings: GatewaySettings) -> Retry<Mapped>? { nil }

    package func resolve(
        _ request: MappedRequest<Mapped>, body: ByteBuffer, caller: Caller, settings: GatewaySettings
    ) async throws(GatewayError) -> MappedRequest<Mapped> { request }

    package func streamEnded(_ processor: Processor, request: MappedRequest<Mapped>, outcome: StreamOutcome) async {}

    package func keptWhileStreaming(_ mapped: Mapped) -> Mapped { mapped }
}

/// A repaired request to send once more, and the `anthropic_beta` values the repair dropped that were
/// not known to be refused before (logged and counted once).
package struct Retry<Mapped: Sendable>: Sendable {
    package var request: MappedRequest<Mapped>
    package var droppedBetas: [String]
}

/// A request as an API shape mapped it.
package struct MappedRequest<Mapped: Sendable>: Sendable {
    /// The model as the client named it.
    package var requestedModel: String
    /// The Bedrock id the policies judge.
    package var resolvedModel: String
    /// The Bedrock operation and the model id in its path.
    package var operation: BedrockOperation
    package var modelID: String
    /// What goes upstream: the body, and headers from an allowlist (never the client's credentials).
    package var body: ByteBuffer
    package var headers: [(String, String)] = []
    /// What the request declares, for the audit line and the limits' reservation.
    package var declared: DeclaredRequest
    /// Whether the request counts against the token and spend limits (CountTokens does not).
    package var countsAgainstLimits = true
    /// The client's session (Claude Code's `X-Claude-Code-Session-Id`), for the audit lines and
    /// upstream affinity.
    package var session: String?
    /// The key the API gives for keeping a conversation on one upstream (OpenAI `prompt_cache_key`
    /// or `user`, Anthropic `metadata.user_id`); see ``AffinityKey``.
    package var affinity: String?
    /// `anthropic_beta` values the beta policy removed before the call (counted in the metrics).
    package var droppedBetas: [String] = []
    /// The shape's own data.
    package var mapped: Mapped

    package init(
        requestedModel: String, resolvedModel: String, operation: BedrockOperation, modelID: String, body: ByteBuffer,
        declared: DeclaredRequest, mapped: Mapped
    ) {
        self.requestedModel = requestedModel
        self.resolvedModel = resolvedModel
        self.operation = operation
        self.modelID = modelID
        self.body = body
        self.declared = declared
        self.mapped = mapped
    }
}

/// A whole (not streamed) answer and what it used.
package struct Completion: Sendable {
    package var response: Response
    package var usage: TokenUsage?
    package var finishReason: String?
    /// Work that must be done before the answer is sent (keeping a Responses API response, which the
    /// client may continue as soon as it has the answer).
    package var beforeAnswering: (@Sendable () async -> Void)?

    package init(response: Response, usage: TokenUsage?, finishReason: String?, beforeAnswering: (@Sendable () async -> Void)? = nil) {
        self.response = response
        self.usage = usage
        self.finishReason = finishReason
        self.beforeAnswering = beforeAnswering
    }
}

/// The limits every exchange runs under.
package struct ExchangeLimits: Sendable {
    package var maxBodyBytes: Int
    /// How long a client may take to send its body.
    package var bodyTimeout: Duration
    /// The whole request, first byte to last.
    package var requestTimeout: Duration
}

/// The exchange pipeline of DESIGN.md, the same for every route: collect the body (bounded) →
/// authenticate → map (per API shape) → admit → upstream call → relay → account.
///
/// However a request ends, its ledger entry is closed exactly once, before the response's last
/// byte: refused requests by ``Ledger/recordRefused(_:route:requested:error:requestID:arrived:)``, admitted ones by
/// ``RequestAccount/finish(_:)``.
package struct Exchange<Shape: APIShape>: Sendable {
    package let shape: Shape
    package let access: GatewayAccess
    package let upstreams: Upstreams
    package let limits: ExchangeLimits

    package init(shape: Shape, access: GatewayAccess, upstreams: Upstreams, limits: ExchangeLimits) {
        self.shape = shape
        self.access = access
        self.upstreams = upstreams
        self.limits = limits
    }

    package func respond(to request: Request, context: GatewayRequestContext) async -> Response {
        // (In the request's own task on a loop-served HTTP/1 connection; on Hummingbird's channels
        // in a child task of the connection's: ``PreparedInChildTask``.)
        let route = self.shape.route(for: request.head)
        switch await self.access.authenticate(request.head, route: route, requestID: context.requestID) {
        case .success(let caller):
            return await self.respond(to: request, context: context, caller: caller, route: route)
        case .failure(let error):
            return self.shape.errors.response(error)
        }
    }

    /// The request's body, bounded in size and time, or why not.
    private func collectBody(of request: Request) async -> Result<ByteBuffer, GatewayError> {
        if let encoding = request.headers[.contentEncoding], encoding.lowercased() != "identity" {
            // A compressed body would be read as JSON and refused as malformed, or forwarded to
            // Bedrock as it is (RFC 7694: 415, and which encodings are taken).
            return .failure(GatewayError(
                .unsupportedContentEncoding,
                "the request body is sent with Content-Encoding '\(excerpt(encoding, limit: 40))'; this gateway takes bodies uncompressed"
            ))
        }
        do {
            return .success(try await request.collectBody(upTo: self.limits.maxBodyBytes, timeout: self.limits.bodyTimeout, drain: self.limits.maxBodyBytes))
        } catch {
            return .failure(error.gatewayError(limit: self.limits.maxBodyBytes, timeout: self.limits.bodyTimeout))
        }
    }

    private func respond(to request: Request, context: GatewayRequestContext, caller: Caller, route: String) async -> Response {
        let body: ByteBuffer
        switch await self.collectBody(of: request) {
        case .success(let collected):
            body = collected
        case .failure(let refusal):
            await self.access.ledger.recordRefused(caller, route: route, requested: "", error: refusal, requestID: context.requestID, arrived: context.arrived)
            var response = self.shape.errors.response(refusal)
            if refusal.code == .unsupportedContentEncoding { response.headers[.acceptEncoding] = "identity" }
            // The connection's state is unknown after a refused body (the rest may be unread).
            response.headers[.connection] = "close"
            return response
        }
        let settings = self.access.settings.current
        var mapped: MappedRequest<Shape.Mapped>
        do throws(GatewayError) {
            mapped = try self.shape.map(body, head: request.head, caller: caller, settings: settings)
            mapped = try await self.shape.resolve(mapped, body: body, caller: caller, settings: settings)
            if let problem = modelIDProblem(mapped.modelID) {
                throw GatewayError(.invalidRequest, "the model id '\(excerpt(mapped.modelID))' \(problem)", param: "model")
            }
            mapped.session = request.headers[.claudeCodeSessionID].flatMap { RequestIDMiddleware.isUsable($0[...]) ? $0 : nil }
        } catch {
            MemoryRelief.afterRequest(bodyBytes: body.readableBytes)
            await self.access.ledger.recordRefused(caller, route: route, requested: "", error: error, requestID: context.requestID, arrived: context.arrived)
            return self.shape.errors.response(error)
        }
        // Where it can go: a model no upstream serves is refused before it counts against any limit.
        let key = self.upstreams.members.count > 1
            ? AffinityKey.make(session: mapped.session, declared: mapped.affinity, identity: caller.identity, upstreamBody: mapped.body) : ""
        let candidates = self.upstreams.candidates(key: key, requested: mapped.requestedModel, resolved: mapped.resolvedModel, now: .now)
        guard !candidates.isEmpty else {
            let error = GatewayError(.modelNotFound, "no upstream of this gateway serves the model '\(excerpt(mapped.requestedModel))'")
            await self.access.ledger.recordRefused(caller, route: route, requested: mapped.requestedModel, error: error, requestID: context.requestID, arrived: context.arrived)
            return self.shape.errors.response(error)
        }
        var account: RequestAccount
        switch await self.access.admit(caller, route: route, request: mapped, settings: settings, requestID: context.requestID, arrived: context.arrived) {
        case .success(let admitted): account = admitted
        case .failure(let refusal): return self.shape.errors.response(refusal)
        }
        for beta in mapped.droppedBetas { self.access.metrics.betaDropped(beta) }
        let stream: Streaming? = mapped.operation.isStreaming ? Streaming(
            shape: self.shape, account: account, deadline: context.arrived + self.limits.requestTimeout, channel: context.channel,
            logger: context.logger, observer: StreamObserver(metrics: self.access.metrics, lifecycle: self.access.lifecycle, route: route)
        ) : nil
        // On a loop-served connection a stream's response starts on the loop where Bedrock's `200`
        // head arrives (``ResponseStart``): its head, then the relay, with no hand-over to this task
        // and back before the first byte.
        let onLoop: StartOnLoop? = stream.flatMap { stream in context.responseStart.map { start in
            let requestID = context.requestID
            return { call, head, sent, upstream in
                var stream = stream
                stream.account.upstream = upstream
                var headers = stream.shape.streamHead(sent, upstreamHeaders: head.headers)
                headers[.requestID] = requestID
                let ending = start.startOnLoop(HTTPResponse(status: .ok, headerFields: headers))
                stream.begin(call, request: stream.kept(sent), ending: ending, headUnflushed: true)
            }
        } }
        let answered: Answered
        switch await self.call(&mapped, candidates: candidates, settings: settings, loop: context.channel.eventLoop, logger: context.logger, onLoop: onLoop) {
        case .success(let success):
            answered = success
            account.upstream = success.route
        case .failure(let failed):
            account.upstream = failed.route
            await account.finish(failed.error)
            return self.shape.errors.response(failed.error)
        }
        guard var stream else {
            return await self.complete(mapped, answered: answered, account: account)
        }
        // Started on the loop: this response is not written (see ``ResponseStart``).
        if context.responseStart?.isStarted == true { return Response(status: .ok) }
        let headers = self.shape.streamHead(mapped, upstreamHeaders: answered.head.headers)
        stream.account = account
        let finalStream = stream
        let request = stream.kept(mapped)
        let upstream = UnclaimedCall(answered.call)
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            let ended = await ChannelRelay.relay(
                upstream.claim(), into: finalStream.channel, processor: { finalStream.shape.makeProcessor(request) }, deadline: finalStream.deadline,
                observer: finalStream.observer, logger: finalStream.logger
            )
            await finalStream.record(ended, request: request)
            if ended.outcome.disconnected { throw CancellationError() }
            try await writer.finish(nil)
        })
    }

    /// Starts a stream's response on the loop, from Bedrock's `200` head: the call, its head, the
    /// request as sent and the upstream that answered.
    typealias StartOnLoop = @Sendable (UpstreamCall, HTTPResponseHead, MappedRequest<Shape.Mapped>, UpstreamRoute) -> Void

    /// What a streamed answer needs once Bedrock said `200`, wherever it starts: on the loop
    /// (``ResponseStart``) or in the response's body closure (Hummingbird's channels: TLS).
    struct Streaming: Sendable {
        let shape: Shape
        var account: RequestAccount
        let deadline: ContinuousClock.Instant
        let channel: any Channel
        let logger: Logger
        let observer: StreamObserver

        /// The request the stream keeps: without the upstream body (sent, and let go by the call
        /// once answered) or the shape's copies of it (``APIShape/keptWhileStreaming(_:)``).
        func kept(_ request: MappedRequest<Shape.Mapped>) -> MappedRequest<Shape.Mapped> {
            var request = request
            request.body = ByteBuffer()
            request.mapped = self.shape.keptWhileStreaming(request.mapped)
            return request
        }

        /// However the stream ended, before the response's end: the ledger, then the shape.
        func record(_ ended: ChannelRelay<Shape.Processor>.Ended, request: MappedRequest<Shape.Mapped>) async {
            await self.account.finish(ended.outcome)
            await self.shape.streamEnded(ended.processor, request: request, outcome: ended.outcome)
        }

        /// On the loop: relays `call`'s body into the client's connection. No task waits for the
        /// stream (a waiting task's frames would stay allocated for its whole life): its end is
        /// recorded, then the response ended, in a task of its own.
        func begin(_ call: UpstreamCall, request: MappedRequest<Shape.Mapped>, ending: any DetachedEnding, headUnflushed: Bool) {
            let done = self.channel.eventLoop.makePromise(of: ChannelRelay<Shape.Processor>.Ended.self)
            done.futureResult.whenSuccess { ended in
                Task {
                    await self.record(ended, request: request)
                    await ending.end(disconnected: ended.outcome.disconnected)
                }
            }
            ChannelRelay.begin(
                call, into: self.channel, processor: self.shape.makeProcessor(request), deadline: self.deadline, observer: self.observer,
                logger: self.logger, done: done, headUnflushed: headUnflushed
            )
        }
    }

    /// An upstream's response head, from the first upstream in the request's ranking that gives one
    /// (README, "Several upstreams"): a throttle, an overload, a server error, a refused connection or
    /// a first-byte timeout moves the request on to the next candidate, within the routing's attempts
    /// and time budget; any other answer is final. No byte has reached the client yet, so moving on
    /// costs it nothing but the time. The shape's one repair (a refused beta flag) is resent to the
    /// same upstream and is not counted as an attempt.
    private func call(
        _ mapped: inout MappedRequest<Shape.Mapped>, candidates: [Upstreams.Candidate], settings: GatewaySettings, loop: any EventLoop,
        logger: Logger, onLoop: StartOnLoop?
    ) async -> Result<Answered, Failed> {
        let routing = self.upstreams.routing
        let health = self.upstreams.health
        let metrics = self.access.metrics
        let deadline = ContinuousClock.now + routing.budget
        var queue = candidates[...]
        var attempts = 0
        var repaired = false
        var last: (error: GatewayError, upstream: UpstreamClient)?
        // Whether the next attempt moves on from `last` (counted as a failover when it starts).
        var movesOn = false
        // The upstream whose refusal said when to come back, and when.
        var comeBack: (upstream: UpstreamClient, at: ContinuousClock.Instant)?
        while attempts < routing.maximumAttempts {
            guard var candidate = queue.popFirst() else {
                // Every candidate refused: wait out a short Retry-After that fits the budget.
                guard let wait = comeBack, wait.at - .now <= routing.maximumRetryAfterWait, wait.at < deadline else { break }
                comeBack = nil
                try? await Task.sleep(until: wait.at)
                queue.append(Upstreams.Candidate(upstream: wait.upstream, state: .healthy))
                continue
            }
            let now = ContinuousClock.now
            guard now < deadline else { break }
            if candidate.state == .probeDue {
                if health.claimProbe(candidate.upstream.name, now: now) {
                    candidate.state = .healthy
                } else if queue.contains(where: { $0.state != .coolingDown }) {
                    // Another request is trying it: after the others, as one cooling down.
                    queue.append(Upstreams.Candidate(upstream: candidate.upstream, state: .coolingDown))
                    continue
                }
            }
            let upstream = candidate.upstream
            attempts += 1
            if movesOn, let last {
                metrics.failover(from: last.upstream.name, reason: last.error.label)
                movesOn = false
            }
            let call = mapped
            let modelID = upstream.modelID(for: call.modelID, regional: call.modelID != call.requestedModel)
            let firstByte = min(upstream.timeouts.firstByte, deadline - now)
            let started: UpstreamCall
            let head: HTTPResponseHead
            let route = UpstreamRoute(name: upstream.name, region: upstream.region, attempts: attempts)
            var onOK: (@Sendable (UpstreamCall, HTTPResponseHead) -> Void)?
            if let onLoop {
                let sent = call
                onOK = { (answered: UpstreamCall, head: HTTPResponseHead) in onLoop(answered, head, sent, route) }
            }
            do {
                started = try upstream.start(
                    operation: call.operation, modelID: modelID, body: call.body, headers: call.headers, firstByte: firstByte, loop: loop,
                    logger: logger, onOK: onOK
                )
                head = try await started.head()
            } catch {
                let failure = UpstreamFailure.describe(error)
                logger.info("upstream request failed", metadata: ["upstream": "\(upstream.name)", "upstream.error": "\(failure.label)"])
                metrics.upstreamRequest(upstream.name, outcome: failure.label)
                health.failed(upstream.name, now: .now, retryAfter: nil)
                last = (failure, upstream)
                movesOn = true
                continue
            }
            if head.status == .ok {
                health.succeeded(upstream.name)
                metrics.upstreamRequest(upstream.name, outcome: "ok")
                return .success(Answered(call: started, head: head, route: route))
            }
            let error = await UpstreamFailure.error(from: head, call: started)
            metrics.upstreamRequest(upstream.name, outcome: error.label)
            if !repaired, let retry = self.shape.retry(mapped, after: error, settings: settings) {
                for beta in retry.droppedBetas {
                    logger.notice("Bedrock refused a beta flag for this model: dropped from now on", metadata: ["beta": "\(beta)", "model": "\(mapped.modelID)"])
                    metrics.betaDropped(beta)
                }
                repaired = true
                mapped = retry.request
                attempts -= 1
                queue.insert(Upstreams.Candidate(upstream: upstream, state: .healthy), at: queue.startIndex)
                continue
            }
            guard Self.movesOn(status: Int(head.status.code)) else {
                // The caller's own error: the upstream is fine, and another would say the same.
                health.succeeded(upstream.name)
                return .failure(Failed(error: error, route: route))
            }
            // Bedrock's own Retry-After only (the error's default of 1 s for a throttle is for the client).
            let retryAfter = head.headers.first(name: "retry-after").flatMap { Int($0) }.map { Duration.seconds($0) }
            health.failed(upstream.name, now: .now, retryAfter: retryAfter)
            if let retryAfter {
                let at = ContinuousClock.now + retryAfter
                if comeBack.map({ at < $0.at }) ?? true { comeBack = (upstream, at) }
            }
            last = (error, upstream)
            movesOn = true
        }
        let final = last ?? (GatewayError(.upstreamFirstByteTimeout, "no upstream answered within the routing time budget"), candidates[0].upstream)
        return .failure(Failed(error: final.error, route: UpstreamRoute(name: final.upstream.name, region: final.upstream.region, attempts: attempts)))
    }

    /// Statuses that move a request on to the next upstream: throttling, overload and server errors.
    /// Other 4xx are the caller's and would be the same anywhere.
    static func movesOn(status: Int) -> Bool {
        status == 429 || status == 529 || (500...599).contains(status)
    }

    struct Answered {
        var call: UpstreamCall
        var head: HTTPResponseHead
        var route: UpstreamRoute
    }

    struct Failed: Error {
        var error: GatewayError
        var route: UpstreamRoute
    }

    private func complete(_ mapped: MappedRequest<Shape.Mapped>, answered: Answered, account: RequestAccount) async -> Response {
        let body: ByteBuffer
        do {
            body = try await answered.call.collect(upTo: 64 * 1024 * 1024)
        } catch {
            let failure = UpstreamFailure.describe(error, duringBody: true)
            await account.finish(failure)
            return self.shape.errors.response(failure)
        }
        switch self.shape.complete(mapped, upstreamHeaders: answered.head.headers, body: body) {
        case .success(let completion):
            await account.finish(status: 200, finishReason: completion.finishReason, usage: completion.usage)
            await completion.beforeAnswering?()
            return completion.response
        case .failure(let error):
            await account.finish(error)
            return self.shape.errors.response(error)
        }
    }
}

/// The request context of every gateway route: Hummingbird's core, and the request id that
/// ``RequestIDMiddleware`` assigns (on every log and audit line of the request).
package struct GatewayRequestContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    /// Set by ``RequestIDMiddleware`` before any route runs.
    package var requestID: String
    /// When the request's head arrived: a request's ledger times (its duration, its first byte) count
    /// from here, so the body's upload, authentication and admission are in them, as the client
    /// lived them. The context is made then; a loop-served connection sets the instant its head was
    /// read, before the request's task waited for a thread.
    package var arrived = ContinuousClock.now
    /// The client's connection (an HTTP/2 stream's channel over HTTP/2): streams are relayed into it
    /// on its event loop (``ChannelRelay``), where their upstream connections are made.
    package let channel: any Channel
    /// Set on a loop-served HTTP/1 connection: a stream's response can start on the loop.
    var responseStart: (any ResponseStart)?

    package init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.requestID = ""
        self.channel = source.channel
    }
}
