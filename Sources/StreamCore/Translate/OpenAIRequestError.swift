
/// A chat-completions request the gateway refuses before calling Bedrock (HTTP 400).
///
/// Rendered in OpenAI's error shape so SDKs surface `param` and `message` to the user:
/// ```
/// {"error":{"message":"…","type":"invalid_request_error","param":"messages[3].content[1].image_url","code":"invalid_value"}}
/// ```
/// Messages name the parameter and the rule; they never echo request content (prompts stay out of
/// error bodies and logs).
package struct OpenAIRequestError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A bounded machine-readable reason, written as OpenAI's `code` and safe as a metric label.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case invalidJSON = "invalid_json"
            case invalidType = "invalid_type"
            case invalidValue = "invalid_value"
            case missingRequiredParameter = "missing_required_parameter"
            case unsupportedValue = "unsupported_value"
            case unknownParameter = "unknown_parameter"
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// The body is not JSON, or nests deeper than allowed.
        package static let invalidJSON = Code(.invalidJSON)
        /// A field has the wrong JSON type (a number where a string belongs, …).
        package static let invalidType = Code(.invalidType)
        /// A field has the right type but a value we cannot use (bad data URL, bad arguments JSON, …).
        package static let invalidValue = Code(.invalidValue)
        /// A required field is absent or null.
        package static let missingRequiredParameter = Code(.missingRequiredParameter)
        /// A valid OpenAI feature that Bedrock cannot provide (`n` > 1, `logprobs`, remote image URLs).
        package static let unsupportedValue = Code(.unsupportedValue)
        /// A top-level field this gateway does not know and cannot safely ignore (OpenAI's code for
        /// an unrecognized parameter).
        package static let unknownParameter = Code(.unknownParameter)

        package var description: String { base.rawValue }
    }

    package var code: Code
    /// The offending parameter as a path, e.g. `messages[3].content[1].image_url`; nil for the body.
    package var param: String?
    package var message: String

    package init(code: Code, param: String?, message: String) {
        self.code = code
        self.param = param
        self.message = message
    }

    /// Always 400: everything here is the client's request.
    package var httpStatus: Int { 400 }

    package var description: String {
        "OpenAIRequestError(\(code), param: \(param ?? "nil")): \(message)"
    }
}

extension OpenAIRequestError {
    static func missing(_ param: String) -> Self {
        Self(code: .missingRequiredParameter, param: param, message: "Missing required parameter: '\(param)'.")
    }

    static func type(_ param: String, expected: String) -> Self {
        Self(code: .invalidType, param: param, message: "Invalid type for '\(param)': expected \(expected).")
    }

    static func value(_ param: String, _ reason: String) -> Self {
        Self(code: .invalidValue, param: param, message: "Invalid value for '\(param)': \(reason)")
    }

    static func unknown(_ param: String) -> Self {
        Self(code: .unknownParameter, param: param, message: "Unknown parameter: '\(param)'.")
    }

    static func unsupported(_ param: String, _ reason: String) -> Self {
        Self(code: .unsupportedValue, param: param, message: "Unsupported value for '\(param)': \(reason)")
    }
}
