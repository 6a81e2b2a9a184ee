import AsyncHTTPClient
package import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import StreamCore
import Logging

/// How Sluice authenticates to Bedrock. The secret never leaves this type except in the
/// `Authorization` header of upstream requests.
package enum UpstreamAuthentication: Sendable, CustomStringConvertible {
    /// A Bedrock API key, sent as `Authorization: Bearer`.
    case apiKey(String)
    /// AWS credentials: each request is signed with Signature Version 4 (service `bedrock`).
    case sigV4(SigV4Signer)
    /// No credentials: the simulator, or a proxy that adds them.
    case none

    package var description: String {
        switch self {
        case .apiKey: "Bedrock API key"
        case .sigV4(let signer): "SigV4 (\(signer.credentials), region \(signer.region))"
        case .none: "no credentials"
        }
    }
}

/// One upstream: a Bedrock Runtime endpoint (a region of an account, or a stand-in) with its own
/// credentials and pooled connections. ``Upstreams`` routes requests over one or several.
///
/// Time limits: connecting (`connect`, AsyncHTTPClient's), the response head (`firstByte`) and the gap
/// between body reads (`idle`), both kept by each ``UpstreamCall``. The whole-request limit is
/// checked by the stream after each read.
package final class UpstreamClient: Sendable {
    /// The name in `upstreams` (`default` for the one-upstream `upstream` object): metric labels,
    /// audit lines and the ledger's `upstream` column.
    package let name: String
    package let endpoint: URL
    package let region: String
    /// The share of routing keys this upstream gets among healthy ones (rendezvous weight).
    package let weight: Double
    /// Globs over model ids (and the names clients use) that this upstream serves; `nil`: every model.
    package let models: [String]?
    package let authentication: UpstreamAuthentication
    package let timeouts: GatewayConfiguration.Timeouts
    /// One AsyncHTTPClient per event loop of the server's group, each with that loop alone, so that
    /// a call's connection is always one of its client connection's loop and the relay never crosses
    /// threads. One client over the whole group only prefers the loop: with no idle connection there
    /// it lends one of another loop's, and every read of that stream then hops between the two loops
    /// (a wake-up each way; a seventh of the reads under load). Requiring the loop instead makes it
    /// open a one-off connection, closed after the request, whenever none is idle there.
    private let clients: [ObjectIdentifier: HTTPClient]
    /// The endpoint taken apart once, not per request (Foundation's URL getters cost more than the
    /// rest of building a request): scheme, host and port; its path without a trailing slash; and
    /// `Host` as sent (the port unless it is the scheme's default).
    private let origin: String
    private let pathPrefix: String
    let hostHeader: String

    /// - Parameters:
    ///   - maxConnections: upstream connections kept at once on each event loop. Over HTTP/1.1 each
    ///     open stream holds one, so this must be at least the gateway's stream limit: AsyncHTTPClient's
    ///     default of 8 per host queued every request beyond the eighth concurrent stream.
    ///   - retriesConnecting: keep trying to connect until the connect timeout (the only upstream);
    ///     `false` fails at the first refusal, so the router can move on (one of several).
    package init(
        name: String = "default", endpoint: URL, region: String, authentication: UpstreamAuthentication,
        timeouts: GatewayConfiguration.Timeouts, weight: Double = 1, models: [String]? = nil, maxConnections: Int = 16_384,
        retriesConnecting: Bool = true
    ) {
        self.name = name
        self.endpoint = endpoint
        self.region = region
        self.weight = weight
        self.models = models
        self.authentication = authentication
        self.timeouts = timeouts
        var prefix = endpoint.path
        while prefix.hasSuffix("/") { prefix.removeLast() }
        self.pathPrefix = prefix
        var components = URLComponents(url: endpoint, resolvingAgainstBaseURL: false)
        components?.path = ""
        components?.query = nil
        components?.fragment = nil
        self.origin = components?.string ?? ""
        // An IPv6 literal goes in brackets, as in the URL (Foundation's `host` drops them).
        let host = endpoint.host.map { $0.contains(":") ? "[\($0)]" : $0 } ?? ""
        if let port = endpoint.port, !((endpoint.scheme == "https" && port == 443) || (endpoint.scheme == "http" && port == 80)) {
            self.hostHeader = "\(host):\(port)"
        } else {
            self.hostHeader = host
        }
        var configuration = HTTPClient.Configuration()
        // No read timeout: each call keeps the idle limit itself (``UpstreamCall``).
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: .nanoseconds(Int64(timeouts.connect.totalNanoseconds)))
        // Redirects would send the credentials elsewhere; Bedrock never redirects.
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        // With other upstreams to move to, a refused connection fails the request at once; alone,
        // the pool retries with backoff until the connect timeout (a burst of connections can fail
        // to establish and then succeed).
        configuration.connectionPool.retryConnectionEstablishment = retriesConnecting
        // The server's group (Hummingbird's default, and SQLite's): a call's loop is one of these.
        var clients: [ObjectIdentifier: HTTPClient] = [:]
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            clients[ObjectIdentifier(loop)] = HTTPClient(eventLoopGroupProvider: .shared(loop), configuration: configuration)
        }
        self.clients = clients
    }

    package func shutdown() async throws {
        for client in self.clients.values {
            try await client.shutdown()
        }
    }

    /// The URL of `operation` on `modelID`, the id percent-encoded as one path segment.
    package func url(operation: BedrockOperation, modelID: String) -> String {
        self.origin + self.path(operation: operation, modelID: modelID)
    }

    /// The path as sent: the endpoint's own path prefix, if any, then the operation's.
    func path(operation: BedrockOperation, modelID: String) -> String {
        "\(self.pathPrefix)/model/\(percentEncodePathSegment(modelID))/\(operation.rawValue)"
    }

    /// Starts one Bedrock Runtime request on a connection of `loop` (the client connection's), whose
    /// callbacks run there: the caller awaits its head
    /// (``UpstreamCall/head(timeout:)``), then collects its body or relays it into the client's
    /// channel on that loop.
    ///
    /// - Parameters:
    ///   - headers: extra headers to forward (never the client's `Authorization`: callers pass only
    ///     headers from an allowlist).
    func start(
        operation: BedrockOperation,
        modelID: String,
        body: ByteBuffer,
        headers extra: [(String, String)] = [],
        loop: any EventLoop,
        logger: Logger
    ) throws(GatewayError) -> UpstreamCall {
        guard let client = self.clients[ObjectIdentifier(loop)] else {
            throw GatewayError(.upstreamError, "the upstream client does not run on the server's event loops")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Accept", value: operation.isStreaming ? "application/vnd.amazon.eventstream" : "application/json")
        for (name, value) in extra {
            headers.add(name: name, value: value)
        }
        switch self.authentication {
        case .apiKey(let key):
            headers.replaceOrAdd(name: "Authorization", value: "Bearer \(key)")
        case .sigV4(let signer):
            let signed = signer.signedHeaders(
                method: "POST", url: self.path(operation: operation, modelID: modelID), query: nil, host: self.hostHeader,
                headers: headers.map { ($0.name, $0.value) }, body: body, date: Date()
            )
            for header in signed {
                headers.replaceOrAdd(name: header.name, value: header.value)
            }
        case .none:
            break
        }
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(url: self.url(operation: operation, modelID: modelID), method: .POST, headers: headers, body: .byteBuffer(body))
        } catch {
            throw GatewayError(.upstreamError, "the upstream URL is not usable")
        }
        let call = UpstreamCall(loop: loop, idle: TimeAmount(self.timeouts.idle))
        // `client`'s connections are all `loop`'s (see `clients`).
        call.started(client.execute(request: request, delegate: call, eventLoop: .delegate(on: loop), logger: logger))
        return call
    }
}

extension UpstreamClient {
    /// The cross-region inference-profile prefix of this upstream's region (`us.` for `us-west-2`,
    /// `eu.` for `eu-central-1`, `apac.` for `ap-northeast-1`); `nil` for a region outside them.
    package var crossRegionPrefix: String? {
        Self.crossRegionPrefix(region: self.region)
    }

    static func crossRegionPrefix(region: String) -> String? {
        if region.hasPrefix("us-gov-") { return "us-gov." }
        if region.hasPrefix("us-") { return "us." }
        if region.hasPrefix("eu-") { return "eu." }
        if region.hasPrefix("ap-") { return "apac." }
        return nil
    }

    /// The model id to call here. An id the gateway chose (an alias, the default, an Anthropic name:
    /// `regional`) follows this upstream's region: its geographic profile prefix (`us.`, `eu.`,
    /// `apac.`, …) becomes this region's. `global.` profiles, foundation ids, ARNs and ids the
    /// client named itself pass unchanged.
    package func modelID(for id: String, regional: Bool) -> String {
        guard regional, let prefix = self.crossRegionPrefix, !id.hasPrefix(prefix), !id.hasPrefix("global.") else { return id }
        for other in ModelCatalog.crossRegionPrefixes where other != "global." && id.hasPrefix(other) {
            return prefix + id.dropFirst(other.count)
        }
        return id
    }

    /// Whether this upstream serves the model: no `models` list, or a glob in it matches the name the
    /// client used, the resolved id, or either without its cross-region prefix.
    package func serves(requested: String, resolved: String) -> Bool {
        guard let models = self.models else { return true }
        let candidates = [requested, resolved, ModelCatalog.foundationModelID(resolved)]
        return models.contains { pattern in
            let bare = ModelCatalog.foundationModelID(pattern)
            return candidates.contains { Glob.matches(pattern, $0) || Glob.matches(bare, $0) }
        }
    }
}
