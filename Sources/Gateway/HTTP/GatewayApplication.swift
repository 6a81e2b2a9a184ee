import Foundation
package import Hummingbird
package import HummingbirdCore
package import Logging
import NIOCore
import StreamCore

/// Builds the gateway's HTTP application. The caller owns `upstream` and `access.store` (and
/// closes them after the application has stopped), and runs the application as a service; the
/// application runs the token-cache refresher as its own service.
///
/// Every route but `/healthz` needs a Sluice token (`access`); `GET /bedrock/inference-profiles[/…]`
/// goes without one only when the configuration allows it.
///
/// ```swift
/// let app = buildGatewayApplication(configuration: configuration, upstream: upstream, access: access, logger: logger)
/// try await app.runService()
/// ```
package func buildGatewayApplication(
    configuration: GatewayConfiguration,
    upstream: UpstreamClient,
    access: GatewayAccess,
    server: HTTPServerBuilder? = nil,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router(context: GatewayRequestContext.self)
    router.add(middleware: RequestIDMiddleware())
    let limits = ExchangeLimits(
        maxBodyBytes: configuration.server.maxBodyBytes, bodyTimeout: configuration.timeouts.requestBody,
        requestTimeout: configuration.timeouts.request
    )
    let chat = Exchange(shape: OpenAIChatShape(), access: access, upstream: upstream, limits: limits)
    let bedrock = Exchange(shape: BedrockShape(), access: access, upstream: upstream, limits: limits)
    let controlPlane = BedrockControlPlane(region: upstream.region)
    let metricsToken = configuration.metricsToken

    router.post("/v1/chat/completions") { request, context in
        await chat.respond(to: request, context: context)
    }
    router.get("/v1/models") { request, context in
        switch await access.authenticate(request.head, route: "/v1/models", requestID: context.requestID) {
        case .success: return ModelsRoute.list(access.settings.current.catalog)
        case .failure(let error): return ErrorShape.openAI.response(error)
        }
    }
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
        return MetricsRoute.render(access)
    }
    return Application(
        router: router,
        server: server ?? .http1(configuration: makeHTTP1Configuration(clientIdle: configuration.timeouts.clientIdle)),
        // A backlog of 4,096: a burst of new connections (coding tools opening streams together, a
        // load test) overflowed the default 256 and the kernel dropped them.
        configuration: .init(address: .hostname(configuration.server.host, port: configuration.server.port), serverName: "sluice", backlog: 4096),
        services: [TokenCacheRefresher(authenticator: access.authenticator, logger: logger)],
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
        logger: logger
    )
}

/// `GET /v1/models`: the aliases and the advertised Bedrock ids, in OpenAI's list shape.
enum ModelsRoute {
    static func list(_ catalog: ModelCatalog) -> Response {
        var body = ByteBuffer()
        body.writeStaticString("{\"object\":\"list\",\"data\":[")
        var first = true
        for id in catalog.aliases.keys.sorted() + catalog.advertisedModelIDs {
            if !first { body.writeStaticString(",") }
            first = false
            body.writeStaticString("{\"id\":")
            body.writeJSONString(id)
            body.writeStaticString(",\"object\":\"model\",\"created\":0,\"owned_by\":\"sluice\"}")
        }
        body.writeStaticString("]}")
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }
}
