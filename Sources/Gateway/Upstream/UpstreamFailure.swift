import Foundation
import NIOCore
import NIOHTTP1
import StreamCore

/// Reading what Bedrock answered when it was not a success, and what a transport failure means.
enum UpstreamFailure {
    /// Error bodies are small JSON; more than this is not read.
    static let maximumErrorBodyBytes = 64 * 1024

    /// The error an upstream non-2xx response stands for (its body is read, up to a limit).
    static func error(from head: HTTPResponseHead, call: UpstreamCall) async -> GatewayError {
        let body = try? await call.collect(upTo: Self.maximumErrorBodyBytes)
        let fields = Self.errorFields(headers: head.headers, body: body)
        return GatewayError.upstream(
            status: Int(head.status.code), errorType: fields.type, message: fields.message,
            retryAfter: head.headers.first(name: "retry-after").flatMap { Int($0) }
        )
    }

    /// Bedrock's error type (`x-amzn-ErrorType`, before its `:`; or the body's `__type`) and message.
    static func errorFields(headers: HTTPHeaders, body: ByteBuffer?) -> (type: String?, message: String?) {
        var type = headers.first(name: "x-amzn-errortype").map { String($0.prefix { $0 != ":" }) }
        var message: String?
        if let body, let object = body.withUnsafeReadableBytes({ try? JSONParser.parse($0, maximumNestingDepth: 16) })?.objectValue {
            message = (object.present("message") ?? object.present("Message"))?.stringValue
            if type == nil, let raw = object.present("__type")?.stringValue {
                type = String(raw.split(separator: "#").last ?? Substring(raw))
            }
        }
        return (type, message)
    }

    /// A fixed description of a transport failure: safe for logs and for the client.
    ///
    /// - Parameter duringBody: the failure happened while reading the body, after the head: whatever
    ///   the transport reports then (an unterminated chunked body, a reset), the stream was cut.
    static func describe(_ error: any Error, duringBody: Bool = false) -> GatewayError {
        if let error = error as? GatewayError { return error }
        let cut = GatewayError(.upstreamDisconnected, "the upstream closed the connection before the response was complete")
        if let error = error as? UpstreamTransportError {
            // The first-byte and idle limits are the call's own (``UpstreamCall``), as GatewayErrors.
            switch error {
            case .connectTimeout:
                return GatewayError(.upstreamConnectTimeout, "connecting to the upstream timed out")
            case .connectFailed:
                return GatewayError(.upstreamUnreachable, "the upstream could not be reached")
            case .closed:
                return cut
            case .malformed:
                return duringBody ? cut : GatewayError(.upstreamMalformedResponse, "the upstream's response is not valid HTTP/1.1")
            case .cancelled, .shutDown:
                return duringBody ? cut : GatewayError(.upstreamError, "the upstream request failed")
            }
        }
        if error is EventStreamError { return GatewayError(.upstreamCorruptStream, "upstream sent a corrupt event stream") }
        return duringBody ? cut : GatewayError(.upstreamUnreachable, "the upstream could not be reached")
    }
}
