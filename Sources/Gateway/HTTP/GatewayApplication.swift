import Foundation
package import Hummingbird
import HummingbirdCore
package import Logging
import NIOCore
import StreamCore

/// Builds the gateway's HTTP application. The caller owns `upstreams` and `access.store` (and
/// closes them after the application has stopped), and runs the application as a service; the
/// application runs the token-cache refresher as its own service.
///
/// Every route but `/healthz`, `/.well-known/sluice` and the console's page and assets (`/admin`)
/// needs a Sluice or IdP token (`access`); `GET /bedrock/inference-profiles[/…]` goes without one only
/// when the configuration allows it. `/admin/api/*` needs one of a member of `admin.groups`.
///
/// ```swift
/// let app = buildGatewayApplication(configuration: configuration, upstreams: upstreams, access: access, logger: logger)
/// try await app.runService()
/// ```
package func buildGatewayApplication(
    configuration: GatewayConfiguration,
    upstreams: Upstreams,
    access: GatewayAccess,
    server: ServerTransport? = nil,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    // `HEAD` is every `GET` route's too (RFC 9110 §9.3.2; load balancers' health checks use it).
    let router = Router(context: GatewayRequestContext.self, options: .autoGenerateHeadEndpoints)
    router.add(middleware: RequestIDMiddleware())
    router.add(middleware: UnroutedRequests())
    let limits = ExchangeLimits(
        maxBodyBytes: configuration.server.maxBodyBytes, bodyTimeout: configuration.timeouts.requestBody,
        requestTimeout: configuration.timeouts.request
    )
    // The Anthropic names and the listing take the first upstream's region; the router moves an id
    // the gateway chose to each upstream's own region (``UpstreamClient/modelID(for:regional:)``).
    let region = upstreams.primary.region
    let chat = Exchange(shape: OpenAIChatShape(), access: access, upstreams: upstreams, limits: limits)
    let bedrock = Exchange(shape: BedrockShape(), access: access, upstreams: upstreams, limits: limits)
    let messages = Exchange(shape: AnthropicMessagesShape(region: region), access: access, upstreams: upstreams, limits: limits)
    let countTokens = Exchange(shape: AnthropicCountTokensShape(region: region), access: access, upstreams: upstreams, limits: limits)
    let responses = Exchange(
        shape: ResponsesShape(seal: access.reasoningSeal, memory: ResponseMemory(store: access.store)), access: access, upstreams: upstreams,
        limits: limits
    )
    let controlPlane = BedrockControlPlane(region: region)
    let metricsToken = configuration.metricsToken

    router.post("/v1/chat/completions") { request, context in
        await chat.respond(to: request, context: context)
    }
    // Claude Code's gateway mode and the Anthropic SDKs (`?beta=true` and other query strings are
    // accepted: routing looks at the path only).
    router.post("/v1/messages") { request, context in
        await messages.respond(to: request, context: context)
    }
    router.post("/v1/messages/count_tokens") { request, context in
        await countTokens.respond(to: request, context: context)
    }
    router.post("/v1/responses") { request, context in
        await responses.respond(to: request, context: context)
    }
    // Both model routes answer Anthropic's clients in Anthropic's shape, everyone else in OpenAI's;
    // `answer` is nil for a model `id` the caller may not use or that is not known.
    @Sendable func models(
        _ request: Request, _ context: GatewayRequestContext, id: String = "", answer: (Caller, GatewaySettings, _ anthropic: Bool) -> Response?
    ) async -> Response {
        let anthropic = request.headers.fromAnthropicClient
        let shape: ErrorShape = anthropic ? .anthropic : .openAI
        switch await access.authenticate(request.head, route: "/v1/models", requestID: context.requestID) {
        case .success(let caller):
            if let response = answer(caller, access.settings.current, anthropic) { return response }
            return shape.response(GatewayError(.modelNotFound, "the model '\(excerpt(id))' does not exist or you do not have access to it"))
        case .failure(let error):
            return shape.response(error)
        }
    }
    router.get("/v1/models") { request, context in
        await models(request, context) { caller, settings, anthropic in
            anthropic ? ModelsRoute.anthropicList(settings, caller: caller, region: region) : ModelsRoute.list(settings, caller: caller)
        }
    }
    // Retrieve one model (OpenAI's and Anthropic's `GET /v1/models/{id}`: `models.retrieve` in their
    // SDKs): as listed, or a 404 when the caller may not use it or it is not known.
    router.get("/v1/models/:id") { request, context in
        let id = context.parameters.get("id").flatMap { percentDecodePathSegment($0.utf8) } ?? ""
        return await models(request, context, id: id) { caller, settings, anthropic in
            anthropic ? ModelsRoute.anthropicModel(id, settings, caller: caller, region: region) : ModelsRoute.model(id, settings, caller: caller)
        }
    }
    // What `sluice login --gateway` needs to sign a developer in: the IdP and the public client.
    // Public by design (no secrets: the client is a public one, used with the device flow).
    router.get("/.well-known/sluice") { _, _ in
        var body = ByteBuffer()
        body.writeStaticString("{\"oidc\":")
        if let oidc = configuration.oidc {
            body.writeStaticString("{\"issuer\":")
            body.writeJSONString(oidc.issuer)
            body.writeStaticString(",\"audience\":")
            body.writeJSONString(oidc.audience)
            body.writeStaticString(",\"clientId\":")
            if let client = oidc.clientID { body.writeJSONString(client) } else { body.writeStaticString("null") }
            body.writeStaticString(",\"scopes\":[")
            for (index, scope) in oidc.scopes.enumerated() {
                if index > 0 { body.writeStaticString(",") }
                body.writeJSONString(scope)
            }
            body.writeStaticString("]}")
        } else {
            body.writeStaticString("null")
        }
        body.writeStaticString("}")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }
    // The console and its API, for callers in `admin.groups` (docs/admin-api.yaml).
    AdminAPI(
        access: access, upstreams: upstreams, adminGroups: Set(configuration.adminGroups), maxStreams: configuration.server.maxConcurrentStreams,
        limits: limits, logger: logger
    ).register(on: router)
    ConsoleAssets().register(on: router)
    router.get("/healthz") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
    }
    // The Bedrock routes parse their own paths: model ids hold `%2F`, and clients send `//`.
    router.post("/bedrock/**") { request, context in
        await bedrock.respond(to: request, context: context)
    }
    router.get("/bedrock/**") { request, context in
        guard let target = BedrockTarget(path: request.uri.path) else {
            return ErrorShape.bedrock.response(.notFound("no Bedrock operation at \(request.uri.path)"))
        }
        // Claude Code with CLAUDE_CODE_SKIP_BEDROCK_AUTH=1 lists inference profiles without any
        // credential (CLAUDE_CODE.md §6); answer it only when the configuration says so. A request
        // that does carry a credential is checked as usual.
        let settings = access.settings.current
        if settings.allowAnonymousInferenceProfiles, case .failure(.missing) = TokenAuthenticator.credential(in: request.headers) {
            return controlPlane.respond(to: target, catalog: settings.catalog)
        }
        switch await access.authenticate(request.head, route: "/bedrock/inference-profiles", requestID: context.requestID) {
        case .success: return controlPlane.respond(to: target, catalog: settings.catalog)
        case .failure(let error): return ErrorShape.bedrock.response(error)
        }
    }
    // Prometheus scrapes with its own token (`metrics.token`); without one configured the route
    // does not exist, so metrics are never public by accident.
    router.get("/metrics") { request, _ in
        guard let metricsToken else { return ErrorShape.openAI.response(.notFound("no route at /metrics")) }
        guard MetricsRoute.isAuthorized(request.headers, token: metricsToken) else {
            return ErrorShape.openAI.response(AuthenticationFailure.unknown.gatewayError)
        }
        return MetricsRoute.render(access, upstreams: upstreams)
    }
    // The loop-served HTTP/1 connection runs the routes in each request's own task, which ends
    // before a relayed stream does; Hummingbird's channels (TLS, HTTP/2) in the connection's task,
    // with the handlers in a child task (``PreparedInChildTask``).
    let routes = router.buildResponder()
    let serverName = "sluice"
    return Application(
        responder: PreparedInChildTask(routes),
        server: (server ?? makeHTTP1ServerBuilder(clientIdle: configuration.timeouts.clientIdle, maxBodyBytes: configuration.server.maxBodyBytes)).builder(for: routes, serverName: serverName),
        // A backlog of 4,096: a burst of new connections (coding tools opening streams together, a
        // load test) overflowed the default 256 and the kernel dropped them.
        configuration: .init(address: .hostname(configuration.server.host, port: configuration.server.port), serverName: serverName, backlog: 4096),
        services: [
            TokenCacheRefresher(authenticator: access.authenticator, logger: logger),
            LedgerFlusher(backlog: access.ledger.backlog, store: access.store, logger: logger),
        ],
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
        logger: logger
    )
}

/// On Hummingbird's channels (TLS: HTTP/2 and HTTP/1.1), runs the router, its middleware and the
/// route's handler (everything before a response's body) in a child task that ends when the response
/// is ready; the body (a stream's relay) is then written from the connection's task. A task keeps
/// every slab its allocator grew until the task ends, and the connection's task lives as long as the
/// connection: had the handlers run there, the deepest their async frames ever went (the router,
/// the middleware, the exchange's body collection, mapping, admission and upstream call) would stay
/// allocated beside every open stream, about 1 KB a level.
/// (heaptrack, 1,000 open `/bedrock` streams: peak heap 36.1 → 32.6 MB against the exchange's own
/// child task, which left the router's and the middleware's frames in the connection's task; 35.4 MB
/// with a task group's child instead of an `async let`.)
struct PreparedInChildTask<Inner: HTTPResponder>: HTTPResponder where Inner.Context: Sendable {
    let inner: Inner

    init(_ inner: Inner) {
        self.inner = inner
    }

    @Sendable func respond(to request: Request, context: Inner.Context) async throws -> Response {
        async let response = self.inner.respond(to: request, context: context)
        return try await response
    }
}

/// A request no route takes (an unknown path, or a method its path does not have) gets a 404 in
/// its API's shape, naming what was asked, instead of Hummingbird's empty one: a client's SDK then
/// shows why. The shape is guessed from the path and, for Anthropic's clients, their headers.
struct UnroutedRequests: RouterMiddleware {
    typealias Context = GatewayRequestContext

    /// Whether the router found no route: a routed request's endpoint is its route's path (set
    /// before its middlewares run); Hummingbird's not-found responder names it `NotFound`.
    static func isUnrouted(_ context: Context) -> Bool {
        let endpoint = context.coreContext.endpointPath.value
        return endpoint == nil || endpoint == "NotFound"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound && Self.isUnrouted(context) {
            let path = request.uri.path
            let shape: ErrorShape
            if path.hasPrefix("/bedrock/") || path.hasPrefix("/model/") {
                shape = .bedrock
            } else if path.hasPrefix("/v1/messages") || path.hasPrefix("/messages") || request.headers.fromAnthropicClient {
                shape = .anthropic
            } else {
                shape = .openAI
            }
            // The path only (a query string may hold what should not be echoed), and not all of a long one.
            let hint = Self.hint(for: path).map { ": \($0)" } ?? ""
            return shape.response(.notFound("no route for \(request.method) \(excerpt(path, limit: 200))\(hint)"))
        }
    }

    /// What a client whose base URL is one step off asked for, and how to set it: the commonest
    /// mistake with a gateway (an OpenAI SDK's base URL without `/v1`, an Anthropic SDK's with it,
    /// boto3's `endpoint_url` without `/bedrock`).
    static func hint(for path: String) -> String? {
        if path.hasPrefix("/v1/v1/") {
            return "the base URL has /v1 once too often (Anthropic's SDKs add /v1 themselves; OpenAI's base URL ends in it)"
        }
        switch path {
        case "/chat/completions", "/responses", "/models":
            return "the OpenAI API is under /v1 (a base URL ending in /v1)"
        case "/messages", "/messages/count_tokens":
            return "the Anthropic API is under /v1 (Anthropic's SDKs add it to a base URL without it)"
        default:
            return path.hasPrefix("/model/") ? "Bedrock's API is under /bedrock (an endpoint URL ending in /bedrock)" : nil
        }
    }
}

/// `GET /v1/models`: the model names a caller may use, in OpenAI's or Anthropic's list shape.
enum ModelsRoute {
    /// The aliases and the advertised Bedrock ids the caller's policies allow, in OpenAI's shape.
    static func list(_ settings: GatewaySettings, caller: Caller) -> Response {
        var body = ByteBuffer()
        body.writeStaticString("{\"object\":\"list\",\"data\":[")
        for (index, id) in Self.ids(settings, caller: caller).enumerated() {
            if index > 0 { body.writeStaticString(",") }
            Self.writeModel(id, into: &body)
        }
        body.writeStaticString("]}")
        return Self.json(body)
    }

    /// One of ``list(_:caller:)``'s entries, or `nil` when it is not among them.
    static func model(_ id: String, _ settings: GatewaySettings, caller: Caller) -> Response? {
        guard Self.ids(settings, caller: caller).contains(id) else { return nil }
        var body = ByteBuffer()
        Self.writeModel(id, into: &body)
        return Self.json(body)
    }

    private static func ids(_ settings: GatewaySettings, caller: Caller) -> [String] {
        let catalog = settings.catalog
        return (catalog.aliases.keys.sorted() + catalog.advertisedModelIDs).filter { Self.allows(settings, caller, $0, catalog.resolve($0)) }
    }

    private static func writeModel(_ id: String, into body: inout ByteBuffer) {
        body.writeStaticString("{\"id\":")
        body.writeJSONString(id)
        body.writeStaticString(",\"object\":\"model\",\"created\":0,\"owned_by\":\"sluice\"}")
    }

    private static func json(_ body: ByteBuffer) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }

    /// The Claude models by their Anthropic names (the built-in table), as Anthropic lists them:
    /// `{"data":[{"type":"model","id","display_name","created_at"}],"has_more","first_id","last_id"}`.
    static func anthropicList(_ settings: GatewaySettings, caller: Caller, region: String) -> Response {
        let entries = Self.anthropicEntries(settings, caller: caller, region: region)
        var body = ByteBuffer()
        body.writeStaticString("{\"data\":[")
        for (index, entry) in entries.enumerated() {
            if index > 0 { body.writeStaticString(",") }
            Self.writeAnthropicModel(entry, into: &body)
        }
        body.writeStaticString("],\"has_more\":false,\"first_id\":")
        if let first = entries.first { body.writeJSONString(first.id) } else { body.writeStaticString("null") }
        body.writeStaticString(",\"last_id\":")
        if let last = entries.last { body.writeJSONString(last.id) } else { body.writeStaticString("null") }
        body.writeStaticString("}")
        return Self.json(body)
    }

    /// One of ``anthropicList(_:caller:region:)``'s entries, by its id or one of its aliases (the
    /// answer names it by its id, as Anthropic's does), or `nil`.
    static func anthropicModel(_ id: String, _ settings: GatewaySettings, caller: Caller, region: String) -> Response? {
        guard let entry = Self.anthropicEntries(settings, caller: caller, region: region).first(where: { $0.names.contains(id) }) else { return nil }
        var body = ByteBuffer()
        Self.writeAnthropicModel(entry, into: &body)
        return Self.json(body)
    }

    private static func anthropicEntries(_ settings: GatewaySettings, caller: Caller, region: String) -> [AnthropicModelTable.Entry] {
        AnthropicModelTable.entries.filter { entry in Self.allows(settings, caller, entry.id, entry.modelID(region: region)) }
    }

    private static func writeAnthropicModel(_ entry: AnthropicModelTable.Entry, into body: inout ByteBuffer) {
        body.writeStaticString("{\"type\":\"model\",\"id\":")
        body.writeJSONString(entry.id)
        body.writeStaticString(",\"display_name\":")
        body.writeJSONString(entry.displayName)
        body.writeStaticString(",\"created_at\":")
        body.writeJSONString(entry.createdAt)
        body.writeStaticString("}")
    }

    private static func allows(_ settings: GatewaySettings, _ caller: Caller, _ requested: String, _ resolved: String) -> Bool {
        if case .allowed = settings.policies.evaluate(caller, requested: requested, resolved: resolved) { return true }
        return false
    }
}
