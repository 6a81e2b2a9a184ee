import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

extension HTTPField.Name {
    static let requestID = Self("x-request-id")!
}

/// Gives every request an id: the client's `x-request-id` when it sent a usable one (so a trace
/// can follow a request across proxies), else a fresh one. It is on every log line of the request
/// (`request.id`), in its audit lines, and returned in the response's `x-request-id`.
struct RequestIDMiddleware: RouterMiddleware {
    typealias Context = GatewayRequestContext

    /// Longer ids, or ids with characters outside this set, are replaced: they end up in logs.
    static func isUsable(_ id: Substring) -> Bool {
        (1...128).contains(id.utf8.count)
            && id.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "+"),
                    UInt8(ascii: "="):
                    true
                default: false
                }
            }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let id: String
        if let sent = request.headers[.requestID], Self.isUsable(sent[...]) {
            id = sent
        } else {
            id = Ledger.makeRequestID()
        }
        var context = context
        context.requestID = id
        // On every log line of the request too.
        context.logger[metadataKey: "request.id"] = .string(id)
        var response = try await next(request, context)
        response.headers[.requestID] = id
        return response
    }
}

/// `GET /metrics`.
enum MetricsRoute {
    static func isAuthorized(_ headers: HTTPFields, token: String) -> Bool {
        guard let value = headers[.authorization], value.hasPrefix("Bearer ") else { return false }
        return constantTimeEquals(Array(value.utf8.dropFirst("Bearer ".count)), Array(token.utf8))
    }

    static func render(_ access: GatewayAccess, upstreams: Upstreams) -> Response {
        let text = access.metrics.render(
            openStreams: access.streams.open, upstreamHealth: upstreams.healthGauge(), ledgerBacklog: access.ledger.backlog.count
        )
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: text))
        )
    }

    /// Compares without stopping at the first difference, so timing does not reveal the token.
    static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}
