package import HTTPTypes

extension HTTPField.Name {
    // Safe to force unwrap: each literal is a valid header-name token.
    package static let amazonErrorType = HTTPField.Name("x-amzn-ErrorType")!
    package static let amazonRequestID = HTTPField.Name("x-amzn-RequestId")!
    package static let bedrockContentType = HTTPField.Name("X-Amzn-Bedrock-Content-Type")!
    package static let accelBuffering = HTTPField.Name("X-Accel-Buffering")!
    package static let apiKey = HTTPField.Name("x-api-key")!
    package static let claudeCodeSessionID = HTTPField.Name("X-Claude-Code-Session-Id")!
    package static let anthropicBeta = HTTPField.Name("anthropic-beta")!
    package static let anthropicVersion = HTTPField.Name("anthropic-version")!
    /// Cost-allocation tags for Bedrock's own usage reports (identity and group of the caller).
    package static let bedrockRequestMetadata = HTTPField.Name("X-Amzn-Bedrock-Request-Metadata")!
}

extension HTTPFields {
    /// Whether the client waits for `100 Continue` before it sends its body (`Expect`).
    var expectsContinue: Bool {
        self[.expect].map { $0.lowercased() == "100-continue" } ?? false
    }

    /// Whether the client is one of Anthropic's: they say so with `anthropic-version` or `x-api-key`.
    var fromAnthropicClient: Bool {
        self[.anthropicVersion] != nil || self[.apiKey] != nil
    }
}
