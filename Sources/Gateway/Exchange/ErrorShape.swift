import HTTPTypes
package import Hummingbird
import NIOCore
import StreamCore

/// The API shapes' error bodies, for errors answered before the response head: the one place a
/// ``GatewayError`` becomes HTTP.
package enum ErrorShape: Sendable {
    /// `{"error":{"message","type","param","code"}}` (chat completions, responses, models).
    case openAI
    /// `{"type":"error","error":{"type","message"}}` (messages, count_tokens).
    case anthropic
    /// `x-amzn-ErrorType` and `{"message":…}` (the `/bedrock` routes), with Bedrock's own status and
    /// exception name when the error came from Bedrock.
    case bedrock

    package func response(_ error: GatewayError) -> Response {
        let (body, status, headers) = self.render(error)
        return Response(status: HTTPResponse.Status(code: status), headers: headers, body: .init(byteBuffer: body))
    }

    /// The body alone, for an answer written beneath the router (a request the parser refused).
    func body(_ error: GatewayError) -> ByteBuffer {
        self.render(error).body
    }

    private func render(_ error: GatewayError) -> (body: ByteBuffer, status: Int, headers: HTTPFields) {
        var body = ByteBuffer()
        var status = error.status
        var headers: HTTPFields = [.contentType: "application/json"]
        switch self {
        case .openAI:
            body.writeStaticString("{\"error\":{\"message\":")
            body.writeJSONString(error.message)
            body.writeStaticString(",\"type\":")
            body.writeJSONString(error.code.openAIType)
            body.writeStaticString(",\"param\":")
            if let param = error.param { body.writeJSONString(param) } else { body.writeStaticString("null") }
            body.writeStaticString(",\"code\":")
            body.writeJSONString(error.openAICode)
            body.writeStaticString("}}")
            // 529 is Anthropic's; OpenAI clients retry 503.
            if status == 529 { status = 503 }
        case .anthropic:
            body.writeStaticString("{\"type\":\"error\",\"error\":{\"type\":")
            body.writeJSONString(error.code.anthropicType)
            body.writeStaticString(",\"message\":")
            body.writeJSONString(error.message)
            body.writeStaticString("}}")
        case .bedrock:
            body.writeStaticString("{\"message\":")
            body.writeJSONString(error.message)
            body.writeStaticString("}")
            var type = error.code.bedrockType
            // Bedrock's own answer passes through as it came, except our credentials being refused:
            // that is not the caller's fault, nor something a retry with their credentials fixes.
            if let upstream = error.upstream, error.code != .upstreamAuthFailed {
                status = upstream.status
                type = upstream.type ?? type
            }
            headers[.amazonErrorType] = "\(type):http://internal.amazon.com/coral/com.amazon.bedrock/"
        }
        if let retryAfter = error.retryAfter { headers[.retryAfter] = String(retryAfter) }
        return (body, status, headers)
    }
}
