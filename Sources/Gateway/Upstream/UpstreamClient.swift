package import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
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
/// Its connections are HTTP/1.1 (over TLS for `https`), made and pooled per event loop of the
/// server's group (``UpstreamPool``): a call's connection is always one of its client connection's
/// loop, so the relay never crosses threads, and nothing on a request's path takes a lock.
///
/// Time limits: connecting (`connect`, the pool's), the response head (`firstByte`) and the gap
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
    /// One pool of connections per event loop of the server's group.
    private let pools: [ObjectIdentifier: UpstreamPool]
    /// The endpoint taken apart once, not per request (Foundation's URL getters cost more than the
    /// rest of building a request): its path without a trailing slash, and `Host` as sent (the port
    /// unless it is the scheme's default).
    private let pathPrefix: String
    let hostHeader: String

    /// - Parameters:
    ///   - maxConnections: upstream connections kept at once on each event loop. Over HTTP/1.1 each
    ///     open stream holds one, so this must be at least the gateway's stream limit: beyond it
    ///     requests wait for a connection to come free.
    ///   - retriesConnecting: keep trying to connect until the connect timeout (the only upstream);
    ///     `false` fails at the first refusal, so the router can move on (one of several).
    ///   - idleConnectionTimeout: how long an unused connection is kept open.
    ///   - caFile: for an `https` endpoint, certificate authorities (PEM) trusted besides the
    ///     system's (checked when the configuration is read).
    package init(
        name: String = "default", endpoint: URL, region: String, authentication: UpstreamAuthentication,
        timeouts: GatewayConfiguration.Timeouts, weight: Double = 1, models: [String]? = nil, maxConnections: Int = 16_384,
        retriesConnecting: Bool = true, caFile: String? = nil, idleConnectionTimeout: Duration = .seconds(60)
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
        // An IPv6 literal goes in brackets, as in the URL (Foundation's `host` drops them).
        let host = endpoint.host.map { $0.contains(":") ? "[\($0)]" : $0 } ?? ""
        if let port = endpoint.port, !((endpoint.scheme == "https" && port == 443) || (endpoint.scheme == "http" && port == 80)) {
            self.hostHeader = "\(host):\(port)"
        } else {
            self.hostHeader = host
        }
        let secure = endpoint.scheme?.lowercased() == "https"
        let target = UpstreamTarget(
            host: endpoint.host ?? "",
            port: endpoint.port ?? (secure ? 443 : 80),
            // A context that cannot be made (no trust roots) fails each call's connection instead.
            tls: secure ? try? Self.makeTLSContext(caFile: caFile) : nil,
            serverName: endpoint.host.flatMap { $0.contains(":") || $0.allSatisfy({ $0.isNumber || $0 == "." }) ? nil : $0 },
            requiresTLS: secure,
            connectTimeout: TimeAmount(timeouts.connect),
            retriesConnecting: retriesConnecting,
            maximumConnections: maxConnections,
            idleTimeout: TimeAmount(idleConnectionTimeout)
        )
        // The server's group (Hummingbird's default, and SQLite's): a call's loop is one of these.
        var pools: [ObjectIdentifier: UpstreamPool] = [:]
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            pools[ObjectIdentifier(loop)] = UpstreamPool(loop: loop, target: target)
        }
        self.pools = pools
    }

    /// The TLS set-up of `https` upstreams: the system's trust roots, and those in `caFile` (PEM)
    /// besides them (a proxy or endpoint with a private certificate authority). HTTP/1.1 by ALPN.
    static func makeTLSContext(caFile: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.applicationProtocols = ["http/1.1"]
        if let caFile {
            configuration.additionalTrustRoots = [.file(caFile)]
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Closes every connection; calls still running fail, later ones are refused.
    package func shutdown() async throws {
        for pool in self.pools.values {
            try await pool.loop.flatSubmit { pool.shutDown() }.get()
        }
    }

    /// The path as sent: the endpoint's own path prefix, if any, then the operation's (the model id
    /// percent-encoded as one path segment).
    func path(operation: BedrockOperation, modelID: String) -> String {
        "\(self.pathPrefix)/model/\(percentEncodePathSegment(modelID))/\(operation.rawValue)"
    }

    /// Starts one Bedrock Runtime request on a connection of `loop` (the client connection's), whose
    /// callbacks run there: the caller awaits its head (``UpstreamCall/head()``), then collects its
    /// body or relays it into the client's channel on that loop.
    ///
    /// - Parameters:
    ///   - headers: extra headers to forward (never the client's `Authorization`: callers pass only
    ///     headers from an allowlist).
    ///   - firstByte: the time the response's head may take, from now.
    ///   - onOK: run on the loop when a `200` head arrives, before the caller's `head()` returns
    ///     (see ``UpstreamCall``).
    func start(
        operation: BedrockOperation,
        modelID: String,
        body: ByteBuffer,
        headers extra: [(String, String)] = [],
        firstByte: Duration,
        loop: any EventLoop,
        logger: Logger,
        onOK: (@Sendable (UpstreamCall, HTTPResponseHead) -> Void)? = nil
    ) throws(GatewayError) -> UpstreamCall {
        guard let pool = self.pools[ObjectIdentifier(loop)] else {
            throw GatewayError(.upstreamError, "the upstream client does not run on the server's event loops")
        }
        var fields: [(String, String)] = [
            ("Content-Type", "application/json"),
            ("Accept", operation.isStreaming ? "application/vnd.amazon.eventstream" : "application/json"),
        ]
        fields += extra
        let path = self.path(operation: operation, modelID: modelID)
        switch self.authentication {
        case .apiKey(let key):
            fields.removeAll { $0.0.lowercased() == "authorization" }
            fields.append(("Authorization", "Bearer \(key)"))
        case .sigV4(let signer):
            let signed = signer.signedHeaders(method: "POST", url: path, query: nil, host: self.hostHeader, headers: fields, body: body, date: Date())
            for header in signed {
                fields.removeAll { $0.0.lowercased() == header.name.lowercased() }
                fields.append((header.name, header.value))
            }
        case .none:
            break
        }
        let request = try Self.serialize(path: path, host: self.hostHeader, fields: fields, body: body)
        let call = UpstreamCall(loop: loop, request: request, idle: TimeAmount(self.timeouts.idle), onOK: onOK)
        if loop.inEventLoop {
            call.limitFirstByte(to: firstByte)
            pool.execute(call)
        } else {
            loop.execute {
                call.limitFirstByte(to: firstByte)
                pool.execute(call)
            }
        }
        return call
    }

    /// The request as one buffer: request line, `Host`, the fields, `Content-Length`, the body.
    static func serialize(path: String, host: String, fields: [(String, String)], body: ByteBuffer) throws(GatewayError) -> ByteBuffer {
        var request = ByteBuffer()
        request.reserveCapacity(256 + fields.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 } + body.readableBytes)
        request.writeString("POST \(path) HTTP/1.1\r\nHost: \(host)\r\n")
        for (name, value) in fields {
            // A field that could end the line early would let its sender add fields of its own.
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }),
                !value.utf8.contains(where: { $0 == 0 || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\n") })
            else {
                throw GatewayError(.invalidRequest, "a header to forward upstream has a character that HTTP does not allow")
            }
            request.writeString(name)
            request.writeStaticString(": ")
            request.writeString(value)
            request.writeStaticString("\r\n")
        }
        request.writeString("Content-Length: \(body.readableBytes)\r\n\r\n")
        request.writeImmutableBuffer(body)
        return request
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
