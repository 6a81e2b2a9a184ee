import Foundation
package import Hummingbird
package import Logging
import NIOCore
import StreamCore

/// Builds the gateway's HTTP application. The caller owns `upstream` (and shuts it down after the
/// application has stopped), and runs the application as a service.
///
/// ```swift
/// let app = buildGatewayApplication(configuration: configuration, upstream: upstream, logger: logger)
/// try await app.runService()
/// ```
package func buildGatewayApplication(
    configuration: GatewayConfiguration,
    upstream: UpstreamClient,
    logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router(context: BasicRequestContext.self)
    let mapper = ChatRequestMapper(configuration: .init(modelAliases: configuration.models.aliases))
    let chat = ChatCompletionsRoute(
        upstream: upstream, mapper: mapper, maxBodyBytes: configuration.server.maxBodyBytes, requestTimeout: configuration.timeouts.request
    )
    let bedrock = BedrockRoutes(
        upstream: upstream, catalog: configuration.models, maxBodyBytes: configuration.server.maxBodyBytes,
        requestTimeout: configuration.timeouts.request
    )
    let catalog = configuration.models

    router.post("/v1/chat/completions") { request, context in
        try await chat.respond(to: request, context: context)
    }
    router.get("/v1/models") { _, _ in
        ModelsRoute.list(catalog)
    }
    router.get("/healthz") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"status\":\"ok\"}")))
    }
    // The Bedrock routes parse their own paths: model ids hold `%2F`, and clients send `//`.
    router.post("/bedrock/**") { request, context in
        try await bedrock.respond(to: request, context: context)
    }
    router.get("/bedrock/**") { request, context in
        try await bedrock.respond(to: request, context: context)
    }
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.server.host, port: configuration.server.port), serverName: "sluice"),
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
