import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import NIOCore
import Testing

/// One typed error, rendered in each API's shape in one place.
struct GatewayErrorTests {
    static func render(_ error: GatewayError, _ shape: ErrorShape) async throws -> (Int, HTTPFields, [String: Any]) {
        let response = shape.response(error)
        var body = ByteBuffer()
        let collector = BodyCollector()
        try await response.body.write(collector)
        body = collector.buffer
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
        return (response.status.code, response.headers, object)
    }

    final class BodyCollector: ResponseBodyWriter, @unchecked Sendable {
        var buffer = ByteBuffer()
        func write(_ buffer: ByteBuffer) async throws { self.buffer.writeImmutableBuffer(buffer) }
        func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }

    @Test("a mapper's 400 in OpenAI's shape: message, type, param and the mapper's own code")
    func openAIShape() async throws {
        let error = GatewayError.badRequest("Say \"no\" \\ twice.", param: "messages[3].content[1].image_url", clientCode: "invalid_value")
        let (status, headers, body) = try await Self.render(error, .openAI)
        #expect(status == 400)
        #expect(headers[.contentType] == "application/json")
        let inner = try #require(body["error"] as? [String: Any])
        #expect(inner["message"] as? String == "Say \"no\" \\ twice.")
        #expect(inner["type"] as? String == "invalid_request_error")
        #expect(inner["param"] as? String == "messages[3].content[1].image_url")
        #expect(inner["code"] as? String == "invalid_value")
        #expect(error.label == "invalid_value")
    }

    @Test("a limit refusal: OpenAI code rate_limit_exceeded, Anthropic rate_limit_error, Bedrock ThrottlingException, the limit as the label, Retry-After")
    func limitRefusal() async throws {
        let error = GatewayError(.rateLimited, "over", retryAfter: 7, reason: "requests_per_minute")
        #expect(error.label == "requests_per_minute")
        let (status, headers, openAI) = try await Self.render(error, .openAI)
        #expect(status == 429)
        #expect(headers[.retryAfter] == "7")
        #expect((openAI["error"] as? [String: Any])?["code"] as? String == "rate_limit_exceeded")
        #expect((openAI["error"] as? [String: Any])?["param"] is NSNull)
        let (_, _, anthropic) = try await Self.render(error, .anthropic)
        #expect(anthropic["type"] as? String == "error")
        #expect((anthropic["error"] as? [String: Any])?["type"] as? String == "rate_limit_error")
        let (_, bedrockHeaders, bedrock) = try await Self.render(error, .bedrock)
        #expect(bedrockHeaders[.amazonErrorType]?.hasPrefix("ThrottlingException:") == true)
        #expect(bedrock["message"] as? String == "over")
    }

    @Test("Bedrock's own errors: passed through on /bedrock with its status and name; our code and status elsewhere")
    func upstreamErrors() async throws {
        let validation = GatewayError.upstream(status: 400, errorType: "ValidationException", message: "invalid beta flag", retryAfter: nil)
        #expect(validation.code == .upstreamRejected)
        #expect(validation.label == "upstream_invalid_request")
        let (status, headers, body) = try await Self.render(validation, .bedrock)
        #expect(status == 400)
        #expect(headers[.amazonErrorType]?.hasPrefix("ValidationException:") == true)
        #expect(body["message"] as? String == "invalid beta flag")
        let (_, _, anthropic) = try await Self.render(validation, .anthropic)
        #expect((anthropic["error"] as? [String: Any])?["type"] as? String == "invalid_request_error")

        // A 424 ModelErrorException is Bedrock's; the caller can do nothing about it.
        let model = GatewayError.upstream(status: 424, errorType: "ModelErrorException", message: "boom", retryAfter: nil)
        #expect(try await Self.render(model, .openAI).0 == 502)
        #expect(try await Self.render(model, .bedrock).0 == 424)

        // Our own credentials refused: a gateway failure in every shape, never the caller's 403.
        let denied = GatewayError.upstream(status: 403, errorType: "AccessDeniedException", message: "no", retryAfter: nil)
        #expect(denied.code == .upstreamAuthFailed)
        let (deniedStatus, deniedHeaders, _) = try await Self.render(denied, .bedrock)
        #expect(deniedStatus == 502)
        #expect(deniedHeaders[.amazonErrorType]?.hasPrefix("InternalServerException:") == true)

        // 529-like overload: Anthropic's overloaded_error; OpenAI clients get a 503 they retry.
        let overloaded = GatewayError.upstream(status: 529, errorType: nil, message: "busy", retryAfter: 2)
        #expect(try await Self.render(overloaded, .anthropic).0 == 529)
        #expect((try await Self.render(overloaded, .anthropic).2["error"] as? [String: Any])?["type"] as? String == "overloaded_error")
        #expect(try await Self.render(overloaded, .openAI).0 == 503)
    }

    @Test("stream failure names: our own codes round-trip; Bedrock exception names in either case map to our codes")
    func streamFailureNames() {
        #expect(GatewayError.Code(streamFailure: "upstream_corrupt_stream") == .upstreamCorruptStream)
        #expect(GatewayError.Code(streamFailure: "request_timeout") == .requestTimeout)
        #expect(GatewayError.Code(streamFailure: "throttlingException") == .upstreamThrottled)
        #expect(GatewayError.Code(streamFailure: "ThrottlingException") == .upstreamThrottled)
        #expect(GatewayError.Code(streamFailure: "modelStreamErrorException") == .upstreamException)
        #expect(GatewayError.Code(streamFailure: "someNewException") == .upstreamException)
        #expect(GatewayError.Code(streamFailure: "serviceUnavailableException") == .upstreamUnavailable)
    }
}
