package import NIOCore

/// An Anthropic Messages request the gateway refuses before calling Bedrock (HTTP 400).
///
/// Rendered in Anthropic's error shape, which the Anthropic SDKs and Claude Code parse:
/// ```
/// {"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}
/// ```
/// Messages name the field (Anthropic's own `<field>: <problem>` style) and never echo request
/// content.
package struct AnthropicRequestError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A bounded machine-readable reason, safe as a metric label.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidJSON = "invalid_json"
            case nestingTooDeep = "nesting_too_deep"
            case missingField = "missing_field"
            case invalidField = "invalid_field"
            case tooManyMessages = "too_many_messages"
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The body is not JSON, or not an object.
        package static let invalidJSON = Code(.invalidJSON)
        /// The body nests deeper than the mapper's bound.
        package static let nestingTooDeep = Code(.nestingTooDeep)
        /// A required field is absent or null.
        package static let missingField = Code(.missingField)
        /// A field has the wrong type or value.
        package static let invalidField = Code(.invalidField)
        /// `messages` holds more entries than the gateway accepts.
        package static let tooManyMessages = Code(.tooManyMessages)

        package var description: String { self.base.rawValue }
    }

    package var code: Code
    /// The offending field as a path (`max_tokens`, `metadata.user_id`); `nil` for the whole body.
    package var param: String?
    package var message: String

    package init(code: Code, param: String?, message: String) {
        self.code = code
        self.param = param
        self.message = message
    }

    /// Anthropic's error `type`: always `invalid_request_error` here.
    package var errorType: String { "invalid_request_error" }

    /// Always 400: everything here is the client's request.
    package var httpStatus: Int { 400 }

    package var description: String {
        "AnthropicRequestError(\(self.code), param: \(self.param ?? "nil")): \(self.message)"
    }

    /// The Anthropic error body as a fresh buffer.
    package func makeResponseBody(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 96 + self.message.utf8.count)
        AnthropicErrorBody.write(type: self.errorType, message: self.message, into: &buffer)
        return buffer
    }

    static func missing(_ field: String) -> Self {
        Self(code: .missingField, param: field, message: "\(field): Field required")
    }

    static func invalid(_ field: String, _ problem: String) -> Self {
        Self(code: .invalidField, param: field, message: "\(field): \(problem)")
    }
}

/// Anthropic's error body, `{"type":"error","error":{"type":…,"message":…}}`, for every error the
/// Messages route answers before the stream starts (`authentication_error`, `permission_error`,
/// `not_found_error`, `rate_limit_error`, `overloaded_error`, `api_error`, …).
package enum AnthropicErrorBody {
    package static func write(type: String, message: String, into out: inout ByteBuffer) {
        out.writeStaticString("{\"type\":\"error\",\"error\":{\"type\":")
        out.writeJSONString(type)
        out.writeStaticString(",\"message\":")
        out.writeJSONString(message)
        out.writeStaticString("}}")
    }
}
