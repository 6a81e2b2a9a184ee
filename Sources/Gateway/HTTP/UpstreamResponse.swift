import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import StreamCore

/// Reading what Bedrock answered when it was not a success.
enum UpstreamResponse {
    /// Error bodies are small JSON; more than this is not read.
    static let maximumErrorBodyBytes = 64 * 1024

    /// The error an upstream non-2xx response stands for, in the caller's terms.
    static func error(from response: HTTPClientResponse) async -> GatewayError {
        let body = try? await response.body.collect(upTo: Self.maximumErrorBodyBytes)
        let fields = Self.errorFields(status: Int(response.status.code), headers: response.headers, body: body)
        return GatewayError.upstream(
            status: Int(response.status.code), errorType: fields.type, message: fields.message,
            retryAfter: response.headers.first(name: "retry-after").flatMap { Int($0) }
        )
    }

    /// Bedrock's error type (`x-amzn-ErrorType`, before its `:`; or the body's `__type`) and message.
    static func errorFields(status: Int, headers: HTTPHeaders, body: ByteBuffer?) -> (type: String?, message: String?) {
        var type = headers.first(name: "x-amzn-errortype").map { String($0.prefix { $0 != ":" }) }
        var message: String?
        if let body, let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any] {
            message = (object["message"] ?? object["Message"]) as? String
            if type == nil, let raw = object["__type"] as? String {
                type = String(raw.split(separator: "#").last ?? Substring(raw))
            }
        }
        return (type, message)
    }

    /// A fixed description of a transport failure: safe for logs and for the client.
    ///
    /// - Parameter duringBody: the failure happened while reading the body, after the head: whatever
    ///   the transport reports then (an unterminated chunked body, a reset), the stream was cut.
    static func describe(_ error: any Error, duringBody: Bool = false) -> (code: String, message: String) {
        let cut = ("upstream_disconnected", "the upstream closed the connection before the response was complete")
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded:
                return ("upstream_first_byte_timeout", "the upstream did not answer within the first-byte time limit")
            case .readTimeout:
                return ("upstream_idle_timeout", "the upstream stream stalled longer than the idle time limit")
            case .connectTimeout:
                return ("upstream_connect_timeout", "connecting to the upstream timed out")
            case .remoteConnectionClosed:
                return cut
            default:
                return duringBody ? cut : ("upstream_error", "the upstream request failed")
            }
        }
        if error is EventStreamError { return ("upstream_corrupt_stream", "upstream sent a corrupt event stream") }
        return duringBody ? cut : ("upstream_unreachable", "the upstream could not be reached")
    }
}

/// Thrown when a write to the client fails: the client has gone, nothing more can be sent to it.
struct ClientDisconnected: Error {}
