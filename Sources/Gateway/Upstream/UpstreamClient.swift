package import AsyncHTTPClient
package import Foundation
package import NIOCore
import NIOHTTP1
import StreamCore
package import Logging

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

/// The one shared, pooled HTTP client that talks to Bedrock Runtime (or a stand-in).
///
/// Time limits: connecting (`connect`), the response head (`firstByte`, a per-request deadline that
/// AsyncHTTPClient lifts once the head has arrived) and the gap between body reads (`idle`, the
/// client's read timeout). The whole-request limit is checked by the streaming loops after each read.
package final class UpstreamClient: Sendable {
    package let endpoint: URL
    package let region: String
    package let authentication: UpstreamAuthentication
    package let timeouts: GatewayConfiguration.Timeouts
    let httpClient: HTTPClient

    /// - Parameter maxConnections: upstream connections kept at once. Over HTTP/1.1 each open stream
    ///   holds one, so this must be at least the gateway's stream limit: AsyncHTTPClient's default of
    ///   8 per host queued every request beyond the eighth concurrent stream.
    package init(
        endpoint: URL, region: String, authentication: UpstreamAuthentication, timeouts: GatewayConfiguration.Timeouts,
        maxConnections: Int = 16_384
    ) {
        self.endpoint = endpoint
        self.region = region
        self.authentication = authentication
        self.timeouts = timeouts
        var configuration = HTTPClient.Configuration()
        configuration.timeout = HTTPClient.Configuration.Timeout(
            connect: .nanoseconds(Int64(timeouts.connect.totalNanoseconds)),
            read: .nanoseconds(Int64(timeouts.idle.totalNanoseconds))
        )
        // Redirects would send the credentials elsewhere; Bedrock never redirects.
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: maxConnections)
        self.httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    package func shutdown() async throws {
        try await self.httpClient.shutdown()
    }

    /// The URL of `operation` on `modelID`, the id percent-encoded as one path segment.
    package func url(operation: BedrockOperation, modelID: String) -> String {
        var base = self.endpoint.absoluteString
        while base.hasSuffix("/") { base.removeLast() }
        return "\(base)\(self.path(operation: operation, modelID: modelID))"
    }

    /// The path as sent: the endpoint's own path prefix, if any, then the operation's.
    func path(operation: BedrockOperation, modelID: String) -> String {
        var prefix = self.endpoint.path
        while prefix.hasSuffix("/") { prefix.removeLast() }
        return "\(prefix)/model/\(percentEncodePathSegment(modelID))/\(operation.rawValue)"
    }

    /// `Host` as sent: the host, and the port unless it is the scheme's default.
    var hostHeader: String {
        let host = self.endpoint.host ?? ""
        guard let port = self.endpoint.port else { return host }
        let isDefault = (self.endpoint.scheme == "https" && port == 443) || (self.endpoint.scheme == "http" && port == 80)
        return isDefault ? host : "\(host):\(port)"
    }

    /// Sends one Bedrock Runtime request and returns once the response head has arrived (or the
    /// first-byte time limit has passed). The caller streams or collects the body.
    ///
    /// - Parameters:
    ///   - headers: extra headers to forward (never the client's `Authorization`: callers pass only
    ///     headers from an allowlist).
    package func execute(
        operation: BedrockOperation,
        modelID: String,
        body: ByteBuffer,
        headers: [(String, String)] = [],
        logger: Logger
    ) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: self.url(operation: operation, modelID: modelID))
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: operation.isStreaming ? "application/vnd.amazon.eventstream" : "application/json")
        for (name, value) in headers {
            request.headers.add(name: name, value: value)
        }
        switch self.authentication {
        case .apiKey(let key):
            request.headers.replaceOrAdd(name: "Authorization", value: "Bearer \(key)")
        case .sigV4(let signer):
            let signed = signer.signedHeaders(
                method: "POST", url: self.path(operation: operation, modelID: modelID), query: nil, host: self.hostHeader,
                headers: request.headers.map { ($0.name, $0.value) }, body: body, date: Date()
            )
            for header in signed {
                request.headers.replaceOrAdd(name: header.name, value: header.value)
            }
        case .none:
            break
        }
        request.body = .bytes(body)
        let deadline = NIODeadline.now() + .nanoseconds(Int64(self.timeouts.firstByte.totalNanoseconds))
        return try await self.httpClient.execute(request, deadline: deadline, logger: logger)
    }
}
