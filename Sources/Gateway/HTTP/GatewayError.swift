import Foundation
import HTTPTypes
package import Hummingbird
import NIOCore
import StreamCore

/// An error answered before the response head, in the caller's API shape.
///
/// OpenAI routes get `{"error":{"message","type","param","code"}}`; `/bedrock` routes get Bedrock's
/// shape: `x-amzn-ErrorType` and `{"message":…}`. Messages never carry secrets or raw upstream bodies.
package struct GatewayError: Error, Sendable, CustomStringConvertible {
    package var status: HTTPResponse.Status
    /// OpenAI's `error.type`, e.g. `invalid_request_error`.
    package var type: String
    /// OpenAI's `error.code`, e.g. `model_not_found`; also a bounded label for logs.
    package var code: String
    package var message: String
    package var param: String?
    /// The Bedrock exception name used on `/bedrock` routes, e.g. `ThrottlingException`.
    package var bedrockType: String
    /// Seconds for `Retry-After`.
    package var retryAfter: Int?

    package init(
        status: HTTPResponse.Status, type: String, code: String, message: String, param: String? = nil,
        bedrockType: String, retryAfter: Int? = nil
    ) {
        self.status = status
        self.type = type
        self.code = code
        self.message = message
        self.param = param
        self.bedrockType = bedrockType
        self.retryAfter = retryAfter
    }

    package var description: String { "\(self.status.code) \(self.code): \(self.message)" }

    package func openAIResponse() -> Response {
        var body = ByteBuffer()
        body.writeStaticString("{\"error\":{\"message\":")
        body.writeJSONString(self.message)
        body.writeStaticString(",\"type\":")
        body.writeJSONString(self.type)
        body.writeStaticString(",\"param\":")
        if let param = self.param { body.writeJSONString(param) } else { body.writeStaticString("null") }
        body.writeStaticString(",\"code\":")
        body.writeJSONString(self.code)
        body.writeStaticString("}}")
        return Response(status: self.status, headers: self.headers(contentType: "application/json"), body: .init(byteBuffer: body))
    }

    package func bedrockResponse() -> Response {
        var body = ByteBuffer()
        body.writeStaticString("{\"message\":")
        body.writeJSONString(self.message)
        body.writeStaticString("}")
        var headers = self.headers(contentType: "application/json")
        headers[.amazonErrorType] = "\(self.bedrockType):http://internal.amazon.com/coral/com.amazon.bedrock/"
        return Response(status: self.status, headers: headers, body: .init(byteBuffer: body))
    }

    private func headers(contentType: String) -> HTTPFields {
        var headers: HTTPFields = [.contentType: contentType]
        if let retryAfter = self.retryAfter { headers[.retryAfter] = String(retryAfter) }
        return headers
    }
}

extension GatewayError {
    package static func badRequest(_ message: String, param: String? = nil, code: String = "invalid_request") -> GatewayError {
        GatewayError(status: .badRequest, type: "invalid_request_error", code: code, message: message, param: param, bedrockType: "ValidationException")
    }

    package static func notFound(_ message: String) -> GatewayError {
        GatewayError(status: .notFound, type: "invalid_request_error", code: "not_found", message: message, bedrockType: "ResourceNotFoundException")
    }

    package static func payloadTooLarge(limit: Int) -> GatewayError {
        GatewayError(
            status: .contentTooLarge, type: "invalid_request_error", code: "request_too_large",
            message: "the request body is larger than \(limit) bytes", bedrockType: "ValidationException"
        )
    }

    package static func upstreamUnreachable(_ what: String) -> GatewayError {
        GatewayError(status: .badGateway, type: "api_error", code: "upstream_unreachable", message: what, bedrockType: "InternalServerException")
    }

    package static func upstreamTimeout(_ what: String) -> GatewayError {
        GatewayError(status: .gatewayTimeout, type: "api_error", code: "upstream_timeout", message: what, bedrockType: "ModelTimeoutException")
    }

    /// Maps an upstream HTTP error (status, `x-amzn-ErrorType`, the body's `message`) to what the
    /// caller sees (DESIGN.md, "Wire contracts"). Retryable conditions stay 429/5xx; only the
    /// caller's own mistakes become 400, since Claude Code treats 400 as final.
    package static func upstream(status: Int, errorType: String?, message: String?, retryAfter: Int?) -> GatewayError {
        let type = errorType ?? ""
        let text = message.map { String($0.prefix(1024)) } ?? "upstream error \(status)"
        switch type {
        case "ValidationException":
            return GatewayError(status: .badRequest, type: "invalid_request_error", code: "invalid_request", message: text, bedrockType: type)
        case "ResourceNotFoundException":
            return GatewayError(status: .notFound, type: "invalid_request_error", code: "model_not_found", message: text, bedrockType: type)
        case "ThrottlingException", "ServiceQuotaExceededException":
            return GatewayError(
                status: .tooManyRequests, type: "rate_limit_error", code: "rate_limit_exceeded", message: text, bedrockType: type,
                retryAfter: retryAfter ?? 1
            )
        case "AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException", "InvalidSignatureException":
            // Our credentials were refused: the caller can do nothing about it.
            return GatewayError(
                status: .badGateway, type: "api_error", code: "upstream_auth_failed",
                message: "the gateway's Bedrock credentials were refused: \(text)", bedrockType: type
            )
        case "ModelNotReadyException", "ServiceUnavailableException":
            return GatewayError(status: .serviceUnavailable, type: "api_error", code: "service_unavailable", message: text, bedrockType: type, retryAfter: retryAfter)
        case "ModelErrorException":
            // The model failed (424): nothing the caller can fix; a retry may succeed.
            return GatewayError(status: .badGateway, type: "api_error", code: "model_error", message: text, bedrockType: type)
        case "ModelTimeoutException":
            return GatewayError(status: .gatewayTimeout, type: "api_error", code: "model_timeout", message: text, bedrockType: type)
        default:
            switch status {
            case 429:
                return GatewayError(
                    status: .tooManyRequests, type: "rate_limit_error", code: "rate_limit_exceeded", message: text,
                    bedrockType: type.isEmpty ? "ThrottlingException" : type, retryAfter: retryAfter ?? 1
                )
            case 424:
                return GatewayError(status: .badGateway, type: "api_error", code: "model_error", message: text, bedrockType: "ModelErrorException")
            case 503:
                return GatewayError(status: .serviceUnavailable, type: "api_error", code: "service_unavailable", message: text, bedrockType: "ServiceUnavailableException", retryAfter: retryAfter)
            case 400..<500:
                return GatewayError(status: .badRequest, type: "invalid_request_error", code: "invalid_request", message: text, bedrockType: type.isEmpty ? "ValidationException" : type)
            default:
                return GatewayError(status: .badGateway, type: "api_error", code: "upstream_error", message: text, bedrockType: type.isEmpty ? "InternalServerException" : type)
            }
        }
    }
}
