internal import Hummingbird
internal import NIOCore
internal import StreamCore

/// An error answered in Bedrock's shape: the status, `x-amzn-ErrorType:
/// <Type>:http://internal.amazon.com/coral/com.amazon.bedrock/` and a body `{"message":"…"}`
/// (CLAUDE_CODE.md §4.3).
struct BedrockError: Error, Sendable {
    var status: Int
    var type: String
    var message: String
    /// ModelErrorException's extra fields.
    var originalStatusCode: Int?
    var resourceName: String?
    var retryAfterSeconds: Int?

    init(status: Int, type: String, message: String) {
        self.status = status
        self.type = type
        self.message = message
    }

    static func validation(_ message: String) -> BedrockError {
        BedrockError(status: 400, type: "ValidationException", message: message)
    }

    static func modelNotFound() -> BedrockError {
        BedrockError(status: 404, type: "ResourceNotFoundException", message: "The provided model identifier is invalid.")
    }

    /// The error a `status=` scenario asks for, with the type Bedrock uses for that status.
    static func forScenario(status: Int, modelID: String?) -> BedrockError {
        var error: BedrockError
        switch status {
        case 400: error = .validation("[sim] ValidationException requested by the scenario.")
        case 403:
            error = BedrockError(status: 403, type: "AccessDeniedException", message: "You don't have access to the model with the specified model ID.")
        case 404: error = .modelNotFound()
        case 408:
            error = BedrockError(status: 408, type: "ModelTimeoutException", message: "Model has timed out in processing the request. Try your request again.")
        case 424:
            error = BedrockError(status: 424, type: "ModelErrorException", message: "Received a server error (500) from model. See the model's logs for more information.")
            error.originalStatusCode = 500
            error.resourceName = modelID
        case 429:
            error = BedrockError(status: 429, type: "ThrottlingException", message: "Too many requests, please wait before trying again.")
        case 503:
            error = BedrockError(status: 503, type: "ServiceUnavailableException", message: "Bedrock is unable to process your request.")
        default:
            error = BedrockError(status: 500, type: "InternalServerException", message: "The server encountered an internal error while processing the request.")
        }
        return error
    }

    func response(requestID: String) -> Response {
        var body = ByteBuffer()
        body.writeStaticString("{\"message\":")
        body.writeJSONString(self.message)
        if let originalStatusCode {
            body.writeStaticString(",\"originalStatusCode\":")
            body.writeDecimal(originalStatusCode)
        }
        if let resourceName {
            body.writeStaticString(",\"resourceName\":")
            body.writeJSONString(resourceName)
        }
        body.writeStaticString("}")
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.amznRequestID] = requestID
        headers[.amznErrorType] = "\(self.type):http://internal.amazon.com/coral/com.amazon.bedrock/"
        if let retryAfterSeconds {
            headers[.retryAfter] = String(retryAfterSeconds)
        }
        return Response(status: .init(code: self.status), headers: headers, body: .init(byteBuffer: body))
    }
}

/// The payload of an in-stream exception frame (`:message-type: exception`).
enum InStreamException {
    static func payload(type: String) -> ByteBuffer {
        var body = ByteBuffer()
        body.writeStaticString("{\"message\":")
        switch type {
        case "throttlingException":
            body.writeJSONString("Too many requests, please wait before trying again.")
        case "modelStreamErrorException":
            body.writeJSONString("The model stream failed.")
            body.writeStaticString(",\"originalMessage\":")
            body.writeJSONString("[sim] upstream model error")
            body.writeStaticString(",\"originalStatusCode\":500")
        case "validationException":
            body.writeJSONString("[sim] validationException requested by the scenario.")
        case "serviceUnavailableException":
            body.writeJSONString("Bedrock is unable to process your request.")
        case "modelTimeoutException":
            body.writeJSONString("Model has timed out in processing the request. Try your request again.")
        default:
            body.writeJSONString("The server encountered an internal error while processing the request.")
        }
        body.writeStaticString("}")
        return body
    }
}

/// `HTTPField.Name`, reached through `HTTPFields` because Hummingbird re-exports only the latter and
/// HTTPTypes is not a direct dependency of this target.
typealias HTTPFieldName = HTTPFields.Element.Name

extension HTTPFieldName {
    // Safe to force unwrap: constant, valid header names.
    static let amznRequestID = HTTPFieldName("x-amzn-RequestId")!
    static let amznErrorType = HTTPFieldName("x-amzn-ErrorType")!
    static let amznBedrockContentType = HTTPFieldName("X-Amzn-Bedrock-Content-Type")!
    static let amznBedrockInputTokenCount = HTTPFieldName("X-Amzn-Bedrock-Input-Token-Count")!
    static let amznBedrockOutputTokenCount = HTTPFieldName("X-Amzn-Bedrock-Output-Token-Count")!
    static let amznBedrockInvocationLatency = HTTPFieldName("X-Amzn-Bedrock-Invocation-Latency")!
    static let simScenario = HTTPFieldName(Scenario.headerName)!
}
