/// Every way a request can fail, for every API shape: one typed error that authentication, policy,
/// limits, the request mappers and the upstream client all produce, rendered in the caller's API
/// shape in one place (``ErrorShape``).
///
/// The ``Code`` is ours and bounded: it decides the HTTP status and each API's error type, and it is
/// the only thing that becomes a metric label or a ledger finish reason. What Bedrock said (its
/// exception name, its message) travels beside it for the client's benefit, never as a label.
package struct GatewayError: Error, Sendable, CustomStringConvertible {
    package var code: Code
    /// For the client: what went wrong and what to do. Never a secret or a raw upstream body.
    package var message: String
    /// OpenAI's `param`: the request field at fault, when there is one.
    package var param: String?
    /// Seconds for `Retry-After`.
    package var retryAfter: Int?
    /// A finer code of our own than ``code`` for the client (a request mapper's `invalid_json`):
    /// OpenAI's `error.code`, and the ledger's finish reason, when set.
    package var clientCode: String?
    /// A finer label of our own for the ledger and metrics only (a limit's `requests_per_minute`).
    package var reason: String?
    /// Bedrock's own answer when the error came from upstream: the `/bedrock` routes pass its status
    /// and exception name through as they came.
    package var upstream: UpstreamAnswer?

    package struct UpstreamAnswer: Sendable, Hashable {
        package var status: Int
        /// The exception name, e.g. `ThrottlingException`, when Bedrock gave one.
        package var type: String?
    }

    package init(
        _ code: Code, _ message: String, param: String? = nil, retryAfter: Int? = nil, clientCode: String? = nil, reason: String? = nil
    ) {
        self.code = code
        self.message = message
        self.param = param
        self.retryAfter = retryAfter
        self.clientCode = clientCode
        self.reason = reason
    }

    package var description: String { "\(self.status) \(self.label): \(self.message)" }

    /// The HTTP status of the answer.
    package var status: Int { self.code.status }

    /// The bounded label for the ledger's finish reason, audit lines and metrics.
    package var label: String { self.reason ?? self.clientCode ?? self.code.description }

    /// OpenAI's `error.code`.
    package var openAICode: String { self.clientCode ?? self.code.wire }
}

extension GatewayError {
    /// A failure kind. A struct over a private enum (as AsyncHTTPClient's errors are), so kinds can be
    /// added without breaking exhaustive switches elsewhere.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String {
            // The caller's request.
            case invalidRequest = "invalid_request"
            case notFound = "not_found"
            case modelNotFound = "model_not_found"
            case methodNotAllowed = "method_not_allowed"
            case requestTooLarge = "request_too_large"
            case requestBodyTimeout = "request_body_timeout"
            case unsupportedContentEncoding = "unsupported_content_encoding"
            case requestHeadersTooLarge = "request_headers_too_large"
            // Identity and admission.
            case unauthenticated = "invalid_api_key"
            case tokenExpired = "token_expired"
            case policyDenied = "policy_denied"
            case rateLimited = "rate_limit_exceeded"
            case gatewayBusy = "gateway_busy"
            // The upstream, before or during the answer.
            case upstreamThrottled = "upstream_throttled"
            case upstreamUnavailable = "service_unavailable"
            case upstreamOverloaded = "upstream_overloaded"
            case upstreamAuthFailed = "upstream_auth_failed"
            case upstreamRejected = "upstream_invalid_request"
            case upstreamNotFound = "upstream_model_not_found"
            case modelError = "model_error"
            case modelTimeout = "model_timeout"
            case upstreamError = "upstream_error"
            case upstreamException = "upstream_exception"
            case upstreamUnreachable = "upstream_unreachable"
            case upstreamConnectTimeout = "upstream_connect_timeout"
            case upstreamFirstByteTimeout = "upstream_first_byte_timeout"
            case upstreamIdleTimeout = "upstream_idle_timeout"
            case upstreamDisconnected = "upstream_disconnected"
            case upstreamCorruptStream = "upstream_corrupt_stream"
            case upstreamMalformedResponse = "upstream_malformed_response"
            case upstreamTruncated = "upstream_truncated"
            // The gateway's own time limits and lifecycle.
            case requestTimeout = "request_timeout"
            case serverShuttingDown = "server_shutting_down"
            /// The gateway's own database did not answer (the admin API's reads and writes).
            case storeUnavailable = "store_unavailable"
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        package static let invalidRequest = Code(.invalidRequest)
        package static let notFound = Code(.notFound)
        package static let modelNotFound = Code(.modelNotFound)
        package static let methodNotAllowed = Code(.methodNotAllowed)
        package static let requestTooLarge = Code(.requestTooLarge)
        package static let requestBodyTimeout = Code(.requestBodyTimeout)
        package static let unsupportedContentEncoding = Code(.unsupportedContentEncoding)
        package static let requestHeadersTooLarge = Code(.requestHeadersTooLarge)
        package static let unauthenticated = Code(.unauthenticated)
        package static let tokenExpired = Code(.tokenExpired)
        package static let policyDenied = Code(.policyDenied)
        package static let rateLimited = Code(.rateLimited)
        package static let gatewayBusy = Code(.gatewayBusy)
        package static let upstreamThrottled = Code(.upstreamThrottled)
        package static let upstreamUnavailable = Code(.upstreamUnavailable)
        package static let upstreamOverloaded = Code(.upstreamOverloaded)
        package static let upstreamAuthFailed = Code(.upstreamAuthFailed)
        package static let upstreamRejected = Code(.upstreamRejected)
        package static let upstreamNotFound = Code(.upstreamNotFound)
        package static let modelError = Code(.modelError)
        package static let modelTimeout = Code(.modelTimeout)
        package static let upstreamError = Code(.upstreamError)
        package static let upstreamException = Code(.upstreamException)
        package static let upstreamUnreachable = Code(.upstreamUnreachable)
        package static let upstreamConnectTimeout = Code(.upstreamConnectTimeout)
        package static let upstreamFirstByteTimeout = Code(.upstreamFirstByteTimeout)
        package static let upstreamIdleTimeout = Code(.upstreamIdleTimeout)
        package static let upstreamDisconnected = Code(.upstreamDisconnected)
        package static let upstreamCorruptStream = Code(.upstreamCorruptStream)
        package static let upstreamMalformedResponse = Code(.upstreamMalformedResponse)
        package static let upstreamTruncated = Code(.upstreamTruncated)
        package static let requestTimeout = Code(.requestTimeout)
        package static let serverShuttingDown = Code(.serverShuttingDown)
        package static let storeUnavailable = Code(.storeUnavailable)

        /// The label: bounded, ours.
        package var description: String { self.base.rawValue }

        /// What the OpenAI shape sends as `error.code` (kept from the first releases: clients match on
        /// `invalid_api_key`, `rate_limit_exceeded` and `invalid_request`).
        var wire: String {
            switch self.base {
            case .tokenExpired: "invalid_api_key"
            case .upstreamThrottled: "rate_limit_exceeded"
            case .upstreamRejected: "invalid_request"
            case .upstreamNotFound: "model_not_found"
            case .upstreamOverloaded: "service_unavailable"
            default: self.base.rawValue
            }
        }

        package var status: Int {
            switch self.base {
            case .invalidRequest, .upstreamRejected: 400
            case .unauthenticated, .tokenExpired: 401
            case .policyDenied: 403
            case .notFound, .modelNotFound, .upstreamNotFound: 404
            case .methodNotAllowed: 405
            case .requestBodyTimeout: 408
            case .requestTooLarge: 413
            case .unsupportedContentEncoding: 415
            case .requestHeadersTooLarge: 431
            case .rateLimited, .upstreamThrottled: 429
            case .gatewayBusy, .upstreamUnavailable, .storeUnavailable: 503
            case .upstreamOverloaded: 529
            case .modelTimeout, .upstreamConnectTimeout, .upstreamFirstByteTimeout, .requestTimeout: 504
            case .upstreamAuthFailed, .modelError, .upstreamError, .upstreamException, .upstreamUnreachable, .upstreamIdleTimeout,
                .upstreamDisconnected, .upstreamCorruptStream, .upstreamMalformedResponse, .upstreamTruncated, .serverShuttingDown:
                502
            }
        }

        /// Whether the upstream failed (counted in `sluice_upstream_errors_total`), as opposed to the
        /// caller, the gateway's own rules or its shutdown.
        package var isUpstreamFailure: Bool {
            switch self.base {
            case .upstreamThrottled, .upstreamUnavailable, .upstreamOverloaded, .upstreamAuthFailed, .upstreamRejected, .upstreamNotFound,
                .modelError, .modelTimeout, .upstreamError, .upstreamException, .upstreamUnreachable, .upstreamConnectTimeout,
                .upstreamFirstByteTimeout, .upstreamIdleTimeout, .upstreamDisconnected, .upstreamCorruptStream, .upstreamMalformedResponse,
                .upstreamTruncated:
                true
            default: false
            }
        }

        /// OpenAI's `error.type`.
        var openAIType: String {
            switch self.status {
            case 400, 404, 405, 408, 413, 415, 431: "invalid_request_error"
            case 401: "authentication_error"
            case 403: "permission_error"
            case 429: "rate_limit_error"
            default: "api_error"
            }
        }

        /// Anthropic's `error.type`.
        var anthropicType: String {
            switch self.base {
            case .upstreamOverloaded, .upstreamUnavailable, .gatewayBusy: "overloaded_error"
            case .requestTooLarge: "request_too_large"
            default:
                switch self.status {
                case 400, 405, 408, 415, 431: "invalid_request_error"
                case 401: "authentication_error"
                case 403: "permission_error"
                case 404: "not_found_error"
                case 429: "rate_limit_error"
                case 504: "timeout_error"
                default: "api_error"
                }
            }
        }

        /// The Bedrock exception name the `/bedrock` routes answer with when the error is ours.
        var bedrockType: String {
            switch self.base {
            case .tokenExpired: "ExpiredTokenException"
            case .unauthenticated: "UnrecognizedClientException"
            case .policyDenied: "AccessDeniedException"
            case .notFound, .modelNotFound, .upstreamNotFound: "ResourceNotFoundException"
            case .rateLimited, .upstreamThrottled: "ThrottlingException"
            case .gatewayBusy, .upstreamUnavailable, .upstreamOverloaded: "ServiceUnavailableException"
            case .modelError: "ModelErrorException"
            case .modelTimeout, .upstreamFirstByteTimeout, .upstreamConnectTimeout, .requestTimeout: "ModelTimeoutException"
            case .invalidRequest, .upstreamRejected, .methodNotAllowed, .requestTooLarge, .requestBodyTimeout, .unsupportedContentEncoding,
                .requestHeadersTooLarge:
                "ValidationException"
            default: "InternalServerException"
            }
        }

        /// The kind a stream translator reported when it ended: one of our own codes (a failure the
        /// gateway reported to it), else a Bedrock exception name from an exception frame.
        package init(streamFailure name: String) {
            if let base = Base(rawValue: name) {
                self.init(base)
            } else {
                self.init(bedrockException: name)
            }
        }

        /// Our kind for a Bedrock exception name (from `x-amzn-ErrorType`, a body's `__type`, or an
        /// exception frame's `:exception-type`, in either capitalisation).
        package init(bedrockException name: String) {
            var name = name
            if let first = name.first, first.isLowercase { name = first.uppercased() + name.dropFirst() }
            switch name {
            case "ValidationException": self = .upstreamRejected
            case "ResourceNotFoundException": self = .upstreamNotFound
            case "ThrottlingException", "ServiceQuotaExceededException": self = .upstreamThrottled
            case "AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException", "InvalidSignatureException":
                self = .upstreamAuthFailed
            case "ModelNotReadyException", "ServiceUnavailableException": self = .upstreamUnavailable
            case "ModelErrorException": self = .modelError
            case "ModelTimeoutException": self = .modelTimeout
            case "InternalServerException": self = .upstreamError
            case "ModelStreamErrorException": self = .upstreamException
            default: self = .upstreamException
            }
        }
    }
}

extension GatewayError {
    package static func badRequest(_ message: String, param: String? = nil, clientCode: String? = nil) -> GatewayError {
        GatewayError(.invalidRequest, message, param: param, clientCode: clientCode)
    }

    package static func notFound(_ message: String) -> GatewayError {
        GatewayError(.notFound, message)
    }

    package static func payloadTooLarge(limit: Int) -> GatewayError {
        GatewayError(.requestTooLarge, "the request body is larger than \(limit) bytes")
    }

    /// An upstream HTTP error (status, `x-amzn-ErrorType`, the body's `message`) in the caller's terms
    /// (DESIGN.md, "Wire contracts"). Retryable conditions stay 429/5xx; only the caller's own
    /// mistakes become 400, since Claude Code treats 400 as final. Bedrock's own status and
    /// exception name are kept for the routes that pass errors through.
    package static func upstream(status: Int, errorType: String?, message: String?, retryAfter: Int?) -> GatewayError {
        let text = message.map { String($0.prefix(1024)) } ?? "upstream error \(status)"
        let code: Code
        if let errorType, !errorType.isEmpty {
            code = Code(bedrockException: errorType)
        } else {
            switch status {
            case 429: code = .upstreamThrottled
            case 424: code = .modelError
            case 503: code = .upstreamUnavailable
            case 529: code = .upstreamOverloaded
            case 404: code = .upstreamNotFound
            case 400..<500: code = .upstreamRejected
            default: code = .upstreamError
            }
        }
        // An exception name we do not know, with a client-error status, is still the caller's.
        let known: Code = (code == .upstreamException && (400..<500).contains(status) && status != 429) ? .upstreamRejected : code
        var error = GatewayError(known, known == .upstreamAuthFailed ? "the gateway's Bedrock credentials were refused: \(text)" : text)
        switch known {
        case .upstreamThrottled: error.retryAfter = retryAfter ?? 1
        case .upstreamUnavailable, .upstreamOverloaded: error.retryAfter = retryAfter
        default: break
        }
        error.upstream = UpstreamAnswer(status: status, type: errorType)
        return error
    }

    /// A failure in an event stream after it started: an exception frame (`name` is Bedrock's), a
    /// corrupt frame, or one of the gateway's own limits.
    package static func inStream(exception name: String, message: String) -> GatewayError {
        GatewayError(Code(bedrockException: name), message)
    }
}

/// The start of a client's text for an error message (a model id, a path): at most `limit`
/// characters, marked when cut.
func excerpt(_ text: String, limit: Int = 80) -> String {
    text.count <= limit ? text : String(text.prefix(limit)) + "…"
}
